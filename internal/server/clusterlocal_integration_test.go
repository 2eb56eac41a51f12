package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationClusterLocalHosts: two real clusters in one network,
// each with kubernetes.default's endpoint (its own API server, written as
// the apiserver's endpoint reconciler would; the harness turns it off) and a helloworld pod. A
// sidecar of cluster1 sees only cluster1's API server, a sidecar of
// cluster2 only cluster2's (Istio's default cluster-local hosts); the mesh
// config given to the server (--mesh-config) makes *.sample.svc
// cluster-local too, while other.global stays merged.
func TestIntegrationClusterLocalHosts(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	ctx := t.Context()
	for i, c := range env.Clusters {
		n := i + 1
		cs := c.Client()
		must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1"}))(t)
		// The API server makes the Service default/kubernetes itself, soon
		// after it is ready: wait for it rather than race it.
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		}); err != nil {
			t.Fatalf("cluster%d: the API server did not make Service default/kubernetes: %v", n, err)
		}
		// The API server's address on its node's network (an EndpointSlice
		// may not hold a loopback address).
		must(testenv.CreateEndpointSlice(ctx, cs, "default", "kubernetes", "kubernetes",
			[]testenv.EndpointPort{{Name: "https", Port: 6443}},
			[]testenv.Endpoint{{IP: fmt.Sprintf("172.18.0.%d", n), Ready: true}}))(t)

		for _, ns := range []string{"sample", "global"} {
			must(testenv.CreateNamespace(ctx, cs, ns, nil))(t)
		}
		must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld",
			Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
		addHelloworld(t, cs, "helloworld-0", fmt.Sprintf("10.%d.0.5", n))
		must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "global", Name: "other",
			Ports: []corev1.ServicePort{{Name: "http", Port: 9000, TargetPort: intstr.FromInt32(9000)}}}))(t)
		must(testenv.CreateEndpointSlice(ctx, cs, "global", "other", "other",
			[]testenv.EndpointPort{{Name: "http", Port: 9000}},
			[]testenv.Endpoint{{IP: fmt.Sprintf("10.%d.0.9", n), Ready: true}}))(t)
	}
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	rs := must(clusters.CreateRemoteSecret(ctx, clusters.RemoteSecretConfig{
		Client: c2.Client(), ClusterID: "cluster2", Server: c2.Host, CAData: c2.CAPEM, TokenTTL: time.Hour,
	}))(t)
	must(c1.Client().CoreV1().Secrets("istio-system").Create(ctx, rs.Secret, metav1.CreateOptions{}))(t)

	meshConfig := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(meshConfig, []byte(`
serviceSettings:
- settings:
    clusterLocal: true
  hosts:
  - "*.sample.svc.cluster.local"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := must(New(Config{
		ClusterID:          "cluster1",
		Local:              must(clusters.RESTClients(c1.RESTConfig()))(t),
		MeshConfigFile:     meshConfig,
		XDSAddr:            "127.0.0.1:0",
		DebugAddr:          "127.0.0.1:0",
		ClusterSyncTimeout: 30 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(t.Output(), nil)),
	}))(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
	testkit.Eventually(t, testkit.WaitTimeout, "xDS listener", func() string {
		if srv.XDSAddr() == nil {
			return "not listening"
		}
		return ""
	})
	addr := srv.XDSAddr().String()

	const (
		kube  = "outbound|443||kubernetes.default.svc.cluster.local"
		hello = "outbound|5000||helloworld.sample.svc.cluster.local"
		other = "outbound|9000||other.global.svc.cluster.local"
	)
	for _, tc := range []struct {
		cluster   string
		kube      []string
		hello     []string
		otherWant []string
	}{
		{"cluster1", []string{"172.18.0.1:6443/1"}, []string{"10.1.0.5:5000/1"}, []string{"10.1.0.9:9000/1", "10.2.0.9:9000/1"}},
		{"cluster2", []string{"172.18.0.2:6443/1"}, []string{"10.2.0.5:5000/1"}, []string{"10.1.0.9:9000/1", "10.2.0.9:9000/1"}},
	} {
		watchEDS(t, addr, "net1", tc.cluster, kube).await(t, "kubernetes.default from "+tc.cluster, tc.kube)
		watchEDS(t, addr, "net1", tc.cluster, hello).await(t, "helloworld (cluster-local by the mesh config) from "+tc.cluster, tc.hello)
		watchEDS(t, addr, "net1", tc.cluster, other).await(t, "other.global (global) from "+tc.cluster, tc.otherWant)
	}
}
