package parity

import (
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// serveSnapshot runs go-control-plane's ADS server (ADS mode: a request
// for names it lacks waits) with resources for every node.
func serveSnapshot(t *testing.T, resources map[resource.Type][]types.Resource) string {
	t.Helper()
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	snap, err := cachev3.NewSnapshot("1", resources)
	if err != nil {
		t.Fatal(err)
	}
	node := Node{Type: "sidecar", IP: "10.1.0.20", Pod: "sleep", Namespace: "sample"}
	if err := cache.SetSnapshot(t.Context(), node.ID(), snap); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(t.Context(), cache, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

func fetchResources(t *testing.T, withRoute bool) map[resource.Type][]types.Resource {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "p", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "80"}}}
	r := map[resource.Type][]types.Resource{
		resource.ClusterType: {
			&clusterv3.Cluster{Name: "outbound|80||a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
				EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{}}}},
			&clusterv3.Cluster{Name: "PassthroughCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}},
		},
		resource.EndpointType: {&endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||a", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: testkit.SocketAddress("10.1.0.10", 80)}}}},
		}}}},
		resource.ListenerType: {&listenerv3.Listener{Name: "0.0.0.0_80", Address: testkit.SocketAddress("0.0.0.0", 80), FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, hcm)}}},
		}}}},
	}
	if withRoute {
		r[resource.RouteType] = []types.Resource{&routev3.RouteConfiguration{Name: "80"}}
	}
	return r
}

// TestFetch: CDS, EDS for the EDS cluster, LDS and RDS for the listener's
// route name, each acknowledged, as Envoy asks.
func TestFetch(t *testing.T) {
	addr := serveSnapshot(t, fetchResources(t, true))
	node := Node{Type: "sidecar", IP: "10.1.0.20", Pod: "sleep", Namespace: "sample"}
	snap, err := Fetch(t.Context(), addr, node.Proto(), FetchOptions{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{
		"clusters":  slices.Sorted(maps.Keys(snap.Clusters)),
		"endpoints": slices.Sorted(maps.Keys(snap.Endpoints)),
		"listeners": slices.Sorted(maps.Keys(snap.Listeners)),
		"routes":    slices.Sorted(maps.Keys(snap.Routes)),
	}
	want := map[string][]string{
		"clusters":  {"PassthroughCluster", "outbound|80||a"},
		"endpoints": {"outbound|80||a"},
		"listeners": {"0.0.0.0_80"},
		"routes":    {"80"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fetched (-want +got):\n%s", diff)
	}
	if len(snap.Unanswered) != 0 {
		t.Errorf("unanswered: %v", snap.Unanswered)
	}
}

// TestFetchUnanswered: a route the server never sends is recorded as
// unanswered after the wait, and the fetch still returns the rest.
func TestFetchUnanswered(t *testing.T) {
	addr := serveSnapshot(t, fetchResources(t, false))
	node := Node{Type: "sidecar", IP: "10.1.0.20", Pod: "sleep", Namespace: "sample"}
	snap, err := Fetch(t.Context(), addr, node.Proto(), FetchOptions{Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RDS [80]"}, snap.Unanswered); diff != "" {
		t.Errorf("unanswered (-want +got):\n%s", diff)
	}
	if len(snap.Listeners) != 1 || len(snap.Endpoints) != 1 {
		t.Errorf("listeners %d, endpoints %d; want 1 and 1", len(snap.Listeners), len(snap.Endpoints))
	}
	if f := Normalize(snap); f["unanswered/RDS [80]"] != "no answer" {
		t.Errorf("facts lack the unanswered RDS: %v", f)
	}
}
