package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/debug"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// meshEnv is three real clusters: cluster1 (net1, a LoadBalancer east-west
// gateway), cluster2 and cluster3 (net2; cluster2 has a NodePort east-west
// gateway with its pod on node-a). Each runs sample/helloworld with one mTLS
// endpoint 10.N.0.5.
type meshEnv struct {
	env      *testenv.Env
	c1       *testenv.Cluster
	c2       *testenv.Cluster
	c3       *testenv.Cluster
	proxy2   *faultProxy // cluster2 as the control plane reaches it
	nodePort int32
}

// must(f())(t) returns f's value, failing t on f's error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func setUpMesh(t *testing.T) *meshEnv {
	t.Helper()
	testreq.NotShort(t, "integration test: starts three kube-apiservers")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2", "cluster3"}})
	m := &meshEnv{env: env, c1: env.Cluster("cluster1"), c2: env.Cluster("cluster2"), c3: env.Cluster("cluster3")}
	ctx := t.Context()
	for i, c := range env.Clusters {
		n := i + 1
		cs := c.Client()
		network := "net2"
		if n == 1 {
			network = "net1"
		}
		must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: network}))(t)
		must(testenv.CreateNamespace(ctx, cs, "sample", nil))(t)
		must(testenv.CreateNode(ctx, cs, "node-a", nil, fmt.Sprintf("203.0.113.%d1", n), fmt.Sprintf("192.168.%d.1", n)))(t)
		must(testenv.CreateNode(ctx, cs, "node-b", nil, fmt.Sprintf("203.0.113.%d2", n), fmt.Sprintf("192.168.%d.2", n)))(t)
		must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld",
			Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
		addHelloworld(t, cs, "helloworld-0", fmt.Sprintf("10.%d.0.5", n))
	}
	// net1's gateway: a LoadBalancer Service in cluster1.
	must(testenv.CreateService(ctx, m.c1.Client(), testenv.Service{Namespace: "istio-system", Name: "istio-eastwestgateway",
		Labels: map[string]string{model.LabelNetwork: "net1"}, Type: corev1.ServiceTypeLoadBalancer,
		Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, TargetPort: intstr.FromInt32(15443)}}}))(t)
	must(testenv.SetLoadBalancerIngress(ctx, m.c1.Client(), "istio-system", "istio-eastwestgateway", "198.51.100.1"))(t)
	// net2's gateway: a NodePort Service in cluster2, its pod on node-a.
	gw := must(testenv.CreateService(ctx, m.c2.Client(), testenv.Service{Namespace: "istio-system", Name: "istio-eastwestgateway",
		Labels: map[string]string{model.LabelNetwork: "net2"}, Type: corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, TargetPort: intstr.FromInt32(15443)}}}))(t)
	m.nodePort = gw.Spec.Ports[0].NodePort
	must(testenv.CreateEndpointSlice(ctx, m.c2.Client(), "istio-system", "istio-eastwestgateway", "istio-eastwestgateway-1",
		[]testenv.EndpointPort{{Name: "tls", Port: 15443}},
		[]testenv.Endpoint{{IP: "10.2.0.100", Ready: true, Node: "node-a", Pod: "gw-0"}}))(t)

	m.proxy2 = startFaultProxy(t, strings.TrimPrefix(m.c2.Host, "https://"))
	return m
}

// addHelloworld adds an mTLS pod and its endpoint (its own slice) on node-a.
func addHelloworld(t *testing.T, cs kubernetes.Interface, name, ip string) {
	t.Helper()
	ctx := t.Context()
	must(testenv.CreatePod(ctx, cs, testenv.Pod{Namespace: "sample", Name: name, Node: "node-a", ServiceAccount: "helloworld",
		Labels: map[string]string{model.LabelTLSMode: "istio", "app": "helloworld"}, IP: ip, Ready: true}))(t)
	must(testenv.CreateEndpointSlice(ctx, cs, "sample", "helloworld", name,
		[]testenv.EndpointPort{{Name: "http", Port: 5000}},
		[]testenv.Endpoint{{IP: ip, Ready: true, Node: "node-a", Pod: name}}))(t)
}

// remoteSecret runs `causeway remote-secret create` for c against the real
// API server and applies its output to cluster1.
func (m *meshEnv) remoteSecret(t *testing.T, c *testenv.Cluster, server string) {
	t.Helper()
	applyRemoteSecret(t, m.c1, c, server)
}

// applyRemoteSecret runs `causeway remote-secret create` for remote
// against the real API server (a TokenRequest token: the harness runs no
// token controller) and applies its output to primary.
func applyRemoteSecret(t *testing.T, primary, remote *testenv.Cluster, server string) {
	t.Helper()
	rs := must(clusters.CreateRemoteSecret(t.Context(), clusters.RemoteSecretConfig{
		Client: remote.Client(), ClusterID: model.ClusterID(remote.ID), Server: server, CAData: remote.CAPEM, TokenTTL: time.Hour,
	}))(t)
	out := must(clusters.MarshalRemoteSecret(rs.Secret))(t)
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(out, &s); err != nil {
		t.Fatal(err)
	}
	must(primary.Client().CoreV1().Secrets("istio-system").Create(t.Context(), &s, metav1.CreateOptions{}))(t)
}

type runningServer struct {
	*testServer
	cancel context.CancelFunc
	done   chan error
}

func (m *meshEnv) serve(t *testing.T, policy clusters.StalePolicy) *runningServer {
	t.Helper()
	return serveCluster(t, m.c1, Config{StalePolicy: policy})
}

// serveCluster runs a server whose config cluster is c (its id the
// cluster's), on loopback ports, with short probes; cfg may set more.
func serveCluster(t *testing.T, c *testenv.Cluster, cfg Config) *runningServer {
	t.Helper()
	cfg.ClusterID = model.ClusterID(c.ID)
	cfg.Local = must(clusters.RESTClients(c.RESTConfig()))(t)
	cfg.DebugAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ProbeInterval, cfg.ProbeTimeout = 200*time.Millisecond, time.Second
	cfg.ClusterSyncTimeout = 30 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	srv := must(New(cfg))(t)
	ctx, cancel := context.WithCancel(t.Context())
	rs := &runningServer{testServer: &testServer{srv: srv}, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- srv.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	testkit.Eventually(t, testkit.WaitTimeout, "debug listener", func() string {
		if srv.DebugAddr() == nil {
			return "not listening"
		}
		return ""
	})
	rs.base = "http://" + srv.DebugAddr().String()
	testkit.Eventually(t, testkit.WaitTimeout, "xDS listener", func() string {
		if srv.XDSAddr() == nil {
			return "not listening"
		}
		return ""
	})
	rs.waitReady(t)
	return rs
}

func (rs *runningServer) stop(t *testing.T) {
	t.Helper()
	if rs.cancel != nil {
		rs.cancel()
		if err := <-rs.done; err != nil {
			t.Errorf("server Run: %v", err)
		}
		rs.cancel = nil
	}
}

// helloworld returns /debug/endpoints of helloworld:5000 for network n as
// ADDRESS:PORT/WEIGHT[ gw] CLUSTER.
func (rs *runningServer) helloworld(t *testing.T, n string) []string {
	t.Helper()
	var v model.View
	if code := rs.get(t, "/debug/endpoints?host=helloworld.sample.svc.cluster.local&port=5000&network="+n, &v); code != 200 {
		return []string{fmt.Sprintf("HTTP %d", code)}
	}
	var out []string
	for i := range v.Endpoints {
		e := &v.Endpoints[i]
		s := fmt.Sprintf("%s:%d/%d", e.Address, e.Port, e.Weight)
		if e.Gateway {
			s += " gw"
		}
		out = append(out, s+" "+string(e.Cluster))
	}
	return out
}

func (rs *runningServer) clusterStates(t *testing.T) []string {
	t.Helper()
	var cl debug.ClustersResponse
	rs.get(t, "/debug/clusters", &cl)
	var out []string
	for i := range cl.Clusters {
		c := &cl.Clusters[i]
		out = append(out, string(c.ID)+" "+string(c.State))
	}
	return out
}

func (rs *runningServer) cluster(t *testing.T, id string) clusters.Status {
	t.Helper()
	var cl debug.ClustersResponse
	rs.get(t, "/debug/clusters", &cl)
	for i := range cl.Clusters {
		c := &cl.Clusters[i]
		if string(c.ID) == id && c.State != clusters.StateError {
			return *c
		}
	}
	return clusters.Status{}
}

func statusTable(t *testing.T, base string) string {
	t.Helper()
	rep := must(debug.FetchReport(t.Context(), http.DefaultClient, base))(t)
	var table strings.Builder
	if err := debug.WriteTable(&table, rep, time.Now()); err != nil {
		t.Fatal(err)
	}
	return table.String()
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestIntegrationThreeClustersTwoNetworks(t *testing.T) {
	m := setUpMesh(t)
	ctx := t.Context()
	start := time.Now()

	// cluster2 is reached through the fault proxy; a malformed secret sits
	// next to the good one from the start.
	m.remoteSecret(t, m.c2, m.proxy2.URL())
	must(m.c1.Client().CoreV1().Secrets("istio-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-remote-secret-broken",
			Labels: map[string]string{clusters.LabelMultiCluster: "true"}},
		StringData: map[string]string{"cluster9": "this is not a kubeconfig"},
	}, metav1.CreateOptions{}))(t)

	rs := m.serve(t, clusters.StalePolicy{})
	if d := cmp.Diff([]string{"cluster1 live", "cluster2 live", "cluster9 error"}, rs.clusterStates(t)); d != "" {
		t.Fatalf("clusters after startup (-want +got)\n%s", d)
	}
	if st := rs.cluster(t, "cluster2"); st.Objects == nil || st.Objects.Pods != 1 || st.Objects.EndpointSlices != 2 || st.Network != "net2" {
		t.Fatalf("cluster2 as the read-only remote account sees it: %+v", st)
	}

	// A secret added at run time adds cluster3.
	m.remoteSecret(t, m.c3, m.c3.Host)
	nodeA := fmt.Sprintf("203.0.113.21:%d", m.nodePort)
	testkit.Eventually(t, testkit.WaitTimeout, "views with three clusters (-want +got)", func() string {
		return cmp.Diff([]string{"10.1.0.5:5000/1 cluster1", nodeA + "/2 gw cluster2"}, rs.helloworld(t, "net1")) +
			cmp.Diff([]string{"10.2.0.5:5000/1 cluster2", "10.3.0.5:5000/1 cluster3", "198.51.100.1:15443/1 gw cluster1"}, rs.helloworld(t, "net2"))
	})
	t.Logf("three clusters on two networks served after %v", time.Since(start).Round(time.Millisecond))

	// A sidecar of net2 connected over real gRPC ADS gets the same view, and
	// later changes made in the apiservers reach it.
	sidecar2 := watchEDS(t, rs.srv.XDSAddr().String(), "net2", "cluster2", "outbound|5000||helloworld.sample.svc.cluster.local")
	sidecar2.await(t, "net2 sidecar's first EDS", []string{"10.2.0.5:5000/1", "10.3.0.5:5000/1", "198.51.100.1:15443/1"})

	// The NodePort gateway's pod moves to node-b: the gateway follows.
	c2 := m.c2.Client()
	slice := must(c2.DiscoveryV1().EndpointSlices("istio-system").Get(ctx, "istio-eastwestgateway-1", metav1.GetOptions{}))(t)
	nodeB := "node-b"
	slice.Endpoints[0].NodeName = &nodeB
	must(c2.DiscoveryV1().EndpointSlices("istio-system").Update(ctx, slice, metav1.UpdateOptions{}))(t)
	nodeBAddr := fmt.Sprintf("203.0.113.22:%d", m.nodePort)
	testkit.Eventually(t, testkit.WaitTimeout, "gateway after its pod moved (-want +got)", func() string {
		return cmp.Diff([]string{"10.1.0.5:5000/1 cluster1", nodeBAddr + "/2 gw cluster2"}, rs.helloworld(t, "net1"))
	})

	// cluster3's system namespace moves to net1: all its endpoints follow.
	ns := must(m.c3.Client().CoreV1().Namespaces().Get(ctx, "istio-system", metav1.GetOptions{}))(t)
	ns.Labels[model.LabelNetwork] = "net1"
	must(m.c3.Client().CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}))(t)
	testkit.Eventually(t, testkit.WaitTimeout, "views after cluster3 moved to net1 (-want +got)", func() string {
		return cmp.Diff([]string{"10.1.0.5:5000/1 cluster1", "10.3.0.5:5000/1 cluster3", nodeBAddr + "/1 gw cluster2"}, rs.helloworld(t, "net1")) +
			cmp.Diff([]string{"10.2.0.5:5000/1 cluster2", "198.51.100.1:15443/2 gw cluster1"}, rs.helloworld(t, "net2"))
	})
	sidecar2.await(t, "net2 sidecar after cluster3 moved to net1", []string{"10.2.0.5:5000/1", "198.51.100.1:15443/2"})

	// cluster2's API server becomes unreachable: stale, its endpoints kept.
	m.proxy2.down()
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 stale", func() string {
		if st := rs.cluster(t, "cluster2"); st.State != clusters.StateStale || st.StaleSeconds <= 0 {
			return fmt.Sprintf("cluster2: %s stale %vs error %q", st.State, st.StaleSeconds, st.Error)
		}
		return ""
	})
	if d := cmp.Diff([]string{"10.2.0.5:5000/1 cluster2", "198.51.100.1:15443/2 gw cluster1"}, rs.helloworld(t, "net2")); d != "" {
		t.Fatalf("endpoints of the stale cluster (-want +got)\n%s", d)
	}
	t.Logf("causeway status while cluster2 is unreachable:\n%s", statusTable(t, rs.base))
	// It changes while unseen; when it answers again the watch re-lists and
	// reconciles: the new endpoint appears, nothing still there is dropped.
	addHelloworld(t, c2, "helloworld-1", "10.2.0.6")
	// Unseen: cluster2 still stale and its old endpoints served, checked
	// after the change (instead of a wall-clock sleep before the return).
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 still stale after the change (-want +got)", func() string {
		if st := rs.cluster(t, "cluster2"); st.State != clusters.StateStale {
			return fmt.Sprintf("cluster2: %s error %q", st.State, st.Error)
		}
		return cmp.Diff([]string{"10.2.0.5:5000/1 cluster2", "198.51.100.1:15443/2 gw cluster1"}, rs.helloworld(t, "net2"))
	})
	m.proxy2.up()
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 back and reconciled (-want +got)", func() string {
		return cmp.Diff(clusters.StateLive, rs.cluster(t, "cluster2").State) +
			cmp.Diff([]string{"10.2.0.5:5000/1 cluster2", "10.2.0.6:5000/1 cluster2", "198.51.100.1:15443/2 gw cluster1"}, rs.helloworld(t, "net2"))
	})

	// cluster3's API server is killed for real (SIGTERM, then SIGKILL): the
	// cluster goes stale and its endpoints are kept; restarted on the same
	// address, the watch re-lists against the new process and a change made
	// after the restart arrives.
	m.c3.Stop()
	testkit.Eventually(t, testkit.WaitTimeout, "cluster3 stale after its apiserver was killed", func() string {
		if st := rs.cluster(t, "cluster3"); st.State != clusters.StateStale {
			return fmt.Sprintf("cluster3: %s error %q", st.State, st.Error)
		}
		return ""
	})
	// cluster2 has two helloworld endpoints now: its gateway weighs 2.
	wantNet1 := []string{"10.1.0.5:5000/1 cluster1", "10.3.0.5:5000/1 cluster3", nodeBAddr + "/2 gw cluster2"}
	if d := cmp.Diff(wantNet1, rs.helloworld(t, "net1")); d != "" {
		t.Fatalf("endpoints of the killed cluster (-want +got)\n%s", d)
	}
	if err := m.c3.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	addHelloworld(t, m.c3.Client(), "helloworld-1", "10.3.0.6")
	testkit.Eventually(t, testkit.WaitTimeout, "cluster3 back after a restart (-want +got)", func() string {
		return cmp.Diff(clusters.StateLive, rs.cluster(t, "cluster3").State) +
			cmp.Diff([]string{"10.1.0.5:5000/1 cluster1", "10.3.0.5:5000/1 cluster3", "10.3.0.6:5000/1 cluster3", nodeBAddr + "/2 gw cluster2"}, rs.helloworld(t, "net1"))
	})

	// Deleting cluster3's secret removes its endpoints from every view
	// within a second.
	removed := time.Now()
	if err := m.c1.Client().CoreV1().Secrets("istio-system").Delete(ctx, "istio-remote-secret-cluster3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "views after removing cluster3 (-want +got)", func() string {
		return cmp.Diff([]string{"10.1.0.5:5000/1 cluster1", nodeBAddr + "/2 gw cluster2"}, rs.helloworld(t, "net1"))
	})
	if took := time.Since(removed); took > time.Second {
		t.Errorf("cluster3 left the views %v after its secret was deleted, want < 1s", took)
	}

	metrics := must(httpGet(rs.base + "/metrics"))(t)
	for _, want := range []string{
		`causeway_clusters{state="live"} 2`,
		`causeway_clusters{state="error"} 1`,
		`causeway_remote_secret_invalid_entries 1`,
		`causeway_endpoints{cluster="cluster2",network="net2"} 3`,
		`causeway_cluster_sync_duration_seconds_count{cluster="cluster2"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	t.Logf("causeway status:\n%s", statusTable(t, rs.base))
	rs.stop(t)

	// The drop policy: a second server with drop-after=1s.
	rd := m.serve(t, clusters.StalePolicy{DropAfter: time.Second})
	want := []string{"10.1.0.5:5000/1 cluster1", nodeBAddr + "/2 gw cluster2"}
	testkit.Eventually(t, testkit.WaitTimeout, "drop-policy server's net1 view (-want +got)", func() string { return cmp.Diff(want, rd.helloworld(t, "net1")) })
	m.proxy2.down()
	down := time.Now()
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 dropped after the grace (-want +got)", func() string {
		return cmp.Diff(clusters.StateDropped, rd.cluster(t, "cluster2").State) +
			cmp.Diff([]string{"10.1.0.5:5000/1 cluster1"}, rd.helloworld(t, "net1"))
	})
	// The grace counts from the last answer, at most one probe interval
	// (200ms) before the proxy went down.
	if since := time.Since(down); since < 800*time.Millisecond {
		t.Errorf("cluster2 dropped %v after it became unreachable, before the 1s grace", since)
	}
	m.proxy2.up()
	testkit.Eventually(t, testkit.WaitTimeout, "cluster2 back after the drop (-want +got)", func() string {
		return cmp.Diff(clusters.StateLive, rd.cluster(t, "cluster2").State) + cmp.Diff(want, rd.helloworld(t, "net1"))
	})
	t.Logf("whole scenario took %v (apiservers started in %v)", time.Since(start).Round(time.Millisecond), m.env.StartupTime.Round(time.Millisecond))
}
