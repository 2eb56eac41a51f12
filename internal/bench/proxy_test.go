package bench

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// gcpServer is go-control-plane's own ADS server over a snapshot cache, on
// a loopback port: a server the harness's proxies did not grow up with.
type gcpServer struct {
	addr  string
	cache cachev3.SnapshotCache
}

func startGCPServer(t *testing.T) *gcpServer {
	t.Helper()
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	srv := serverv3.NewServer(t.Context(), cache, nil)
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return &gcpServer{addr: lis.Addr().String(), cache: cache}
}

type ep struct {
	ip     string
	port   uint32
	weight uint32
}

func cla(name string, eps ...ep) *endpointv3.ClusterLoadAssignment {
	c := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	loc := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{}}
	for _, e := range eps {
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: e.ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.port},
				}}},
			}},
			LoadBalancingWeight: wrapperspb.UInt32(e.weight),
		})
	}
	c.Endpoints = []*endpointv3.LocalityLbEndpoints{loc}
	return c
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{}}},
	}
}

func (g *gcpServer) set(t *testing.T, node string, version int, loads ...*endpointv3.ClusterLoadAssignment) {
	t.Helper()
	clusters := []types.Resource{
		// A cluster that is not EDS: no subscription for it.
		&clusterv3.Cluster{Name: "BlackHoleCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}},
	}
	var eps []types.Resource
	for _, c := range loads {
		clusters = append(clusters, edsCluster(c.ClusterName))
		eps = append(eps, c)
	}
	snap, err := cachev3.NewSnapshot(strconv.Itoa(version), map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  clusters,
		resourcev3.EndpointType: eps,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cache.SetSnapshot(t.Context(), node, snap); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "timed out waiting for "+what, testkit.Holds(cond))
}

// TestProxyAgainstGoControlPlane runs one simulated proxy, SotW and delta,
// against go-control-plane's server: it must reach the full view, see a
// change, see a change that a later one of the same slice superseded,
// count one that never comes as undelivered, and hold what it got while
// stalled.
func TestProxyAgainstGoControlPlane(t *testing.T) {
	const a, b = "outbound|80||a.bench.svc.cluster.local", "outbound|80||b.bench.svc.cluster.local"
	for _, proto := range []Protocol{ProtocolSotW, ProtocolDelta} {
		t.Run(string(proto), func(t *testing.T) {
			g := startGCPServer(t)
			log := &changeLog{byName: map[string]*series{a: {}, b: {}}}
			sh := &shared{intern: newInternTable(), logs: map[string]*changeLog{"network1": log}, phases: []*phaseStats{{}, {}}}
			expect := map[string]string{
				a: "10.16.0.1:8080*1,10.16.0.2:8080*1,198.51.100.2:15443*2",
				b: "10.16.0.3:8080*1",
			}
			px := newProxy(sh, 0, 7, "network1", "cluster1", proto, expect)
			g.set(t, px.id, 1,
				cla(a, ep{"10.16.0.1", 8080, 1}, ep{"10.16.0.2", 8080, 1}, ep{"198.51.100.2", 15443, 2}),
				cla(b, ep{"10.16.0.3", 8080, 1}))
			conn, err := px.dial(g.addr, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			ctx, cancel := context.WithCancel(t.Context())
			go px.run(ctx, conn)
			t.Cleanup(func() { cancel(); <-px.done })

			waitUntil(t, "the full view", func() bool {
				px.mu.Lock()
				defer px.mu.Unlock()
				return !px.fullAt.IsZero() || px.err != nil
			})
			if px.err != nil {
				t.Fatal(px.err)
			}
			if diff := cmp.Diff(expect, px.view()); diff != "" {
				t.Fatalf("view (-want +got):\n%s", diff)
			}
			if got := px.subscriptions(); !cmp.Equal(got, []string{a, b}) {
				t.Errorf("EDS subscriptions %v, want only the EDS clusters %v", got, []string{a, b})
			}

			// Phase 0: a change of a; two of b where the server only ever
			// shows the second; and one of a that never comes.
			write := func(name, ip string, phase int) {
				s := log.byName[name]
				s.mu.Lock()
				s.changes = append(s.changes, &change{ip: ip, t0: time.Now(), phase: phase})
				s.mu.Unlock()
				sh.phases[phase].expected.Add(1)
			}
			px.mu.Lock()
			px.expect = nil
			px.mu.Unlock()
			write(a, "10.17.0.1", 0)
			write(b, "10.17.0.2", 0)
			write(b, "10.17.0.3", 0)
			g.set(t, px.id, 2,
				cla(a, ep{"10.17.0.1", 8080, 1}, ep{"10.16.0.2", 8080, 1}, ep{"198.51.100.2", 15443, 2}),
				cla(b, ep{"10.17.0.3", 8080, 1}))
			waitUntil(t, "three deliveries", func() bool { return sh.phases[0].delivered.Load() == 3 })
			write(a, "10.17.0.9", 0)
			if n := px.undelivered(log, 0); n != 1 {
				t.Errorf("undelivered in phase 0: %d, want 1", n)
			}
			px.mu.Lock()
			lats := len(px.lat[0])
			px.mu.Unlock()
			if lats != 3 {
				t.Errorf("latencies recorded: %d, want 3", lats)
			}

			// Stalled, the proxy applies nothing; resumed, it catches up.
			px.stall()
			stalledAt := px.bytes.Load()
			write(b, "10.17.0.4", 1)
			g.set(t, px.id, 3,
				cla(a, ep{"10.17.0.1", 8080, 1}, ep{"10.16.0.2", 8080, 1}, ep{"198.51.100.2", 15443, 2}),
				cla(b, ep{"10.17.0.4", 8080, 1}))
			// The proxy has received the push (the stats handler counted
			// its bytes): from here on it holds it instead of applying it.
			waitUntil(t, "the push to reach the stalled proxy", func() bool { return px.bytes.Load() > stalledAt })
			if n := sh.phases[1].delivered.Load(); n != 0 {
				t.Fatalf("a stalled proxy applied %d changes", n)
			}
			px.resume()
			waitUntil(t, "the delivery after resume", func() bool { return sh.phases[1].delivered.Load() == 1 })
			if px.bytes.Load() <= 0 || px.responses.Load() < 4 {
				t.Errorf("counted %d bytes in %d responses; want both counted", px.bytes.Load(), px.responses.Load())
			}
			if d := sh.intern.size(); d < 6 {
				t.Errorf("distinct resources decoded: %d, want at least 6", d)
			}
		})
	}
}

func TestDiffSorted(t *testing.T) {
	add, remove := diffSorted([]string{"a", "c", "d"}, []string{"b", "c", "e"})
	if diff := cmp.Diff([][]string{{"b", "e"}, {"a", "d"}}, [][]string{add, remove}); diff != "" {
		t.Errorf("diffSorted (-want +got):\n%s", diff)
	}
}
