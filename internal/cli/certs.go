package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
)

const (
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
	var f certsIntermediateFlags
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
		Example: `  # The home lab's flow: one root, one intermediate per cluster.
  causeway certs root --out certs
  causeway certs intermediate --root certs --cluster cluster1
  causeway certs intermediate --root certs --cluster cluster2

  # Make and plug in at once.
  causeway certs intermediate --root certs --cluster cluster1 --apply --kubeconfig ~/.kube/cluster1

  # Replace an existing intermediate (the old key is lost).
  causeway certs intermediate --root certs --cluster cluster1 --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd)
		},
	}
	cmd.Flags().StringVar(&f.rootDir, "root", "", "folder holding root-cert.pem and root-key.pem (made by \"causeway certs root\")")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "id of the cluster the CA is for; it goes in the subject's L")
	cmd.Flags().StringVar(&f.out, "out", "", "folder to write the four files into (default ROOT/CLUSTER)")
	cmd.Flags().IntVar(&f.days, "days", pki.DefaultIntermediateDays, "days of validity")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace existing files (the old intermediate key is lost)")
	cmd.Flags().BoolVar(&f.apply, "apply", false, "also create or update the Secret cacerts in the cluster")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", certsDefaultNamespace, "namespace of the cacerts Secret (with --apply)")
	f.keys.register(cmd)
	f.kube.register(cmd)
	_ = cmd.MarkFlagRequired("root")
	_ = cmd.MarkFlagRequired("cluster")
	return cmd
}

// certsIntermediateFlags are the flags of "certs intermediate".
type certsIntermediateFlags struct {
	rootDir, cluster, out string
	days                  int
	keys                  certsKeyFlags
	force, apply          bool
	namespace             string
	kube                  certsKubeFlags
}

// run makes the intermediate from the root, writes its files and, with
// --apply, plugs it into the cluster as the Secret cacerts.
func (f *certsIntermediateFlags) run(cmd *cobra.Command) error {
	if err := certsCheckClusterID(f.cluster); err != nil {
		return err
	}
	if f.out == "" {
		f.out = filepath.Join(f.rootDir, f.cluster)
	}
	kt, bits, err := f.keys.parse()
	if err != nil {
		return err
	}
	rootCert, rootKey, err := pki.ReadRoot(cmd.Context(), f.rootDir)
	if err != nil {
		return err
	}
	bundle, err := pki.NewIntermediate(pki.IntermediateOptions{
		RootCert: rootCert, RootKey: rootKey, Cluster: f.cluster, Days: f.days, KeyType: kt, RSABits: bits,
	})
	if err != nil {
		return fmt.Errorf("root in %s: %w", f.rootDir, err)
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
	if f.apply {
		if cs, host, err = f.kube.client(); err != nil {
			return err
		}
	}
	if err := pki.WriteFiles(f.out, files, f.force); err != nil {
		return err
	}
	if err := certsReportWritten(cmd.OutOrStdout(), f.out, files, bundle.CertChain); err != nil {
		return err
	}
	if !f.apply {
		return nil
	}
	created, err := ca.ApplyPluginSecret(cmd.Context(), cs, f.namespace, bundle)
	if err != nil {
		return fmt.Errorf("plug the CA into %s: %w (the files are in %s: fix the cause and run again with --force to make and plug in a new CA, or create the Secret from them yourself)",
			host, err, f.out)
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s Secret %s/%s in %s\n", verb, f.namespace, ca.PluginSecretName, host)
	return err
}

// certsCheckClusterID checks --cluster with the one cluster-id rule.
func certsCheckClusterID(id string) error {
	if err := model.CheckClusterID(id); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	return nil
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
