package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
)

const (
	// certsSecretName is the Secret Istio (and Causeway) read a plug-in CA from.
	certsSecretName = "cacerts"
	// certsDefaultNamespace is the control plane's namespace.
	certsDefaultNamespace = "istio-system"
)

func newCertsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make and inspect the mesh CA: one root, one intermediate CA per cluster",
		Long: `Clusters of one mesh trust each other's workloads when their CAs share a root.
The way Istio documents it (tools/certs/Makefile.selfsigned.mk): make one root
and keep its key offline, make an intermediate CA per cluster signed by that
root, and plug each intermediate into its cluster as the Secret "cacerts"
(ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) in istio-system.
The control plane then signs workload certificates with the intermediate, and
every cluster's workloads verify each other up to the shared root.

Unlike "openssl x509", which prints only the first certificate of a chain,
"causeway certs inspect" shows every certificate of every PEM it reads.`,
		Example: `  # One root for the mesh (keep root-key.pem offline).
  causeway certs root --out certs

  # One intermediate CA per cluster, plugged in as the cacerts Secret.
  causeway certs intermediate --root certs --cluster cluster1 --apply --kubeconfig ~/.kube/cluster1
  causeway certs intermediate --root certs --cluster cluster2 --apply --kubeconfig ~/.kube/cluster2

  # Every certificate of the chain, and a check of the plug-in bundle.
  causeway certs inspect --secret istio-system/cacerts --kubeconfig ~/.kube/cluster1`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCertsRootCommand(), newCertsIntermediateCommand(), newCertsInspectCommand(), newCertsRequestCommand())
	return cmd
}

// certsKeyFlags are the flags that choose a new key.
type certsKeyFlags struct {
	keyType string
	rsaBits int
}

func (k *certsKeyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.keyType, "key", string(pki.KeyEC), "key type: ec (ECDSA P-256) or rsa")
	cmd.Flags().IntVar(&k.rsaBits, "rsa-bits", 0, "RSA key size, 2048 (default) or 4096; with --key rsa only")
}

func (k *certsKeyFlags) parse() (pki.KeyType, int, error) {
	t, err := pki.ParseKeyType(k.keyType)
	if err != nil {
		return "", 0, fmt.Errorf("--key: %w", err)
	}
	if k.rsaBits != 0 && t != pki.KeyRSA {
		return "", 0, fmt.Errorf("--rsa-bits %d: it applies to --key rsa only", k.rsaBits)
	}
	return t, k.rsaBits, nil
}

// certsKubeFlags locate a cluster.
type certsKubeFlags struct {
	kubeconfig  string
	kubeContext string
}

func (k *certsKubeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&k.kubeContext, "context", "", "kubeconfig context to use (default: the current context)")
}

// client builds a clientset from the flags and says which cluster it is.
func (k *certsKubeFlags) client() (kubernetes.Interface, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	if err := checkKubeconfigFiles(rules); err != nil {
		return nil, "", err
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: k.kubeContext})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig %s: %w", certsOr(k.kubeconfig, "(default)"), err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return cs, cfg.Host, nil
}

func newCertsRootCommand() *cobra.Command {
	var (
		out   string
		opts  pki.RootOptions
		keys  certsKeyFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "root --out DIR",
		Short: "Make the mesh's self-signed root CA: DIR/root-cert.pem and DIR/root-key.pem",
		Long: `Make a self-signed root CA, as Istio's "make -f Makefile.selfsigned.mk root-ca":
subject O=Istio, CN=Root CA, valid 3650 days. It writes DIR/root-cert.pem and
DIR/root-key.pem (mode 0600). Every cluster's intermediate CA is signed with
it; keep root-key.pem offline once the intermediates are made.`,
		Example: `  causeway certs root --out certs
  causeway certs root --out certs --org "Acme Inc." --days 7300 --key rsa --rsa-bits 4096`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kt, bits, err := keys.parse()
			if err != nil {
				return err
			}
			opts.KeyType, opts.RSABits = kt, bits
			certPEM, keyPEM, err := pki.NewRoot(opts)
			if err != nil {
				return fmt.Errorf("make root CA: %w", err)
			}
			files := []pki.File{
				{Name: pki.FileRootCert, Data: certPEM, Mode: pki.CertMode},
				{Name: pki.FileRootKey, Data: keyPEM, Mode: pki.KeyMode},
			}
			if err := pki.WriteFiles(out, files, force); err != nil {
				return err
			}
			return certsReportWritten(cmd.OutOrStdout(), out, files, certPEM)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write root-cert.pem and root-key.pem into (made if missing)")
	cmd.Flags().StringVar(&opts.Org, "org", pki.DefaultOrg, "subject organization (O)")
	cmd.Flags().StringVar(&opts.CommonName, "cn", pki.DefaultRootCommonName, "subject common name (CN)")
	cmd.Flags().IntVar(&opts.Days, "days", pki.DefaultRootDays, "days of validity")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing files (the old root and its key are lost)")
	keys.register(cmd)
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newCertsIntermediateCommand() *cobra.Command {
	var (
		rootDir, cluster, out string
		days                  int
		keys                  certsKeyFlags
		force, apply          bool
		namespace             string
		kube                  certsKubeFlags
	)
	cmd := &cobra.Command{
		Use:   "intermediate --root DIR --cluster ID [--out DIR/ID] [--apply]",
		Short: "Make a cluster's intermediate CA in Istio's cacerts layout, and optionally plug it in",
		Long: `Make a cluster's intermediate CA signed by the root in --root, as Istio's
"make -f Makefile.selfsigned.mk ID-cacerts": subject O=Istio, CN=Intermediate CA,
L=ID, a CA that signs only leaf certificates (path length 0), valid 730 days
and never longer than the root. It writes into --out (default ROOT/ID):

  ca-cert.pem     the intermediate CA's certificate
  ca-key.pem      its key (mode 0600)
  root-cert.pem   the root
  cert-chain.pem  the intermediate, then the root

With --apply it also creates, or updates, the Secret "cacerts" in --namespace
of the cluster --kubeconfig points at, with those four keys: what
"kubectl create secret generic cacerts --from-file=..." does. A running
control plane picks up the new CA within a second, without a restart, and
workloads get certificates from it as they renew theirs.`,
		Example: `  # The seed's flow: one root, one intermediate per cluster.
  causeway certs root --out certs
  causeway certs intermediate --root certs --cluster cluster1
  causeway certs intermediate --root certs --cluster cluster2

  # Make and plug in at once.
  causeway certs intermediate --root certs --cluster cluster1 --apply --kubeconfig ~/.kube/cluster1

  # Replace an existing intermediate (the old key is lost).
  causeway certs intermediate --root certs --cluster cluster1 --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := certsCheckClusterID(cluster); err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(rootDir, cluster)
			}
			kt, bits, err := keys.parse()
			if err != nil {
				return err
			}
			rootCert, rootKey, err := certsReadRoot(cmd.Context(), rootDir)
			if err != nil {
				return err
			}
			bundle, err := pki.NewIntermediate(pki.IntermediateOptions{
				RootCert: rootCert, RootKey: rootKey, Cluster: cluster, Days: days, KeyType: kt, RSABits: bits,
			})
			if err != nil {
				return fmt.Errorf("root in %s: %w", rootDir, err)
			}
			files := []pki.File{
				{Name: pki.FileCACert, Data: bundle.CACert, Mode: pki.CertMode},
				{Name: pki.FileCAKey, Data: bundle.CAKey, Mode: pki.KeyMode},
				{Name: pki.FileRootCert, Data: bundle.RootCert, Mode: pki.CertMode},
				{Name: pki.FileCertChain, Data: bundle.CertChain, Mode: pki.CertMode},
			}
			// Build the client first: a bad kubeconfig fails before any file
			// is written.
			var (
				cs   kubernetes.Interface
				host string
			)
			if apply {
				if cs, host, err = kube.client(); err != nil {
					return err
				}
			}
			if err := pki.WriteFiles(out, files, force); err != nil {
				return err
			}
			if err := certsReportWritten(cmd.OutOrStdout(), out, files, bundle.CertChain); err != nil {
				return err
			}
			if !apply {
				return nil
			}
			created, err := certsApplySecret(cmd.Context(), cs, namespace, bundle)
			if err != nil {
				return fmt.Errorf("plug the CA into %s: %w (the files are in %s: fix the cause and run again with --force to make and plug in a new CA, or create the Secret from them yourself)",
					host, err, out)
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s Secret %s/%s in %s\n", verb, namespace, certsSecretName, host)
			return err
		},
	}
	cmd.Flags().StringVar(&rootDir, "root", "", "folder holding root-cert.pem and root-key.pem (made by \"causeway certs root\")")
	cmd.Flags().StringVar(&cluster, "cluster", "", "id of the cluster the CA is for; it goes in the subject's L")
	cmd.Flags().StringVar(&out, "out", "", "folder to write the four files into (default ROOT/CLUSTER)")
	cmd.Flags().IntVar(&days, "days", pki.DefaultIntermediateDays, "days of validity")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing files (the old intermediate key is lost)")
	cmd.Flags().BoolVar(&apply, "apply", false, "also create or update the Secret cacerts in the cluster")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", certsDefaultNamespace, "namespace of the cacerts Secret (with --apply)")
	keys.register(cmd)
	kube.register(cmd)
	_ = cmd.MarkFlagRequired("root")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

// certsCheckClusterID checks --cluster with the one cluster-id rule.
func certsCheckClusterID(id string) error {
	if err := model.CheckClusterID(id); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	return nil
}

// certsReadRoot reads DIR/root-cert.pem and DIR/root-key.pem.
func certsReadRoot(ctx context.Context, dir string) (certPEM, keyPEM []byte, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("root folder %s does not exist: make a root first with `causeway certs root --out %s`", dir, dir)
	case err != nil:
		return nil, nil, fmt.Errorf("root folder: %w", err)
	case !fi.IsDir():
		return nil, nil, fmt.Errorf("--root %s is a file: give the folder holding %s and %s", dir, pki.FileRootCert, pki.FileRootKey)
	}
	certPEM, err = files.Read(ctx, filepath.Join(dir, pki.FileRootCert), files.PEM)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s has no %s: make a root with `causeway certs root --out %s`, or point --root at the folder holding %s and %s",
			dir, pki.FileRootCert, dir, pki.FileRootCert, pki.FileRootKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read root certificate: %w", err)
	}
	keyPEM, err = files.Read(ctx, filepath.Join(dir, pki.FileRootKey), files.PEM)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s has %s but no %s: signing an intermediate needs the root's key; copy it back from where it is kept",
			dir, pki.FileRootCert, pki.FileRootKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read root key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// certsReportWritten lists the files written and the certificates made.
func certsReportWritten(w io.Writer, dir string, files []pki.File, certs []byte) error {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "wrote %s\n", filepath.Join(dir, f.Name))
	}
	infos, err := pki.Inspect(certs)
	if err != nil {
		return fmt.Errorf("read back the certificates: %w", err)
	}
	for i := range infos {
		fmt.Fprintf(&b, "  %s, valid until %s\n", infos[i].Subject, infos[i].NotAfter.Format(time.RFC3339))
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// certsApplySecret creates the Secret cacerts in namespace with the bundle's
// four keys or, when it exists, replaces its data. It reports whether the
// Secret was created.
func certsApplySecret(ctx context.Context, cs kubernetes.Interface, namespace string, b pki.Bundle) (created bool, err error) {
	secrets := cs.CoreV1().Secrets(namespace)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: certsSecretName, Namespace: namespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       b.Data(),
	}
	_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("namespace %s does not exist: create it (kubectl create namespace %s) or pass --namespace: %w",
			namespace, namespace, err)
	case !apierrors.IsAlreadyExists(err):
		return false, fmt.Errorf("create Secret %s/%s: %w", namespace, certsSecretName, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, certsSecretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Type != corev1.SecretTypeOpaque {
			return fmt.Errorf("the existing Secret is of type %s, not Opaque; delete it (kubectl -n %s delete secret %s) and run again",
				cur.Type, namespace, certsSecretName)
		}
		cur.Data = b.Data()
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", namespace, certsSecretName, err)
	}
	return false, nil
}

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
				report certsReport
				err    error
			)
			switch {
			case len(args) > 0:
				report, err = certsInspectPaths(cmd.Context(), args)
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

// certsReport is what `certs inspect` shows.
type certsReport struct {
	Sources []certsSource `json:"sources"`
	// Bundles are the checks of Istio plug-in CA bundles found.
	Bundles []certsBundleCheck `json:"bundles,omitempty"`
}

// certsSource is one PEM file or data key.
type certsSource struct {
	Source       string         `json:"source"`
	Certificates []pki.CertInfo `json:"certificates"`
	// Chain is the check of a chain of several certificates that ends at a
	// self-signed root: "ok" or the problem.
	Chain string `json:"chain,omitempty"`
}

// certsBundleCheck is the check of a plug-in bundle: "ok" or the problem.
type certsBundleCheck struct {
	Source string `json:"source"`
	Check  string `json:"check"`
}

// certsInspectPaths inspects files and folders.
func certsInspectPaths(ctx context.Context, paths []string) (certsReport, error) {
	var report certsReport
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return certsReport{}, fmt.Errorf("inspect: %w", err)
		}
		if !fi.IsDir() {
			data, err := files.Read(ctx, p, files.PEM)
			if err != nil {
				return certsReport{}, fmt.Errorf("inspect: %w", err)
			}
			src, err := certsInspectPEM(p, data)
			if err != nil {
				return certsReport{}, fmt.Errorf("%s: %w (is it a key, or not PEM?)", p, err)
			}
			report.Sources = append(report.Sources, src)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return certsReport{}, fmt.Errorf("inspect: %w", err)
		}
		data := map[string][]byte{}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".pem") {
				continue
			}
			b, err := files.Read(ctx, filepath.Join(p, e.Name()), files.PEM)
			if err != nil {
				return certsReport{}, fmt.Errorf("inspect: %w", err)
			}
			data[e.Name()] = b
		}
		if len(data) == 0 {
			return certsReport{}, fmt.Errorf("%s holds no .pem file", p)
		}
		certsInspectData(&report, p+string(filepath.Separator), data)
	}
	return report, nil
}

// certsInspectObject inspects a Secret's or ConfigMap's data keys.
func certsInspectObject(ctx context.Context, kube certsKubeFlags, secret, configMap string) (certsReport, error) {
	ref, flag := secret, "--secret"
	if configMap != "" {
		ref, flag = configMap, "--configmap"
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return certsReport{}, fmt.Errorf("%s %q: want NAMESPACE/NAME, such as istio-system/cacerts", flag, ref)
	}
	cs, host, err := kube.client()
	if err != nil {
		return certsReport{}, err
	}
	data := map[string][]byte{}
	var kind string
	if secret != "" {
		kind = "secret"
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return certsReport{}, fmt.Errorf("get Secret %s/%s from %s: %w", ns, name, host, err)
		}
		data = s.Data
	} else {
		kind = "configmap"
		c, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return certsReport{}, fmt.Errorf("get ConfigMap %s/%s from %s: %w", ns, name, host, err)
		}
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
		maps.Copy(data, c.BinaryData)
	}
	var report certsReport
	certsInspectData(&report, kind+" "+ns+"/"+name+" ", data)
	if len(report.Sources) == 0 {
		return certsReport{}, fmt.Errorf("%s %s/%s holds no PEM certificate in its %d key(s)", kind, ns, name, len(data))
	}
	return report, nil
}

// certsInspectData inspects each key of data that holds certificates, in
// key order, and checks the plug-in bundle when the keys are Istio's.
func certsInspectData(report *certsReport, prefix string, data map[string][]byte) {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		src, err := certsInspectPEM(prefix+k, data[k])
		if err != nil {
			continue // a key, or not PEM
		}
		report.Sources = append(report.Sources, src)
	}
	if _, ok := data[pki.FileCACert]; !ok {
		return
	}
	if _, ok := data[pki.FileCAKey]; !ok {
		return
	}
	check := "ok"
	if _, err := pki.NewCA(pki.BundleFromData(data)); err != nil {
		check = err.Error() + certsTornAdvice(prefix, err)
	}
	report.Bundles = append(report.Bundles, certsBundleCheck{Source: strings.TrimSpace(prefix), Check: check})
}

// certsInspectPEM describes every certificate of data, and checks it as a
// chain when it holds several ending at a self-signed root.
func certsInspectPEM(source string, data []byte) (certsSource, error) {
	infos, err := pki.Inspect(data)
	if err != nil {
		return certsSource{}, err
	}
	src := certsSource{Source: source, Certificates: infos}
	if len(infos) > 1 && infos[len(infos)-1].SelfSigned {
		src.Chain = "ok"
		if err := pki.Verify(data, data, pki.VerifyOptions{}); err != nil {
			src.Chain = err.Error()
		}
	} else if len(infos) > 1 {
		src.Chain = certsChainOrder(infos)
	}
	return src, nil
}

// certsChainOrder explains a chain of several certificates that does not
// end at a self-signed root: most often one in the wrong order. It returns
// "" when each certificate is issued by the next (a chain that stops below
// its root, which is fine).
func certsChainOrder(infos []pki.CertInfo) string {
	const fix = "put the leaf (or the intermediate CA) first and each certificate before its issuer, the root last: for cert-chain.pem, ca-cert.pem then root-cert.pem (cat ca-cert.pem root-cert.pem > cert-chain.pem)"
	for i := range infos[:len(infos)-1] {
		if infos[i].SelfSigned {
			return fmt.Sprintf("NOT IN ORDER: the self-signed root is certificate [%d] of %d, not the last; %s", i, len(infos), fix)
		}
	}
	for i := range infos[:len(infos)-1] {
		if infos[i].Issuer != infos[i+1].Subject {
			return fmt.Sprintf("NOT IN ORDER: certificate [%d] is issued by %q, but the next one is %q; %s",
				i, infos[i].Issuer, infos[i+1].Subject, fix)
		}
	}
	return ""
}

// certsTornAdvice says what to do with a CA bundle whose files do not
// belong together: a key that is not the certificate's, or a chain or root
// of another CA (a write cut short, or files copied from two sets).
func certsTornAdvice(prefix string, err error) string {
	if !errors.Is(err, pki.ErrKeyMismatch) && !errors.Is(err, pki.ErrChainBroken) {
		return ""
	}
	where := strings.TrimSpace(prefix)
	redo := "causeway certs intermediate --root ROOT --cluster ID --force"
	if dir, ok := strings.CutSuffix(where, string(filepath.Separator)); ok {
		redo += " --out " + dir
	} else {
		redo += " --apply"
	}
	return fmt.Sprintf(" -- THE SET IS TORN: its files come from different CAs; do not plug it in. Restore all four files from one set (a backup, or the cacerts Secret that works), or make a new set: %s", redo)
}

// certsWriteText prints a report for people.
func certsWriteText(w io.Writer, report certsReport, now time.Time) error {
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
