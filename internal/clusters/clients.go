package clusters

import (
	"context"
	"fmt"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
// its own files on behalf of a secret's author (exec credential plugins,
// auth-provider plugins, paths to token, certificate or key files) and,
// unless the policy allows them, the options of [KubeconfigPolicy].
//
// It applies the default [KubeconfigPolicy]; [KubeconfigClientsWith] takes
// another.
func KubeconfigClients(cluster model.ClusterID, kubeconfig []byte) (Clients, error) {
	return KubeconfigClientsWith(KubeconfigPolicy{})(cluster, kubeconfig)
}

// KubeconfigClientsWith is the [ClientFactory] that sanitizes every
// kubeconfig with [SanitizeKubeconfig] under policy p.
func KubeconfigClientsWith(p KubeconfigPolicy) ClientFactory {
	return func(cluster model.ClusterID, kubeconfig []byte) (Clients, error) {
		cfg, err := SanitizeKubeconfig(kubeconfig, p)
		if err != nil {
			return Clients{}, fmt.Errorf("kubeconfig of cluster %s: %w", cluster, err)
		}
		c, err := RESTClients(cfg)
		if err != nil {
			return Clients{}, fmt.Errorf("kubeconfig of cluster %s: %w", cluster, err)
		}
		return c, nil
	}
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
