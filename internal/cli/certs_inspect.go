package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/pki"
)

func newCertsInspectCommand() *cobra.Command {
	var (
		secret, configMap string
		output            string
		kube              certsKubeFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect [FILE|DIR]... | --secret NS/NAME | --configmap NS/NAME",
		Short: "Show every certificate of PEM files, folders, a Secret or a ConfigMap",
		Long: `Show every certificate of each PEM file, each PEM file of a folder, or each
data key of a Secret or ConfigMap: subject, issuer, serial, validity, CA and
path length, key, key usages and SANs (DNS, URI, IP). Keys holding no
certificate (ca-key.pem) are skipped. "openssl x509 -text" prints only the
first certificate of cert-chain.pem; this prints the intermediate and the root.

A source of several certificates ending at a self-signed root is checked as a
chain (each certificate signed by the next). A folder or Secret holding
Istio's plug-in files (ca-cert.pem, ca-key.pem, root-cert.pem,
cert-chain.pem) is checked as a CA bundle: the key matches, the chain leads to
the root, nothing has expired. Problems are reported, not fatal.`,
		Example: `  causeway certs inspect certs/cluster1/cert-chain.pem
  causeway certs inspect certs/cluster1 -o json
  causeway certs inspect --secret istio-system/cacerts --kubeconfig ~/.kube/cluster1
  causeway certs inspect --configmap istio-system/istio-ca-root-cert --kubeconfig ~/.kube/cluster2`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "text" { // the name of the human format before -o table
				output = outputTable
			}
			if err := checkOutput(output); err != nil {
				return err
			}
			sources := 0
			if len(args) > 0 {
				sources++
			}
			if secret != "" {
				sources++
			}
			if configMap != "" {
				sources++
			}
			if sources != 1 {
				return errors.New("give PEM files or folders, or --secret NS/NAME, or --configmap NS/NAME (one of them)")
			}
			var (
				report pki.Report
				err    error
			)
			switch {
			case len(args) > 0:
				report, err = pki.InspectPaths(cmd.Context(), args)
			default:
				report, err = certsInspectObject(cmd.Context(), kube, secret, configMap)
			}
			if err != nil {
				return err
			}
			if output != outputTable {
				return writeStructured(cmd.OutOrStdout(), output, report)
			}
			return certsWriteText(cmd.OutOrStdout(), report, time.Now())
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "inspect the Secret NAMESPACE/NAME (such as istio-system/cacerts)")
	cmd.Flags().StringVar(&configMap, "configmap", "", "inspect the ConfigMap NAMESPACE/NAME (such as istio-system/istio-ca-root-cert)")
	outputFlag(cmd.Flags(), &output)
	kube.register(cmd)
	return cmd
}

// certsInspectObject inspects a Secret's or ConfigMap's data keys.
func certsInspectObject(ctx context.Context, kube certsKubeFlags, secret, configMap string) (pki.Report, error) {
	ref, flag := secret, "--secret"
	if configMap != "" {
		ref, flag = configMap, "--configmap"
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return pki.Report{}, fmt.Errorf("%s %q: want NAMESPACE/NAME, such as istio-system/cacerts", flag, ref)
	}
	cs, host, err := kube.client()
	if err != nil {
		return pki.Report{}, err
	}
	data := map[string][]byte{}
	var kind string
	if secret != "" {
		kind = "secret"
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return pki.Report{}, fmt.Errorf("get Secret %s/%s from %s: %w", ns, name, host, err)
		}
		data = s.Data
	} else {
		kind = "configmap"
		c, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return pki.Report{}, fmt.Errorf("get ConfigMap %s/%s from %s: %w", ns, name, host, err)
		}
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
		maps.Copy(data, c.BinaryData)
	}
	var report pki.Report
	report.AddData(kind+" "+ns+"/"+name+" ", data)
	if len(report.Sources) == 0 {
		return pki.Report{}, fmt.Errorf("%s %s/%s holds no PEM certificate in its %d key(s)", kind, ns, name, len(data))
	}
	return report, nil
}

// certsWriteText prints a report for people.
func certsWriteText(w io.Writer, report pki.Report, now time.Time) error {
	var b strings.Builder
	for i, src := range report.Sources {
		if i > 0 {
			b.WriteByte('\n')
		}
		noun := "certificates"
		if len(src.Certificates) == 1 {
			noun = "certificate"
		}
		fmt.Fprintf(&b, "%s: %d %s\n", src.Source, len(src.Certificates), noun)
		for j := range src.Certificates {
			certsWriteCert(&b, j, &src.Certificates[j], now)
		}
		if src.Chain != "" {
			fmt.Fprintf(&b, "  chain: %s\n", src.Chain)
		}
	}
	for _, bc := range report.Bundles {
		fmt.Fprintf(&b, "\nCA bundle %s: %s\n", bc.Source, bc.Check)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func certsWriteCert(w *strings.Builder, index int, c *pki.CertInfo, now time.Time) {
	subject := certsOr(c.Subject, "(empty)")
	if c.SelfSigned {
		subject += " (self-signed)"
	}
	fmt.Fprintf(w, "  [%d] %s\n", index, subject)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "      %-17s %s\n", k+":", v)
		}
	}
	row("issuer", c.Issuer)
	row("serial", c.Serial)
	row("valid", fmt.Sprintf("%s to %s (%s)", c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339),
		certsValidity(c.NotBefore, c.NotAfter, now)))
	ca := "no"
	if c.IsCA {
		ca = "yes, no path length limit"
		if c.PathLen != nil {
			ca = fmt.Sprintf("yes, path length %d", *c.PathLen)
		}
	}
	row("CA", ca)
	row("key", c.KeyAlgorithm+", signed with "+c.SignatureAlgorithm)
	row("key usage", strings.Join(c.KeyUsage, ", "))
	row("ext key usage", strings.Join(c.ExtKeyUsage, ", "))
	row("DNS", strings.Join(c.DNSNames, ", "))
	row("URI", strings.Join(c.URIs, ", "))
	row("IP", strings.Join(c.IPs, ", "))
	row("subject key id", c.SubjectKeyID)
	row("authority key id", c.AuthorityKeyID)
	row("sha256", c.SHA256)
}

// certsValidity says how a validity period stands at now.
func certsValidity(notBefore, notAfter, now time.Time) string {
	days := func(d time.Duration) string {
		n := int(d.Hours() / 24)
		if n == 1 {
			return "1 day"
		}
		if n == 0 {
			return "less than a day"
		}
		return fmt.Sprintf("%d days", n)
	}
	switch {
	case now.Before(notBefore):
		return "NOT VALID YET, valid in " + days(notBefore.Sub(now))
	case now.After(notAfter):
		return "EXPIRED " + days(now.Sub(notAfter)) + " ago"
	default:
		return "expires in " + days(notAfter.Sub(now))
	}
}

func certsOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
