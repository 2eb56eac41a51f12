package clusters

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Clients is what a cluster is watched through.
type Clients struct {
	// Kube reads the cluster.
	Kube kubernetes.Interface
	// Istio reads the cluster's Istio objects (PeerAuthentications). Nil:
	// none are read and the cluster's workloads are PERMISSIVE.
	Istio istioclient.Interface
	// Probe tells a live API server from an unreachable one; it must honor
	// ctx's deadline. Nil: Kube's discovery ServerVersion (what a client-go
	// fake clientset answers).
	Probe func(ctx context.Context) error
	// Server is the API server's URL, for /debug/clusters.
	Server string
}

func (c Clients) probe(ctx context.Context) error {
	if c.Probe != nil {
		return c.Probe(ctx)
	}
	_, err := c.Kube.Discovery().ServerVersion()
	return err
}

// ClientFactory builds the clients of a remote cluster from the kubeconfig
// of its remote secret. It must not reach the network: a cluster that cannot
// be reached is a stale cluster, not a bad secret. Tests inject a factory
// that hands out client-go fake clientsets.
type ClientFactory func(cluster model.ClusterID, kubeconfig []byte) (Clients, error)

// Client-side rate limits of the watch clients: the informers list five
// kinds at start and then only watch.
const (
	clientQPS   = 50
	clientBurst = 100
	userAgent   = "causeway"
)

// KubeconfigClients is the default [ClientFactory]. It accepts the
// kubeconfig `istioctl create-remote-secret` and `causeway remote-secret
// create` write: a current context whose user authenticates with a bearer
// token or a client certificate, inline. It refuses, with an error saying
// what to change, what would make the control plane run commands or read
// its own files on behalf of a secret's author: exec credential plugins,
// auth-provider plugins, and paths to token, certificate or key files.
func KubeconfigClients(cluster model.ClusterID, kubeconfig []byte) (Clients, error) {
	cfg, err := restConfigFromKubeconfig(kubeconfig)
	if err != nil {
		return Clients{}, fmt.Errorf("kubeconfig of cluster %s: %w", cluster, err)
	}
	c, err := RESTClients(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("kubeconfig of cluster %s: %w", cluster, err)
	}
	return c, nil
}

// RESTClients builds the clients of a cluster from a client configuration
// (the config cluster's, from --kubeconfig). The probe reads the API
// server's /readyz.
func RESTClients(cfg *rest.Config) (Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = clientQPS, clientBurst
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	if cfg.ContentType == "" {
		// Protobuf for the built-in kinds, as Kubernetes' own controllers
		// do: a large cluster's initial lists decode several times faster
		// and with far less garbage than JSON.
		cfg.ContentType = runtime.ContentTypeProtobuf
		cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("build a client for %s: %w", cfg.Host, err)
	}
	// Istio's objects are custom resources, which the API server serves
	// in JSON only.
	icfg := rest.CopyConfig(cfg)
	icfg.ContentType, icfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	ic, err := istioclient.NewForConfig(icfg)
	if err != nil {
		return Clients{}, fmt.Errorf("build an Istio client for %s: %w", cfg.Host, err)
	}
	rc := cs.Discovery().RESTClient()
	return Clients{
		Kube:   cs,
		Istio:  ic,
		Server: cfg.Host,
		Probe: func(ctx context.Context) error {
			// /readyz is readable by everyone (system:public-info-viewer)
			// and fails while the server shuts down.
			return rc.Get().AbsPath("/readyz").Do(ctx).Error()
		},
	}, nil
}

// restConfigFromKubeconfig parses a remote secret's kubeconfig and checks
// that it is self-contained and uses a plain credential.
func restConfigFromKubeconfig(data []byte) (*rest.Config, error) {
	if len(data) == 0 {
		return nil, errors.New("it is empty: put the cluster's kubeconfig under the data key")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil || doc == nil {
		return nil, errors.New("it is not a kubeconfig (a YAML document with clusters, users and contexts): put the output of `causeway remote-secret create` (or `istioctl create-remote-secret`) there")
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("it does not parse (%w): it must be a kubeconfig as `causeway remote-secret create` writes", err)
	}
	name := cfg.CurrentContext
	if name == "" {
		if len(cfg.Contexts) != 1 {
			return nil, fmt.Errorf("it has no current-context and %d contexts: set current-context", len(cfg.Contexts))
		}
		for n := range cfg.Contexts {
			name = n
		}
	}
	kctx, ok := cfg.Contexts[name]
	if !ok {
		return nil, fmt.Errorf("its current-context %q is not among its contexts %v", name, slices.Sorted(maps.Keys(cfg.Contexts)))
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("context %q names cluster %q, which it does not define", name, kctx.Cluster)
	}
	user, ok := cfg.AuthInfos[kctx.AuthInfo]
	if !ok {
		return nil, fmt.Errorf("context %q names user %q, which it does not define", name, kctx.AuthInfo)
	}
	if err := checkCluster(kctx.Cluster, cluster); err != nil {
		return nil, err
	}
	if err := checkUser(kctx.AuthInfo, user); err != nil {
		return nil, err
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	return rc, nil
}

func checkCluster(name string, c *clientcmdapi.Cluster) error {
	switch {
	case c.Server == "":
		return fmt.Errorf("cluster %q has no server URL: set clusters[].cluster.server", name)
	case c.CertificateAuthority != "":
		return fmt.Errorf("cluster %q names a certificate-authority file (%s), which the control plane will not read: inline it as certificate-authority-data", name, c.CertificateAuthority)
	}
	return nil
}

func checkUser(name string, u *clientcmdapi.AuthInfo) error {
	switch {
	case u.Exec != nil:
		return fmt.Errorf("user %q authenticates with an exec plugin (%s), which the control plane will not run: use a service-account token (causeway remote-secret create writes one)", name, u.Exec.Command)
	case u.AuthProvider != nil:
		return fmt.Errorf("user %q authenticates with auth-provider %q, which is not supported: use a service-account token (causeway remote-secret create writes one)", name, u.AuthProvider.Name)
	case u.TokenFile != "":
		return fmt.Errorf("user %q names a token file (%s), which the control plane will not read: inline the token", name, u.TokenFile)
	case u.ClientCertificate != "" || u.ClientKey != "":
		return fmt.Errorf("user %q names client certificate or key files, which the control plane will not read: inline them as client-certificate-data and client-key-data", name)
	case u.Token == "" && len(u.ClientCertificateData) == 0 && u.Username == "":
		return fmt.Errorf("user %q has no credential: give it a token (causeway remote-secret create writes one) or a client certificate", name)
	}
	return nil
}
