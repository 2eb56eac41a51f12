package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
)

func newRemoteSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote-secret",
		Short: "Manage the secrets that give the control plane access to remote clusters",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRemoteSecretCreateCommand())
	return cmd
}

func newRemoteSecretCreateCommand() *cobra.Command {
	var f remoteSecretCreateFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the control plane's account in a remote cluster and print its remote secret",
		Long: `Connect to a remote cluster (--kubeconfig, with rights to create RBAC objects),
create or update there a ServiceAccount (` + clusters.ReaderName + ` in --namespace) whose
ClusterRole may only get, list and watch namespaces, services, endpointslices,
pods, nodes and Istio's peerauthentications, and for the CA create tokenreviews and keep configmaps (the
root certificate's istio-ca-root-cert in every namespace), obtain a token for it,
and print the remote secret to apply in the primary cluster:

  causeway remote-secret create --kubeconfig remote.kubeconfig --name cluster2 \
    | kubectl --kubeconfig primary.kubeconfig apply -f -

The secret is named istio-remote-secret-ID, labeled istio/multiCluster=true,
annotated networking.istio.io/cluster=ID; its data key ID holds a kubeconfig
with the server, the server's CA and the token (the format istioctl
create-remote-secret writes).

The token: by default a kubernetes.io/service-account-token Secret, which
never expires and is revoked by deleting it (kube-controller-manager's token
controller must run to fill it). With --token-ttl, a TokenRequest token valid
that long instead (the API server may shorten it): re-create the remote secret
before it expires. Running the command again is safe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the remote cluster (default: $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.name, "name", "", "the remote cluster's id (required)")
	fl.StringVar(&f.server, "server", "", "API server URL the control plane dials (default: the kubeconfig's)")
	fl.StringVar(&f.namespace, "namespace", "istio-system", "namespace of the ServiceAccount in the remote cluster and of the secret in the primary")
	fl.DurationVar(&f.tokenTTL, "token-ttl", 0, "request a token valid this long (TokenRequest) instead of a non-expiring service-account-token Secret")
	fl.DurationVar(&f.wait, "wait", 30*time.Second, "how long to wait for the token controller to fill the token Secret")
	fl.StringSliceVar(&f.kcOptions, "allow-kubeconfig-option", nil, "write the secret even if its kubeconfig uses an option the control plane refuses by default (then start serve with the same option): "+kubeconfigOptionUsage)
	return cmd
}

// remoteSecretCreateFlags are the flags of "remote-secret create".
type remoteSecretCreateFlags struct {
	kubeconfig string
	name       string
	server     string
	namespace  string
	tokenTTL   time.Duration
	wait       time.Duration
	kcOptions  []string
}

// run creates the control plane's account in the remote cluster and prints
// its remote secret.
func (f *remoteSecretCreateFlags) run(cmd *cobra.Command) error {
	if f.name == "" {
		return fmt.Errorf("--name is required: the remote cluster's id (the data key of the secret)")
	}
	kcPolicy, err := kubeconfigPolicy(f.kcOptions)
	if err != nil {
		return err
	}
	// --kubeconfig is the operator's own file (an admin's
	// credentials of the remote cluster), loaded as kubectl would;
	// the kubeconfig this command writes is checked against the
	// control plane's policy for remote secrets.
	restCfg, err := loadRESTConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	ca := restCfg.CAData
	if len(ca) == 0 && restCfg.CAFile != "" {
		if ca, err = files.Read(cmd.Context(), restCfg.CAFile, files.PEM); err != nil {
			return fmt.Errorf("read the server's CA: %w", err)
		}
	}
	if len(ca) == 0 {
		return fmt.Errorf("the kubeconfig has no certificate authority for %s (insecure-skip-tls-verify?): the remote secret needs one; add certificate-authority-data", restCfg.Host)
	}
	if f.server == "" {
		f.server = restCfg.Host
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("client of the remote cluster: %w", err)
	}
	rs, err := clusters.CreateRemoteSecret(cmd.Context(), clusters.RemoteSecretConfig{
		Client:    cs,
		ClusterID: model.ClusterID(f.name),
		Server:    f.server,
		CAData:    ca,
		Namespace: f.namespace,
		TokenTTL:  f.tokenTTL,
		Wait:      f.wait,

		KubeconfigPolicy: kcPolicy,
	})
	if err != nil {
		return err
	}
	out, err := clusters.MarshalRemoteSecret(rs.Secret)
	if err != nil {
		return err
	}
	if rs.Expires != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "the token expires at %s: re-create the remote secret before then\n", rs.Expires.UTC().Format(time.RFC3339))
	}
	_, err = cmd.OutOrStdout().Write(out)
	return err
}
