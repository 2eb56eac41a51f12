package testenv

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Client-side rate limits of the harness's clients: high enough that tests
// writing thousands of objects are not throttled by client-go's defaults
// (5 QPS), bounded so that a runaway loop still shows up as slowness.
const (
	clientQPS   = 1000
	clientBurst = 2000
)

// ServiceAccountIssuer is the service-account token issuer of every cluster
// (the kubeadm default); it is also the apiservers' default API audience.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is one running kube-apiserver with its own etcd prefix, CA, admin
// token and service-account signing key.
type Cluster struct {
	// ID names the cluster (the remote-secret data key, --cluster-id).
	ID string
	// Host is the apiserver URL, https://127.0.0.1:PORT.
	Host string
	// CAPEM is the PEM CA that signed the apiserver's serving certificate.
	CAPEM []byte
	// AdminToken is a bearer token of a user in group system:masters.
	AdminToken string
	// ServiceCIDR is the Service cluster-IP range (distinct per cluster).
	ServiceCIDR netip.Prefix
	// EtcdPrefix is where the cluster keeps its objects in the Env's etcd.
	EtcdPrefix string

	config     *rest.Config
	client     kubernetes.Interface
	kubeconfig []byte
	// saKeyPath is the apiserver's service-account signing key (PEM).
	saKeyPath string

	// What Stop and Restart need: the runner that owns the processes, the
	// apiserver's command line and log, and the process now running.
	runner  *runner
	bin     string
	args    []string
	logPath string
	mu      sync.Mutex
	proc    *process
}

func newCluster(id, host string, caPEM []byte, token string, serviceCIDR netip.Prefix) (*Cluster, error) {
	c := &Cluster{
		ID:          id,
		Host:        host,
		CAPEM:       caPEM,
		AdminToken:  token,
		ServiceCIDR: serviceCIDR,
		EtcdPrefix:  "/cluster-" + id,
		config: &rest.Config{
			Host:            host,
			BearerToken:     token,
			TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
			QPS:             clientQPS,
			Burst:           clientBurst,
			UserAgent:       "causeway-testenv",
		},
	}
	client, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return nil, fmt.Errorf("client of cluster %s: %w", id, err)
	}
	c.client = client

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[id] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[id] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[id] = &clientcmdapi.Context{Cluster: id, AuthInfo: id}
	cfg.CurrentContext = id
	if c.kubeconfig, err = clientcmd.Write(*cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig of cluster %s: %w", id, err)
	}
	return c, nil
}

// RESTConfig returns a copy of the admin client configuration (the caller
// may change it).
func (c *Cluster) RESTConfig() *rest.Config {
	return rest.CopyConfig(c.config)
}

// Client returns the admin clientset of the cluster.
func (c *Cluster) Client() kubernetes.Interface {
	return c.client
}

// Kubeconfig returns a kubeconfig (clientcmd format) whose cluster, user and
// current context are all named by the cluster ID, with the CA inline and
// the admin token: what `istioctl create-remote-secret` puts in a remote
// secret.
func (c *Cluster) Kubeconfig() []byte {
	return bytes.Clone(c.kubeconfig)
}

// WriteKubeconfig writes [Cluster.Kubeconfig] into a temporary folder of t
// and returns its path.
func (c *Cluster) WriteKubeconfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), c.ID+".kubeconfig")
	if err := os.WriteFile(path, c.kubeconfig, 0o600); err != nil {
		t.Fatalf("testenv: write kubeconfig of cluster %s: %v", c.ID, err)
	}
	return path
}
