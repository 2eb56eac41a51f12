package model

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testHost Host = "helloworld.sample.svc.cluster.local"

func ep4(addr string, c ClusterID, n NetworkID, mtls bool) endpoint {
	return endpoint{addr: addr, port: 5000, cluster: c, network: n, mtls: mtls}
}

func epLoc(addr string, c ClusterID, n NetworkID, loc Locality) endpoint {
	return endpoint{addr: addr, port: 5000, cluster: c, network: n, mtls: true, loc: loc, locStr: loc.String()}
}

func gwy(addr string, n NetworkID, c ClusterID) Gateway {
	return Gateway{Address: addr, Port: 15443, Network: n, Cluster: c, Source: "test"}
}

func direct(addr string, w uint32, c ClusterID, n NetworkID) ViewEndpoint {
	return ViewEndpoint{Address: addr, Port: 5000, Weight: w, Cluster: c, Network: n, TLSMode: TLSModeIstio}
}

func viaGw(addr string, w uint32, c ClusterID, n NetworkID) ViewEndpoint {
	return ViewEndpoint{Address: addr, Port: 15443, Weight: w, Cluster: c, Network: n, Gateway: true, TLSMode: TLSModeIstio}
}

// istioExample is Istio's own split-horizon test: networks 1..4 with 1, 2,
// 3, 4 endpoints and 1, 1, 2, 0 gateways.
func istioExample() ([]endpoint, []Gateway) {
	eps := []endpoint{
		ep4("10.1.0.1", "c1", "network1", true),
		ep4("10.2.0.1", "c2", "network2", true),
		ep4("10.2.0.2", "c2", "network2", true),
		ep4("10.3.0.1", "c3", "network3", true),
		ep4("10.3.0.2", "c3", "network3", true),
		ep4("10.3.0.3", "c3", "network3", true),
		ep4("10.4.0.1", "c4", "network4", true),
		ep4("10.4.0.2", "c4", "network4", true),
		ep4("10.4.0.3", "c4", "network4", true),
		ep4("10.4.0.4", "c4", "network4", true),
	}
	gws := []Gateway{
		gwy("1.1.1.1", "network1", "c1"),
		gwy("2.2.2.2", "network2", "c2"),
		gwy("3.3.3.3", "network3", "c3"),
		gwy("3.3.3.4", "network3", "c3"),
	}
	return eps, gws
}

func TestBuildView(t *testing.T) {
	istioEps, istioGws := istioExample()
	r1z1 := Locality{Region: "r1", Zone: "z1"}
	r1z2 := Locality{Region: "r1", Zone: "z2"}
	tests := []struct {
		name    string
		eps     []endpoint
		gws     []Gateway
		network NetworkID
		policy  NoGatewayPolicy
		want    []ViewEndpoint
	}{
		{
			name: "istio example, proxy in network1, policy drop",
			eps:  istioEps, gws: istioGws, network: "network1", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				direct("10.1.0.1", 2, "c1", "network1"),
				viaGw("2.2.2.2", 4, "c2", "network2"),
				viaGw("3.3.3.3", 3, "c3", "network3"),
				viaGw("3.3.3.4", 3, "c3", "network3"),
			},
		},
		{
			name: "istio example, proxy in network1, policy direct",
			eps:  istioEps, gws: istioGws, network: "network1", policy: NoGatewayDirect,
			want: []ViewEndpoint{
				direct("10.1.0.1", 2, "c1", "network1"),
				direct("10.4.0.1", 2, "c4", "network4"),
				direct("10.4.0.2", 2, "c4", "network4"),
				direct("10.4.0.3", 2, "c4", "network4"),
				direct("10.4.0.4", 2, "c4", "network4"),
				viaGw("2.2.2.2", 4, "c2", "network2"),
				viaGw("3.3.3.3", 3, "c3", "network3"),
				viaGw("3.3.3.4", 3, "c3", "network3"),
			},
		},
		{
			name: "istio example, proxy in network4 (no gateway of its own)",
			eps:  istioEps, gws: istioGws, network: "network4", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				viaGw("1.1.1.1", 2, "c1", "network1"),
				direct("10.4.0.1", 2, "c4", "network4"),
				direct("10.4.0.2", 2, "c4", "network4"),
				direct("10.4.0.3", 2, "c4", "network4"),
				direct("10.4.0.4", 2, "c4", "network4"),
				viaGw("2.2.2.2", 4, "c2", "network2"),
				viaGw("3.3.3.3", 3, "c3", "network3"),
				viaGw("3.3.3.4", 3, "c3", "network3"),
			},
		},
		{
			name: "proxy of the empty network: gateways where there are, the rest direct whatever the policy",
			eps:  append(istioEps, ep4("10.9.0.1", "c1", "", false)), gws: istioGws, network: "", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				viaGw("1.1.1.1", 2, "c1", "network1"),
				direct("10.4.0.1", 2, "c4", "network4"),
				direct("10.4.0.2", 2, "c4", "network4"),
				direct("10.4.0.3", 2, "c4", "network4"),
				direct("10.4.0.4", 2, "c4", "network4"),
				{Address: "10.9.0.1", Port: 5000, Weight: 2, Cluster: "c1"},
				viaGw("2.2.2.2", 4, "c2", "network2"),
				viaGw("3.3.3.3", 3, "c3", "network3"),
				viaGw("3.3.3.4", 3, "c3", "network3"),
			},
		},
		{
			name: "endpoints of the empty network are direct for every proxy",
			eps:  []endpoint{ep4("10.9.0.1", "c1", "", false), ep4("10.1.0.1", "c1", "n1", true)},
			gws:  []Gateway{gwy("1.1.1.1", "n1", "c1")}, network: "n2", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				viaGw("1.1.1.1", 1, "c1", "n1"),
				{Address: "10.9.0.1", Port: 5000, Weight: 1, Cluster: "c1"},
			},
		},
		{
			name: "mTLS rule: an endpoint without mesh mTLS does not cross networks",
			eps: []endpoint{
				ep4("10.1.0.1", "c1", "n1", false),
				ep4("10.2.0.1", "c2", "n2", true),
				ep4("10.2.0.2", "c2", "n2", false),
			},
			gws:     []Gateway{gwy("2.2.2.2", "n2", "c2")},
			network: "n1", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				{Address: "10.1.0.1", Port: 5000, Weight: 1, Cluster: "c1", Network: "n1"},
				viaGw("2.2.2.2", 1, "c2", "n2"),
			},
		},
		{
			name: "mTLS rule: only gateways are gone, so no entry at all when no endpoint qualifies",
			eps:  []endpoint{ep4("10.2.0.2", "c2", "n2", false)},
			gws:  []Gateway{gwy("2.2.2.2", "n2", "c2")}, network: "n1", policy: NoGatewayDrop,
			want: []ViewEndpoint{},
		},
		{
			name: "gateway selection: own cluster's gateways if any, else every gateway of the network",
			eps: []endpoint{
				ep4("10.2.0.1", "c2", "n2", true),
				ep4("10.3.0.1", "c3", "n2", true),
				ep4("10.5.0.1", "c5", "n2", true),
			},
			gws: []Gateway{
				gwy("2.2.2.2", "n2", "c2"),
				gwy("3.3.3.3", "n2", "c3"),
				gwy("3.3.3.4", "n2", "c3"),
			},
			network: "n1", policy: NoGatewayDrop,
			// scale = lcm(3 in n2; 1 in c2; 2 in c3) = 6. 10.2.0.1 -> 2.2.2.2
			// (6); 10.3.0.1 -> 3.3.3.3, 3.3.3.4 (3 each); 10.5.0.1 -> all
			// three (2 each). The c5 endpoint's share of a gateway keeps the
			// gateway's cluster.
			want: []ViewEndpoint{
				viaGw("2.2.2.2", 8, "c2", "n2"),
				viaGw("3.3.3.3", 5, "c3", "n2"),
				viaGw("3.3.3.4", 5, "c3", "n2"),
			},
		},
		{
			name: "locality grouping: one gateway entry per locality of the endpoints it stands for",
			eps: []endpoint{
				epLoc("10.1.0.1", "c1", "n1", r1z1),
				epLoc("10.2.0.1", "c2", "n2", r1z1),
				epLoc("10.2.0.2", "c2", "n2", r1z2),
				epLoc("10.2.0.3", "c2", "n2", r1z2),
			},
			gws:     []Gateway{gwy("2.2.2.2", "n2", "c2")},
			network: "n1", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				{Address: "10.1.0.1", Port: 5000, Weight: 1, Locality: "r1/z1/", Cluster: "c1", Network: "n1", TLSMode: TLSModeIstio, Loc: r1z1},
				{Address: "2.2.2.2", Port: 15443, Weight: 1, Locality: "r1/z1/", Cluster: "c2", Network: "n2", Gateway: true, TLSMode: TLSModeIstio, Loc: r1z1},
				{Address: "2.2.2.2", Port: 15443, Weight: 2, Locality: "r1/z2/", Cluster: "c2", Network: "n2", Gateway: true, TLSMode: TLSModeIstio, Loc: r1z2},
			},
		},
		{
			name: "a gateway's own locality (meshNetworks) wins over the endpoints'",
			eps: []endpoint{
				epLoc("10.2.0.1", "c2", "n2", r1z1),
				epLoc("10.2.0.2", "c2", "n2", r1z2),
			},
			gws:     []Gateway{{Address: "2.2.2.2", Port: 15443, Network: "n2", Source: "meshNetworks address", Locality: "east/a/b"}},
			network: "n1", policy: NoGatewayDrop,
			// A gateway without cluster stands for the endpoints' cluster.
			want: []ViewEndpoint{
				{Address: "2.2.2.2", Port: 15443, Weight: 2, Locality: "east/a/b", Cluster: "c2", Network: "n2", Gateway: true, TLSMode: TLSModeIstio, Loc: Locality{Region: "east", Zone: "a", Subzone: "b"}},
			},
		},
		{
			name: "sort order: address, then port, then locality",
			eps: []endpoint{
				{addr: "10.0.0.2", port: 8080, cluster: "c1", network: "n1"},
				{addr: "10.0.0.1", port: 9090, cluster: "c2", network: "n1", loc: r1z2, locStr: "r1/z2/"},
				{addr: "10.0.0.1", port: 9090, cluster: "c1", network: "n1", loc: r1z1, locStr: "r1/z1/"},
				{addr: "10.0.0.1", port: 8080, cluster: "c1", network: "n1"},
			},
			network: "n1", policy: NoGatewayDrop,
			want: []ViewEndpoint{
				{Address: "10.0.0.1", Port: 8080, Weight: 1, Cluster: "c1", Network: "n1"},
				{Address: "10.0.0.1", Port: 9090, Weight: 1, Locality: "r1/z1/", Cluster: "c1", Network: "n1", Loc: r1z1},
				{Address: "10.0.0.1", Port: 9090, Weight: 1, Locality: "r1/z2/", Cluster: "c2", Network: "n1", Loc: r1z2},
				{Address: "10.0.0.2", Port: 8080, Weight: 1, Cluster: "c1", Network: "n1"},
			},
		},
		{
			name:    "proxy of a network no endpoint is in, no gateways anywhere, policy drop: nothing",
			eps:     []endpoint{ep4("10.1.0.1", "c1", "n1", true)},
			network: "n2", policy: NoGatewayDrop,
			want: []ViewEndpoint{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &portState{port: 5000, eps: sortedEndpoints(tt.eps)}
			got := buildView(testHost, ps, tt.network, "", newGatewaySet(tt.gws, nil), tt.policy)
			want := View{Cluster: "outbound|5000||" + string(testHost), Network: tt.network, Endpoints: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("view (-want +got):\n%s", diff)
			}
		})
	}
}

func sortedEndpoints(eps []endpoint) []endpoint {
	out := slices.Clone(eps)
	slices.SortFunc(out, compareEndpoints)
	return out
}

func TestBuildLocalView(t *testing.T) {
	eps, _ := istioExample()
	ps := &portState{port: 5000, eps: sortedEndpoints(eps)}
	got := buildLocalView(testHost, ps, "network2", "")
	want := View{Cluster: "outbound|5000||" + string(testHost), Network: "network2", Endpoints: []ViewEndpoint{
		direct("10.2.0.1", 1, "c2", "network2"),
		direct("10.2.0.2", 1, "c2", "network2"),
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("local view (-want +got):\n%s", diff)
	}
}

func TestGatewaySetScale(t *testing.T) {
	tests := []struct {
		name string
		gws  []Gateway
		want uint32
	}{
		{name: "no gateways", want: 1},
		{name: "istio example", gws: func() []Gateway { _, g := istioExample(); return g }(), want: 2},
		{
			name: "network and cluster groups both count",
			gws:  []Gateway{gwy("1.0.0.1", "n1", "c1"), gwy("1.0.0.2", "n1", "c1"), gwy("1.0.0.3", "n1", "c2"), gwy("2.0.0.1", "n2", "c3"), gwy("2.0.0.2", "n2", "c3"), gwy("2.0.0.3", "n2", "c3"), gwy("2.0.0.4", "n2", "c3")},
			// n1: 3, (n1,c1): 2, (n1,c2): 1, n2: 4, (n2,c3): 4 -> lcm 12
			want: 12,
		},
		{
			name: "duplicates in one network count once",
			gws:  []Gateway{gwy("1.0.0.1", "n1", "c1"), gwy("1.0.0.1", "n1", "c2"), gwy("1.0.0.2", "n1", "c1")},
			want: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newGatewaySet(tt.gws, nil).scale; got != tt.want {
				t.Errorf("scale = %d, want %d", got, tt.want)
			}
		})
	}
}
