package envoy

import (
	"testing"

	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

func TestGatewayListener(t *testing.T) {
	dns := svcInfo("kube-system", "kube-dns", nil)
	dns.Ports = []model.ServicePort{{Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "dns-tcp", Port: 53}}
	unsorted := svcInfo("team-a", "api", nil)
	unsorted.Ports = []model.ServicePort{{Name: "b", Port: 9090}, {Name: "a", Port: 8080, Protocol: "TCP"}}
	udpOnly := svcInfo("team-a", "syslog", nil)
	udpOnly.Ports = []model.ServicePort{{Name: "syslog", Port: 514, Protocol: "UDP"}}

	tests := []struct {
		name     string
		services []*model.ServiceInfo
		port     uint32
		want     []string // server names of the filter chains, in order
	}{
		{
			name:     "sorted by host then port; UDP left out; a host listed twice once",
			services: []*model.ServiceInfo{helloworld(), unsorted, dns, nil, helloworld()},
			port:     15443,
			want: []string{
				"outbound_.8080_._.api.team-a.svc.cluster.local",
				"outbound_.9090_._.api.team-a.svc.cluster.local",
				"outbound_.5000_._.helloworld.sample.svc.cluster.local",
				"outbound_.53_._.kube-dns.kube-system.svc.cluster.local",
			},
		},
		{
			name:     "another listen port",
			services: []*model.ServiceInfo{helloworld()},
			port:     443,
			want:     []string{"outbound_.5000_._.helloworld.sample.svc.cluster.local"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := GatewayListener(tt.services, tt.port)
			validateDeep(t, l)
			if got, want := l.GetName(), OutboundListenerName(tt.port); got != want {
				t.Errorf("name %q, want %q", got, want)
			}
			if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != tt.port {
				t.Errorf("port %d, want %d", got, tt.port)
			}
			if lf := l.GetListenerFilters(); len(lf) != 1 || lf[0].GetName() != "envoy.filters.listener.tls_inspector" {
				t.Errorf("listener filters %v, want only the TLS inspector", lf)
			}
			var names []string
			for _, fc := range l.GetFilterChains() {
				m := fc.GetFilterChainMatch()
				if len(m.GetServerNames()) != 1 {
					t.Fatalf("filter chain matches %d server names, want 1", len(m.GetServerNames()))
				}
				sni := m.GetServerNames()[0]
				names = append(names, sni)
				wantALPN := []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
				if diff := cmp.Diff(wantALPN, m.GetApplicationProtocols()); diff != "" {
					t.Errorf("%s ALPN (-want +got):\n%s", sni, diff)
				}
				if len(fc.GetFilters()) != 1 || fc.GetFilters()[0].GetName() != "envoy.filters.network.tcp_proxy" {
					t.Fatalf("%s filters %v, want one tcp_proxy", sni, fc.GetFilters())
				}
				tp := new(tcpproxyv3.TcpProxy)
				if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
					t.Fatal(err)
				}
				if tp.GetCluster() != sni || tp.GetStatPrefix() != sni {
					t.Errorf("%s proxies to %q (stats %q), want the cluster of the same name", sni, tp.GetCluster(), tp.GetStatPrefix())
				}
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("filter chains (-want +got):\n%s", diff)
			}
		})
	}

	for _, none := range [][]*model.ServiceInfo{nil, {udpOnly}, {nil}} {
		if l := GatewayListener(none, 15443); l != nil {
			t.Errorf("GatewayListener of no TCP port = %v, want nil (Envoy rejects a listener without filter chains)", l)
		}
	}
}
