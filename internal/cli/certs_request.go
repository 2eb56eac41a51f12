package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Files `causeway certs request` writes.
const (
	certsRequestKeyFile   = "key.pem"
	certsRequestChainFile = "cert-chain.pem"
)

// certsRequestFlags are the flags of `causeway certs request`.
type certsRequestFlags struct {
	caAddr         string
	tokenFile      string
	clusterID      string
	rootCert       string
	serverName     string
	namespace      string
	serviceAccount string
	trustDomain    string
	ttl            time.Duration
	timeout        time.Duration
	out            string
}

func newCertsRequestCommand() *cobra.Command {
	var f certsRequestFlags
	cmd := &cobra.Command{
		Use:   "request --ca-addr HOST:PORT --token-file FILE --namespace NS --service-account SA --out DIR",
		Short: "Fetch a workload certificate from the control plane's CA, as a sidecar's agent does",
		Long: `Ask the control plane's CA (istio.v1.auth.IstioCertificateService/CreateCertificate
on its secure port, 15012) for a workload certificate, the way Istio's agent
does, without grpcurl: make a new ECDSA P-256 key, a CSR whose only name is the
SPIFFE id spiffe://TRUST_DOMAIN/ns/NS/sa/SA, and send it with the
service-account token of --token-file as "authorization: Bearer" and, with
--cluster-id, the cluster the token comes from as "clusterid" metadata.

The CA's serving certificate is verified against --root-cert (root-cert.pem of
the ConfigMap istio-ca-root-cert; default: the system's roots) for the name
--server-name (default: the host of --ca-addr), so a CA reached through an
address its certificate does not name (a port-forward, an east-west gateway)
needs --server-name istiod.istio-system.svc or a custom host.

It writes into --out, replacing what is there (a new certificate is a renewal):

  key.pem         the new key (mode 0600)
  cert-chain.pem  the workload certificate, then the CA's intermediates
  root-cert.pem   the root the chain leads to

A token for the audience istio-ca, as Istio's agents use:

  kubectl -n NS create token SA --audience istio-ca > token`,
		Example: `  kubectl -n app create token workload --audience istio-ca > token
  kubectl -n istio-system get configmap istio-ca-root-cert -o jsonpath='{.data.root-cert\.pem}' > root-cert.pem
  causeway certs request --ca-addr 127.0.0.1:15012 --server-name istiod.istio-system.svc \
    --root-cert root-cert.pem --token-file token --namespace app --service-account workload --out workload
  causeway certs inspect workload/cert-chain.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.caAddr, "ca-addr", "", "HOST:PORT of the CA (the control plane's secure port, 15012)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the service-account token (audience istio-ca)")
	fl.StringVar(&f.clusterID, "cluster-id", "", "cluster the token comes from (default: the control plane's config cluster)")
	fl.StringVar(&f.rootCert, "root-cert", "", "PEM root to verify the CA's certificate with (default: the system's roots)")
	fl.StringVar(&f.serverName, "server-name", "", "name the CA's certificate must carry (default: the host of --ca-addr)")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the service account")
	fl.StringVar(&f.serviceAccount, "service-account", "", "service account the token belongs to")
	fl.StringVar(&f.trustDomain, "trust-domain", model.DefaultDomain, "trust domain of the SPIFFE id")
	fl.DurationVar(&f.ttl, "ttl", pki.DefaultWorkloadTTL, "validity to ask for (the CA may grant less)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the CA")
	fl.StringVar(&f.out, "out", "", "folder to write key.pem, cert-chain.pem and root-cert.pem into (made if missing)")
	for _, name := range []string{"ca-addr", "token-file", "namespace", "service-account", "out"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func (f *certsRequestFlags) run(cmd *cobra.Command) error {
	if err := f.check(); err != nil {
		return err
	}
	token, err := files.Read(cmd.Context(), f.tokenFile, files.Token)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(token))
	if tok == "" {
		return fmt.Errorf("--token-file %s is empty: write a service-account token into it (kubectl -n %s create token %s --audience istio-ca)",
			f.tokenFile, f.namespace, f.serviceAccount)
	}
	root, err := f.readRoot()
	if err != nil {
		return err
	}
	id := model.SPIFFEID(f.trustDomain, f.namespace, f.serviceAccount)
	client := &ca.Client{Addr: f.caAddr, ServerName: f.serverName, RootPEM: root, Token: tok, ClusterID: f.clusterID}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	issued, err := client.Request(ctx, id, f.ttl)
	if callErr, ok := errors.AsType[*ca.CallError](err); ok {
		return f.explain(callErr.Err, callErr.ServerName)
	}
	if err != nil {
		return err
	}
	keyPEM, err := issued.KeyPEM()
	if err != nil {
		return err
	}
	leaf := issued.Leaf
	files := []pki.File{
		{Name: certsRequestKeyFile, Data: keyPEM, Mode: pki.KeyMode},
		{Name: certsRequestChainFile, Data: issued.Chain, Mode: pki.CertMode},
		{Name: pki.FileRootCert, Data: issued.Root, Mode: pki.CertMode},
	}
	// A workload certificate is renewed by fetching a new one: replace.
	if err := pki.WriteFiles(f.out, files, true); err != nil {
		return err
	}
	var b strings.Builder
	for _, file := range files {
		fmt.Fprintf(&b, "wrote %s\n", filepath.Join(f.out, file.Name))
	}
	fmt.Fprintf(&b, "  %s, valid until %s, issued by %s\n", id, leaf.NotAfter.UTC().Format(time.RFC3339), leaf.Issuer)
	_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
	return err
}

// check checks the flags that need no file.
func (f *certsRequestFlags) check() error {
	if _, _, err := net.SplitHostPort(f.caAddr); err != nil {
		return fmt.Errorf("--ca-addr %q: want HOST:PORT, such as istiod.istio-system.svc:15012: %w", f.caAddr, err)
	}
	for _, v := range []struct{ flag, value string }{{"--namespace", f.namespace}, {"--service-account", f.serviceAccount}} {
		if errs := validation.IsDNS1123Subdomain(v.value); len(errs) > 0 {
			return fmt.Errorf("%s %q: %s", v.flag, v.value, strings.Join(errs, "; "))
		}
	}
	if errs := validation.IsDNS1123Subdomain(f.trustDomain); len(errs) > 0 {
		return fmt.Errorf("--trust-domain %q: %s", f.trustDomain, strings.Join(errs, "; "))
	}
	if f.ttl < time.Second {
		return fmt.Errorf("--ttl %v: want at least 1s", f.ttl)
	}
	return nil
}

// readRoot reads --root-cert, the root to verify the CA with; nil (the
// system's roots) without it.
func (f *certsRequestFlags) readRoot() ([]byte, error) {
	if f.rootCert == "" {
		return nil, nil
	}
	data, err := files.Read(context.Background(), f.rootCert, files.PEM)
	if err != nil {
		return nil, fmt.Errorf("--root-cert: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--root-cert %s holds no PEM certificate: give root-cert.pem of ConfigMap %s", f.rootCert, ca.RootConfigMapName)
	}
	return data, nil
}

// explain turns a failed call into an error that says what to change.
func (f *certsRequestFlags) explain(err error, serverName string) error {
	st := status.Convert(err)
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("the CA refused the token: %s: check --token-file (a token of service account %s/%s, audience istio-ca) and --cluster-id (the cluster that issued it)",
			msg, f.namespace, f.serviceAccount)
	case codes.PermissionDenied:
		return fmt.Errorf("the CA refused the request: %s: --namespace and --service-account must be those of the token", msg)
	case codes.Unavailable, codes.DeadlineExceeded:
		var hint string
		switch {
		case strings.Contains(msg, "certificate is valid for"), strings.Contains(msg, "not valid for any names"),
			strings.Contains(msg, "doesn't contain any IP SANs"):
			hint = "; pass --server-name with a name the CA's certificate carries (istiod.istio-system.svc, or a --custom-host of causeway serve)"
		case strings.Contains(msg, "unknown authority"):
			hint = "; pass --root-cert with root-cert.pem of ConfigMap " + ca.RootConfigMapName
		case strings.Contains(msg, "connection refused"), st.Code() == codes.DeadlineExceeded:
			hint = "; is the control plane listening there (causeway serve --xds-tls-addr)?"
		}
		return fmt.Errorf("reach the CA at %s (server name %s): %s%s", f.caAddr, serverName, msg, hint)
	}
	return fmt.Errorf("the CA at %s: %s: %s", f.caAddr, st.Code(), msg)
}
