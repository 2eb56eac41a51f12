package envoy

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
)

func istiodService() *model.ServiceInfo {
	return &model.ServiceInfo{
		Host: "istiod.istio-system.svc.cluster.local", Namespace: "istio-system", Name: "istiod",
		Ports:           []model.ServicePort{{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: 15012}, {Name: "https-webhook", Port: 443}},
		ServiceAccounts: []model.NamespacedName{{Namespace: "istio-system", Name: "istiod"}},
	}
}

// chainsOf is each listener's chains as "SNI,... -> CLUSTER".
func chainsOf(t *testing.T, ls []*listenerv3.Listener) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range ls {
		validateDeep(t, l)
		for _, fc := range l.GetFilterChains() {
			var tp tcpproxyv3.TcpProxy
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
				t.Fatal(err)
			}
			sni := "*"
			if names := fc.GetFilterChainMatch().GetServerNames(); len(names) > 0 {
				sni = names[0]
			}
			out[l.GetName()] = append(out[l.GetName()], sni+" -> "+tp.GetCluster())
		}
	}
	return out
}

// TestIstioGatewayListeners: the listeners of an Istio east-west gateway
// follow its plan: AUTO_PASSTHROUGH ports over the services their hosts
// admit, PASSTHROUGH ports to their routes' outbound|PORT||HOST clusters
// (a route without a port takes its service's only TCP port; one to an
// unknown service or port is left out), and Envoy accepts every one.
func TestIstioGatewayListeners(t *testing.T) {
	other := &model.ServiceInfo{Host: "db.other.svc.example.org", Namespace: "other", Name: "db", Ports: []model.ServicePort{{Name: "tcp", Port: 5432}}}
	services := []*model.ServiceInfo{other, helloworld(), istiodService()}
	plan := model.GatewayPlan{
		Selected: true,
		AutoPassthrough: []model.AutoPassthroughPort{
			{Port: 15443, Hosts: []model.GatewayHost{{Host: "*.local"}}},
			{Port: 16443, Hosts: []model.GatewayHost{{Namespace: "other", Host: "*"}}},
		},
		Passthrough: []model.PassthroughPort{
			{Port: 15012, Routes: []model.PassthroughRoute{{Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 15012}}},
			{Port: 15017, Routes: []model.PassthroughRoute{
				{SNIHosts: []string{"istiod.istio-system.svc"}, Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 443},
				{SNIHosts: []string{"db.other.svc"}, Destination: "db.other.svc.example.org"},
				{SNIHosts: []string{"gone"}, Destination: "gone.x.svc.cluster.local", DestinationPort: 1},
			}},
			{Port: 15018, Routes: []model.PassthroughRoute{{Destination: "gone.x.svc.cluster.local"}}},
		},
	}
	ls := IstioGatewayListeners(&plan, services, nil)
	want := map[string][]string{
		"0.0.0.0_15012": {"* -> outbound|15012||istiod.istio-system.svc.cluster.local"},
		"0.0.0.0_15017": {
			"istiod.istio-system.svc -> outbound|443||istiod.istio-system.svc.cluster.local",
			"db.other.svc -> outbound|5432||db.other.svc.example.org",
		},
		"0.0.0.0_15443": {
			"outbound_.5000_._.helloworld.sample.svc.cluster.local -> outbound_.5000_._.helloworld.sample.svc.cluster.local",
			"outbound_.443_._.istiod.istio-system.svc.cluster.local -> outbound_.443_._.istiod.istio-system.svc.cluster.local",
			"outbound_.15010_._.istiod.istio-system.svc.cluster.local -> outbound_.15010_._.istiod.istio-system.svc.cluster.local",
			"outbound_.15012_._.istiod.istio-system.svc.cluster.local -> outbound_.15012_._.istiod.istio-system.svc.cluster.local",
		},
		"0.0.0.0_16443": {"outbound_.5432_._.db.other.svc.example.org -> outbound_.5432_._.db.other.svc.example.org"},
	}
	if diff := cmp.Diff(want, chainsOf(t, ls)); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	var order []string
	for _, l := range ls {
		order = append(order, l.GetName())
	}
	if diff := cmp.Diff([]string{"0.0.0.0_15012", "0.0.0.0_15017", "0.0.0.0_15443", "0.0.0.0_16443"}, order); diff != "" {
		t.Errorf("listener order (-want +got):\n%s", diff)
	}

	byHost := map[model.Host]*model.ServiceInfo{}
	for _, s := range services {
		byHost[s.Host] = s
	}
	cls := PassthroughClusters(&plan, byHost, ClusterOptions{})
	var names []string
	for _, c := range cls {
		validateDeep(t, c)
		names = append(names, c.GetName())
	}
	if diff := cmp.Diff([]string{"outbound|5432||db.other.svc.example.org", "outbound|443||istiod.istio-system.svc.cluster.local",
		"outbound|15012||istiod.istio-system.svc.cluster.local"}, names); diff != "" {
		t.Errorf("passthrough clusters (-want +got):\n%s", diff)
	}
}

// TestGatewayClusterHTTP2: a gateway SNI cluster of a gRPC port carries
// HTTP/2 upstream options, as istiod's; others none.
func TestGatewayClusterHTTP2(t *testing.T) {
	svc := istiodService()
	for _, p := range svc.Ports {
		c := GatewayCluster(svc, p)
		validateDeep(t, c)
		if got, want := len(c.GetTypedExtensionProtocolOptions()) > 0, p.Name == "grpc-xds"; got != want {
			t.Errorf("port %s: protocol options %t, want %t", p.Name, got, want)
		}
	}
}

// TestParseNodeCausewayGateway: Causeway's own gateway is told from
// Istio's Envoy by its user agent.
func TestParseNodeCausewayGateway(t *testing.T) {
	for agent, want := range map[string]bool{UserAgentCausewayGateway: true, "envoy": false, "": false} {
		p, err := ParseNode(&corev3.Node{
			Id:            "router~10.1.0.30~istio-eastwestgateway-1.istio-system~istio-system.svc.cluster.local",
			UserAgentName: agent,
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				MetaRouterMode: structpb.NewStringValue(RouterModeSNIDNAT),
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.Role != RoleEastWestGateway || p.CausewayGateway != want {
			t.Errorf("user agent %q: role %s, Causeway's gateway %t; want eastwestgateway, %t", agent, p.Role, p.CausewayGateway, want)
		}
	}
}
