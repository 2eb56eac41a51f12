package envoy

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/model"
)

// claLocality and claEndpoint summarize an EDS resource for comparison.
type claLocality struct {
	Locality  string
	Weight    uint32
	Endpoints []claEndpoint
}

type claEndpoint struct {
	Addr   string
	Weight uint32
	MTLS   bool // metadata envoy.transport_socket_match {tlsMode: istio}
}

func summarize(t *testing.T, cla *endpointv3.ClusterLoadAssignment) []claLocality {
	t.Helper()
	out := []claLocality{}
	for _, le := range cla.GetEndpoints() {
		if le.GetLocality() == nil {
			t.Errorf("locality without its message: grpc-go rejects it")
		}
		if le.GetPriority() != 0 {
			t.Errorf("priority %d, want 0", le.GetPriority())
		}
		l := le.GetLocality()
		cl := claLocality{
			Locality: l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone(),
			Weight:   le.GetLoadBalancingWeight().GetValue(),
		}
		for _, lb := range le.GetLbEndpoints() {
			if lb.GetHealthStatus().String() != "HEALTHY" {
				t.Errorf("health status %v, want HEALTHY", lb.GetHealthStatus())
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			md := lb.GetMetadata().GetFilterMetadata()[TransportSocketMatchKey]
			cl.Endpoints = append(cl.Endpoints, claEndpoint{
				Addr:   fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()),
				Weight: lb.GetLoadBalancingWeight().GetValue(),
				MTLS:   md.GetFields()["tlsMode"].GetStringValue() == "istio",
			})
		}
		out = append(out, cl)
	}
	return out
}

func ep(addr string, port, weight uint32, region, zone string, tls bool) model.ViewEndpoint {
	e := model.ViewEndpoint{Address: addr, Port: port, Weight: weight, Loc: model.Locality{Region: region, Zone: zone}}
	if tls {
		e.TLSMode = model.TLSModeIstio
	}
	return e
}

func TestClusterLoadAssignment(t *testing.T) {
	tests := []struct {
		name string
		eps  []model.ViewEndpoint
		want []claLocality
		// wantGRPC, when set, is what GRPCClusterLoadAssignment gives
		// instead of want.
		wantGRPC []claLocality
	}{
		{
			name: "no endpoints",
			want: []claLocality{},
		},
		{
			name: "interleaved localities are grouped and sorted, view order kept inside",
			eps: []model.ViewEndpoint{
				ep("10.0.0.1", 80, 2, "us", "b", true),
				ep("10.0.0.2", 80, 2, "eu", "a", false),
				ep("10.0.0.3", 80, 2, "us", "b", true),
				ep("10.0.0.4", 80, 2, "", "", false),
				ep("10.0.0.5", 80, 2, "us", "a", true),
			},
			want: []claLocality{
				{Locality: "//", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.4:80", 2, false}}},
				{Locality: "eu/a/", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.2:80", 2, false}}},
				{Locality: "us/a/", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.5:80", 2, true}}},
				{Locality: "us/b/", Weight: 4, Endpoints: []claEndpoint{{"10.0.0.1:80", 2, true}, {"10.0.0.3:80", 2, true}}},
			},
		},
		{
			// Istio's example: proxy in network1, scale 2; network2 has one
			// gateway for 2 endpoints, network3 two gateways for 3.
			name: "Istio's weights: locality weight is the sum",
			eps: []model.ViewEndpoint{
				ep("10.1.0.1", 5000, 2, "r1", "z1", true),
				ep("2.2.2.2", 15443, 4, "r2", "z2", true),
				ep("3.3.3.3", 15443, 3, "r3", "z3", true),
				ep("3.3.3.4", 15443, 3, "r3", "z3", true),
			},
			want: []claLocality{
				{Locality: "r1/z1/", Weight: 2, Endpoints: []claEndpoint{{"10.1.0.1:5000", 2, true}}},
				{Locality: "r2/z2/", Weight: 4, Endpoints: []claEndpoint{{"2.2.2.2:15443", 4, true}}},
				{Locality: "r3/z3/", Weight: 6, Endpoints: []claEndpoint{{"3.3.3.3:15443", 3, true}, {"3.3.3.4:15443", 3, true}}},
			},
		},
		{
			name: "a zero weight is sent as 1",
			eps:  []model.ViewEndpoint{ep("10.0.0.1", 80, 0, "r", "z", false)},
			want: []claLocality{{Locality: "r/z/", Weight: 1, Endpoints: []claEndpoint{{"10.0.0.1:80", 1, false}}}},
		},
		{
			name: "locality weight is capped",
			eps: []model.ViewEndpoint{
				ep("10.0.0.1", 80, math.MaxUint32, "r", "z", false),
				ep("10.0.0.2", 80, 5, "r", "z", false),
			},
			want: []claLocality{{Locality: "r/z/", Weight: math.MaxUint32, Endpoints: []claEndpoint{
				{"10.0.0.1:80", math.MaxUint32, false}, {"10.0.0.2:80", 5, false},
			}}},
		},
		{
			// A gateway standing for endpoints of two localities appears
			// once per locality; grpc-go rejects an address listed twice.
			name: "a gateway in two localities",
			eps: []model.ViewEndpoint{
				ep("10.0.0.1", 80, 2, "r1", "z1", true),
				ep("2.2.2.2", 15443, 2, "r2", "z1", true),
				ep("2.2.2.2", 15443, 4, "r2", "z2", true),
				ep("2.2.2.3", 15443, 2, "r2", "z2", true),
			},
			want: []claLocality{
				{Locality: "r1/z1/", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.1:80", 2, true}}},
				{Locality: "r2/z1/", Weight: 2, Endpoints: []claEndpoint{{"2.2.2.2:15443", 2, true}}},
				{Locality: "r2/z2/", Weight: 6, Endpoints: []claEndpoint{{"2.2.2.2:15443", 4, true}, {"2.2.2.3:15443", 2, true}}},
			},
			wantGRPC: []claLocality{
				{Locality: "r1/z1/", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.1:80", 2, true}}},
				{Locality: "r2/z1/", Weight: 6, Endpoints: []claEndpoint{{"2.2.2.2:15443", 6, true}}},
				{Locality: "r2/z2/", Weight: 2, Endpoints: []claEndpoint{{"2.2.2.3:15443", 2, true}}},
			},
		},
		{
			name: "same address on two ports is no duplicate",
			eps: []model.ViewEndpoint{
				ep("10.0.0.1", 80, 1, "r", "z", false),
				ep("10.0.0.1", 81, 1, "r", "z", false),
			},
			want: []claLocality{{Locality: "r/z/", Weight: 2, Endpoints: []claEndpoint{{"10.0.0.1:80", 1, false}, {"10.0.0.1:81", 1, false}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := model.View{Cluster: "outbound|80||a.b.svc.cluster.local", Network: "n1", Endpoints: tt.eps}
			before := append([]model.ViewEndpoint(nil), tt.eps...)

			cla := ClusterLoadAssignment(v)
			validateDeep(t, cla)
			if cla.GetClusterName() != v.Cluster {
				t.Errorf("cluster_name %q, want %q", cla.GetClusterName(), v.Cluster)
			}
			if diff := cmp.Diff(tt.want, summarize(t, cla)); diff != "" {
				t.Errorf("ClusterLoadAssignment (-want +got):\n%s", diff)
			}

			wantGRPC := tt.want
			if tt.wantGRPC != nil {
				wantGRPC = tt.wantGRPC
			}
			g := GRPCClusterLoadAssignment(v)
			validateDeep(t, g)
			if diff := cmp.Diff(wantGRPC, summarize(t, g)); diff != "" {
				t.Errorf("GRPCClusterLoadAssignment (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tt.eps); diff != "" {
				t.Errorf("the view was changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestGatewayClusterLoadAssignmentName(t *testing.T) {
	cla := GatewayClusterLoadAssignment(helloHost, 5000, helloLocalView())
	if got, want := cla.GetClusterName(), GatewayCluster(helloworld(), helloworld().Ports[0]).GetEdsClusterConfig().GetServiceName(); got != want {
		t.Errorf("gateway EDS resource %q, but its cluster asks for %q", got, want)
	}
}

// TestClusterLoadAssignmentDeterministic: equal views give byte-equal
// resources (xDS caches compare them).
func TestClusterLoadAssignmentDeterministic(t *testing.T) {
	det := proto.MarshalOptions{Deterministic: true}
	a, err := det.Marshal(ClusterLoadAssignment(benchView(50)))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := det.Marshal(ClusterLoadAssignment(benchView(50)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("two builds of one view differ")
		}
	}
}

// benchView is a view of n endpoints over three zones, one in ten a
// gateway.
func benchView(n int) model.View {
	v := model.View{Cluster: "outbound|5000||helloworld.sample.svc.cluster.local", Network: "network1"}
	for i := range n {
		e := model.ViewEndpoint{
			Address: fmt.Sprintf("10.244.%d.%d", i/250, i%250+1), Port: 5000, Weight: 2,
			Cluster: "cluster1", Network: "network1", TLSMode: model.TLSModeIstio,
			Loc: model.Locality{Region: "region1", Zone: fmt.Sprintf("zone%d", i%3)},
		}
		if i%10 == 9 {
			e.Address, e.Port, e.Gateway, e.Network = fmt.Sprintf("172.18.0.%d", i%250), 15443, true, "network2"
		}
		v.Endpoints = append(v.Endpoints, e)
	}
	return v
}

func BenchmarkClusterLoadAssignmentMarshal(b *testing.B) {
	v := benchView(10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(ClusterLoadAssignment(v)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGatewayClusterLoadAssignmentMTLSOnly: an east-west gateway forwards
// only to endpoints that speak mesh mTLS, except to the control plane's
// secure port, which it exposes on purpose.
func TestGatewayClusterLoadAssignmentMTLSOnly(t *testing.T) {
	mixed := []model.ViewEndpoint{
		ep("10.0.0.1", 8080, 1, "r", "z", true),
		ep("10.0.0.2", 8080, 1, "r", "z", false),
		ep("10.0.0.3", 8080, 1, "r", "z", true),
	}
	tests := []struct {
		name string
		host model.Host
		port uint32
		eps  []model.ViewEndpoint
		want []string
	}{
		{"mesh endpoints only", helloHost, 5000, mixed, []string{"10.0.0.1:8080", "10.0.0.3:8080"}},
		{"all mesh", helloHost, 5000, []model.ViewEndpoint{mixed[0], mixed[2]}, []string{"10.0.0.1:8080", "10.0.0.3:8080"}},
		{"API server (no sidecar): none", "kubernetes.default.svc.cluster.local", 443,
			[]model.ViewEndpoint{ep("172.18.0.2", 6443, 1, "", "", false)}, nil},
		{"control plane secure port: all", "istiod.istio-system.svc.cluster.local", 15012, mixed,
			[]string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}},
		{"control plane, another port: mesh only", "istiod.istio-system.svc.cluster.local", 15010, mixed,
			[]string{"10.0.0.1:8080", "10.0.0.3:8080"}},
		{"control plane webhook (443 -> 15017): all", "istiod.istio-system.svc.cluster.local", 443, mixed,
			[]string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}},
		{"another service on 15012: mesh only", "istiod-canary.istio-system.svc.cluster.local", 15012, mixed,
			[]string{"10.0.0.1:8080", "10.0.0.3:8080"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.eps)
			cla := GatewayClusterLoadAssignment(tc.host, tc.port, model.View{Endpoints: in})
			var got []string
			for _, l := range summarize(t, cla) {
				for _, e := range l.Endpoints {
					got = append(got, e.Addr)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("gateway endpoints (-want +got):\n%s", diff)
			}
			if !slices.Equal(in, tc.eps) {
				t.Errorf("the view was modified")
			}
		})
	}
}
