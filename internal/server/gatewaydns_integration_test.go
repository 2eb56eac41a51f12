package server

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/gatewaydns"
	"github.com/causeway-mesh/causeway/internal/gatewaydns/dnstest"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// latestEDS watches one EDS resource and keeps the latest response's
// endpoints as ADDRESS:PORT (weights left out), and every response since
// mark was called.
type latestEDS struct {
	mu    sync.Mutex
	last  []string
	since [][]string
}

func watchLatest(t *testing.T, addr, network, cluster, resource string) *latestEDS {
	t.Helper()
	l := &latestEDS{}
	watchEDSObserved(t, addr, network, cluster, resource, func(eps []string) {
		out := make([]string, len(eps))
		for i, e := range eps {
			out[i], _, _ = strings.Cut(e, "/")
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.last = out
		l.since = append(l.since, out)
	})
	return l
}

func (l *latestEDS) await(t *testing.T, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testkit.Eventually(t, testkit.WaitTimeout, what+" (-want +got)", func() string {
		l.mu.Lock()
		defer l.mu.Unlock()
		return cmp.Diff(want, l.last)
	})
}

// mark forgets the responses received so far.
func (l *latestEDS) mark() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since = nil
}

func (l *latestEDS) responsesSinceMark() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.since)
}

// TestIntegrationGatewayHostnames: net2's gateway is a LoadBalancer Service
// of cluster2 that publishes only a hostname, net1's a meshNetworks
// gateway address that is a hostname; both are resolved by a DNS server on
// loopback that the test controls. Sidecars of each network get the other
// network's endpoints through the resolved addresses, follow a changed
// answer, and keep the last good addresses while the DNS server fails,
// which /debug/networks reports.
func TestIntegrationGatewayHostnames(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers")
	dns := dnstest.Start(t)
	dns.Set("gw1.example.test", 1, "192.0.2.11")
	dns.Set("gw2.example.test", 1, "192.0.2.21")

	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	ctx := t.Context()
	for i, c := range env.Clusters {
		cs := c.Client()
		must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: fmt.Sprintf("net%d", i+1)}))(t)
		must(testenv.CreateNamespace(ctx, cs, "sample", nil))(t)
		must(testenv.CreateNode(ctx, cs, "node-a", nil, "", fmt.Sprintf("192.168.%d.1", i+1)))(t)
		must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld",
			Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
		addHelloworld(t, cs, "helloworld-0", fmt.Sprintf("10.%d.0.5", i+1))
	}
	must(testenv.CreateService(ctx, c2.Client(), testenv.Service{Namespace: "istio-system", Name: "istio-eastwestgateway",
		Labels: map[string]string{model.LabelNetwork: "net2"}, Type: corev1.ServiceTypeLoadBalancer,
		Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, TargetPort: intstr.FromInt32(15443)}}}))(t)
	must(testenv.SetLoadBalancerIngress(ctx, c2.Client(), "istio-system", "istio-eastwestgateway", "gw2.example.test"))(t)
	applyRemoteSecret(t, c1, c2, c2.Host)

	mn := filepath.Join(t.TempDir(), "meshnetworks.yaml")
	if err := os.WriteFile(mn, []byte("networks: {net1: {gateways: [{address: gw1.example.test, port: 15443}]}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := serveCluster(t, c1, Config{
		MeshNetworksFile: mn,
		GatewayDNS: gatewaydns.Config{
			Servers: []string{dns.Addr},
			MinTTL:  50 * time.Millisecond, MaxTTL: 200 * time.Millisecond, Refresh: 100 * time.Millisecond,
		},
	})
	const resource = "outbound|5000||helloworld.sample.svc.cluster.local"
	addr := rs.srv.XDSAddr().String()
	side1 := watchLatest(t, addr, "net1", "cluster1", resource)
	side2 := watchLatest(t, addr, "net2", "cluster2", resource)
	side1.await(t, "net1's view through net2's LoadBalancer hostname", "10.1.0.5:5000", "192.0.2.21:15443")
	side2.await(t, "net2's view through net1's meshNetworks address", "10.2.0.5:5000", "192.0.2.11:15443")

	// The answers change: the views follow.
	dns.Set("gw2.example.test", 1, "192.0.2.22", "192.0.2.23")
	dns.Set("gw1.example.test", 1, "192.0.2.12")
	side1.await(t, "net1's view after gw2's answer changed", "10.1.0.5:5000", "192.0.2.22:15443", "192.0.2.23:15443")
	side2.await(t, "net2's view after gw1's answer changed", "10.2.0.5:5000", "192.0.2.12:15443")

	// The DNS server fails: the last good addresses stay, and
	// /debug/networks says so.
	side1.mark()
	side2.mark()
	dns.Fail(true)
	testkit.Eventually(t, testkit.WaitTimeout, "failure in /debug/networks", func() string {
		_, w := networksOf(t, rs.testServer)
		for _, want := range []string{
			"gateway hostname gw2.example.test: lookup failing since",
			"last good addresses 192.0.2.22, 192.0.2.23 are kept",
			"gateway hostname gw1.example.test: lookup failing since",
		} {
			if !hasWarning(w, want) {
				return fmt.Sprintf("no warning %q in %q", want, w)
			}
		}
		return ""
	})
	// Lookups keep failing (every Refresh) while the views stay.
	n := dns.Queries()
	testkit.Eventually(t, testkit.WaitTimeout, "lookups retried while failing", func() string {
		if dns.Queries() < n+4 {
			return "no new queries"
		}
		return ""
	})
	side1.await(t, "net1's view while DNS fails", "10.1.0.5:5000", "192.0.2.22:15443", "192.0.2.23:15443")
	side2.await(t, "net2's view while DNS fails", "10.2.0.5:5000", "192.0.2.12:15443")
	for _, side := range []*latestEDS{side1, side2} {
		for _, eps := range side.responsesSinceMark() {
			if !slices.ContainsFunc(eps, func(e string) bool { return strings.HasSuffix(e, ":15443") }) {
				t.Errorf("a sidecar lost the other network's gateway while DNS failed: %v", eps)
			}
		}
	}

	// It answers again, with a new address.
	dns.Set("gw2.example.test", 1, "192.0.2.24")
	dns.Fail(false)
	side1.await(t, "net1's view after DNS recovered", "10.1.0.5:5000", "192.0.2.24:15443")
	testkit.Eventually(t, testkit.WaitTimeout, "warnings cleared", func() string {
		_, w := networksOf(t, rs.testServer)
		if hasWarning(w, "lookup failing") {
			return fmt.Sprintf("%q", w)
		}
		return ""
	})
}
