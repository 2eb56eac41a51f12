package envoy

import (
	"slices"
	"testing"

	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// istiod is the control plane's Service as the primary profile writes it.
func istiod(ns string) *model.ServiceInfo {
	s := svcInfo(ns, ControlPlaneService, map[model.ClusterID]string{"cluster1": "10.96.0.15"})
	s.Ports = []model.ServicePort{{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: 15012}, {Name: "http-monitoring", Port: 15014}}
	return s
}

func TestControlPlaneListener(t *testing.T) {
	udp := istiod("istio-system")
	udp.Ports = []model.ServicePort{{Name: "dns", Port: 15012, Protocol: "UDP"}}
	noSecure := istiod("istio-system")
	noSecure.Ports = noSecure.Ports[:1]
	revisioned := svcInfo("istio-system", "istiod-1-11-4", nil, 15012)
	remote := svcInfo("istio-system", "istiod-remote", nil, 15012)

	type chain struct {
		ServerNames []string
		Cluster     string
	}
	tests := []struct {
		name     string
		services []*model.ServiceInfo
		want     []chain // nil: no listener
	}{
		{
			name:     "one control plane takes any server name",
			services: []*model.ServiceInfo{helloworld(), nil, istiod("istio-system"), revisioned, remote},
			want:     []chain{{Cluster: "outbound_.15012_._.istiod.istio-system.svc.cluster.local"}},
		},
		{
			name:     "listed twice is one",
			services: []*model.ServiceInfo{istiod("istio-system"), istiod("istio-system")},
			want:     []chain{{Cluster: "outbound_.15012_._.istiod.istio-system.svc.cluster.local"}},
		},
		{
			name:     "two control planes take the names of their namespaces",
			services: []*model.ServiceInfo{istiod("mesh-b"), istiod("istio-system")},
			want: []chain{
				{ServerNames: []string{"*.istio-system.svc", "*.istio-system.svc.cluster.local"}, Cluster: "outbound_.15012_._.istiod.istio-system.svc.cluster.local"},
				{ServerNames: []string{"*.mesh-b.svc", "*.mesh-b.svc.cluster.local"}, Cluster: "outbound_.15012_._.istiod.mesh-b.svc.cluster.local"},
			},
		},
		{name: "no control plane", services: []*model.ServiceInfo{helloworld(), revisioned, remote, nil}},
		{name: "istiod without port 15012", services: []*model.ServiceInfo{noSecure}},
		{name: "istiod with 15012 over UDP only", services: []*model.ServiceInfo{udp}},
		{name: "nothing", services: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ControlPlaneListener(tt.services)
			if tt.want == nil {
				if l != nil {
					t.Fatalf("listener %v, want none (Envoy rejects a listener without filter chains)", l)
				}
				return
			}
			validateDeep(t, l)
			if l.GetName() != ControlPlaneListenerName || l.GetName() != OutboundListenerName(ControlPlanePort) {
				t.Errorf("name %q, want %q", l.GetName(), ControlPlaneListenerName)
			}
			if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != ControlPlanePort {
				t.Errorf("port %d, want %d", got, ControlPlanePort)
			}
			if lf := l.GetListenerFilters(); len(lf) != 1 || lf[0].GetName() != "envoy.filters.listener.tls_inspector" {
				t.Errorf("listener filters %v, want only the TLS inspector", lf)
			}
			var got []chain
			for _, fc := range l.GetFilterChains() {
				m := fc.GetFilterChainMatch()
				if m.GetTransportProtocol() != "tls" || len(m.GetApplicationProtocols()) > 0 || fc.GetTransportSocket() != nil {
					t.Errorf("chain %q: match %v, transport socket %v; want TLS of any ALPN, passed through", fc.GetName(), m, fc.GetTransportSocket())
				}
				if len(fc.GetFilters()) != 1 {
					t.Fatalf("chain %q has %d filters, want one tcp_proxy", fc.GetName(), len(fc.GetFilters()))
				}
				tp := new(tcpproxyv3.TcpProxy)
				if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
					t.Fatal(err)
				}
				got = append(got, chain{ServerNames: m.GetServerNames(), Cluster: tp.GetCluster()})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("filter chains (-want +got):\n%s", diff)
			}
			// The cluster is the one GatewayCluster builds for the port.
			for _, svc := range tt.services {
				if isControlPlane(svc, ControlPlanePort) {
					cl := GatewayCluster(svc, svc.Ports[1])
					if !slices.ContainsFunc(got, func(c chain) bool { return c.Cluster == cl.GetName() }) {
						t.Errorf("no chain to the gateway cluster %q", cl.GetName())
					}
				}
			}
		})
	}
}

// TestControlPlaneWebhookListener: listener 0.0.0.0_15017 passes any
// server name through to the control plane Service's port 443 (the
// webhook, targetPort 15017); no such port, no listener.
func TestControlPlaneWebhookListener(t *testing.T) {
	withWebhook := istiod("istio-system")
	withWebhook.Ports = append(withWebhook.Ports, model.ServicePort{Name: "https-webhook", Port: 443})
	l := ControlPlaneWebhookListener([]*model.ServiceInfo{helloworld(), withWebhook})
	if l == nil {
		t.Fatal("no listener for istiod with port 443")
	}
	if l.GetName() != "0.0.0.0_15017" || l.GetAddress().GetSocketAddress().GetPortValue() != 15017 {
		t.Errorf("listener %s on port %d, want 0.0.0.0_15017 on 15017", l.GetName(), l.GetAddress().GetSocketAddress().GetPortValue())
	}
	if len(l.GetFilterChains()) != 1 {
		t.Fatalf("%d chains, want 1", len(l.GetFilterChains()))
	}
	fc := l.GetFilterChains()[0]
	tp := new(tcpproxyv3.TcpProxy)
	if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	if want := "outbound_.443_._.istiod.istio-system.svc.cluster.local"; tp.GetCluster() != want || fc.GetFilterChainMatch().GetTransportProtocol() != "tls" || len(fc.GetFilterChainMatch().GetServerNames()) != 0 {
		t.Errorf("chain to %s for %v (%s), want %s for any TLS name", tp.GetCluster(), fc.GetFilterChainMatch().GetServerNames(), fc.GetFilterChainMatch().GetTransportProtocol(), want)
	}
	if cl := GatewayCluster(withWebhook, withWebhook.Ports[3]); cl.GetName() != tp.GetCluster() {
		t.Errorf("chain to %s, gateway cluster is %s", tp.GetCluster(), cl.GetName())
	}
	if l := ControlPlaneWebhookListener([]*model.ServiceInfo{istiod("istio-system")}); l != nil {
		t.Errorf("istiod without port 443: listener %s", l.GetName())
	}
}
