package xds

import (
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Istio's samples/multicluster/expose-services.yaml and expose-istiod.yaml
// as model.GatewayConfig.
var (
	crossNetworkGateway = model.IstioGateway{Namespace: "istio-system", Name: "cross-network-gateway",
		Selector: map[string]string{"istio": "eastwestgateway"},
		Servers:  []model.GatewayServer{{Port: 15443, Protocol: "TLS", TLSMode: model.TLSAutoPassthrough, Hosts: []string{"*.local"}}}}
	istiodGateway = model.IstioGateway{Namespace: "istio-system", Name: "istiod-gateway",
		Selector: map[string]string{"istio": "eastwestgateway"},
		Servers: []model.GatewayServer{
			{Port: 15012, Protocol: "tls", TLSMode: model.TLSPassthrough, Hosts: []string{"*"}},
			{Port: 15017, Protocol: "tls", TLSMode: model.TLSPassthrough, Hosts: []string{"*"}},
		}}
	istiodRoutes = []model.GatewayTLSRoute{
		{Namespace: "istio-system", Name: "istiod-vs", Gateways: []string{"istio-system/istiod-gateway"}, Port: 15012,
			SNIHosts: []string{"*"}, Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 15012},
		{Namespace: "istio-system", Name: "istiod-vs", Gateways: []string{"istio-system/istiod-gateway"}, Port: 15017,
			SNIHosts: []string{"*"}, Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 443},
	}
)

// TestIstioGatewayFollowsGateways: Istio's Envoy east-west gateway gets
// the listeners Istio's Gateways and VirtualServices give it, as from
// istiod, and follows their changes; Causeway's own gateway keeps its
// shape whatever they say. Every resource passes Envoy's validation.
func TestIstioGatewayFollowsGateways(t *testing.T) {
	m := newMesh(t, Config{})
	m.service(cluster1, "sample", "helloworld", "10.1.0.10", 5000)
	m.endpoints(cluster1, "sample", "helloworld", 5000, backend{"hello-1", "10.1.0.11", 5000})
	m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 15010, 15012, 443)
	m.plainEndpoint(cluster1, "istio-system", "istiod", 15012, "istiod-1", "10.1.0.5", 15012)
	m.plainEndpoint(cluster1, "istio-system", "istiod", 443, "istiod-2", "10.1.0.6", 15017) // one slice per address
	m.publish()
	labels := labelsKey(map[string]string{"istio": "eastwestgateway", "app": "istio-eastwestgateway"})
	istio := func(typeURL string, k kind) viewKey {
		return viewKey{typeURL: typeURL, kind: k, network: network1, istioGW: true, labels: labels}
	}
	lds, cds := istio(ldsType, kindGatewayLDS), istio(cdsType, kindGatewayCDS)
	eds := viewKey{typeURL: edsType, kind: kindGatewayEDS, network: network1, cluster: cluster1, istioGW: true}
	cwLDS := viewKey{typeURL: ldsType, kind: kindGatewayLDS, network: network1}
	other := istio(ldsType, kindGatewayLDS)
	other.labels = labelsKey(map[string]string{"istio": "ingressgateway"})

	const (
		istiodXDS     = "outbound|15012||istiod.istio-system.svc.cluster.local"
		istiodWebhook = "outbound|443||istiod.istio-system.svc.cluster.local"
	)
	names := func(k viewKey) []string {
		rs := m.srv.viewFor(k).cache.GetResources()
		for name, r := range rs {
			if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s %s: %v", k.kind, name, err)
			}
		}
		return slices.Sorted(maps.Keys(rs))
	}
	has := func(k viewKey, name string) bool { return slices.Contains(names(k), name) }
	check := func(step string, wantLDS, wantOther []string, wantClusters bool) {
		t.Helper()
		if diff := cmp.Diff(wantLDS, names(lds)); diff != "" {
			t.Errorf("%s: Istio gateway listeners (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(wantOther, names(other)); diff != "" {
			t.Errorf("%s: listeners of a gateway no Gateway selects (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff([]string{"0.0.0.0_15012", "0.0.0.0_15017", "0.0.0.0_15443"}, names(cwLDS)); diff != "" {
			t.Errorf("%s: Causeway gateway listeners changed (-want +got):\n%s", step, diff)
		}
		for _, cl := range []string{istiodXDS, istiodWebhook} {
			if has(cds, cl) != wantClusters || has(eds, cl) != wantClusters {
				t.Errorf("%s: cluster and endpoints of %s present: %t %t, want %t", step, cl, has(cds, cl), has(eds, cl), wantClusters)
			}
		}
	}

	// No Gateway: the SNI listener only, never the control plane's.
	check("no Gateway", []string{"0.0.0.0_15443"}, []string{"0.0.0.0_15443"}, false)
	sni := model.SNI("istiod.istio-system.svc.cluster.local", 15012, "")
	if got := m.srv.viewFor(eds).cache.GetResources()[sni].(*endpointv3.ClusterLoadAssignment); len(got.GetEndpoints()) != 0 {
		t.Errorf("%s: the control plane's endpoint (no mesh mTLS) is passed by SNI: %v", sni, got)
	}

	m.store.SetGatewayConfig(model.GatewayConfig{Gateways: []model.IstioGateway{crossNetworkGateway}})
	m.publish()
	check("cross-network Gateway", []string{"0.0.0.0_15443"}, []string{"0.0.0.0_15443"}, false)

	m.store.SetGatewayConfig(model.GatewayConfig{Gateways: []model.IstioGateway{crossNetworkGateway, istiodGateway}, Routes: istiodRoutes})
	m.publish()
	check("expose-istiod", []string{"0.0.0.0_15012", "0.0.0.0_15017", "0.0.0.0_15443"}, []string{"0.0.0.0_15443"}, true)
	ls := m.srv.viewFor(lds).cache.GetResources()
	for port, cl := range map[string]string{"0.0.0.0_15012": istiodXDS, "0.0.0.0_15017": istiodWebhook} {
		l := ls[port].(*listenerv3.Listener)
		if n := len(l.GetFilterChains()); n != 1 || l.GetFilterChains()[0].GetFilterChainMatch() != nil {
			t.Fatalf("%s: want one chain matching any server name, got %v", port, l.GetFilterChains())
		}
		var tp tcpproxyv3.TcpProxy
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil || tp.GetCluster() != cl {
			t.Errorf("%s passes to %q (%v), want %s", port, tp.GetCluster(), err, cl)
		}
	}
	cla := m.srv.viewFor(eds).cache.GetResources()[istiodXDS].(*endpointv3.ClusterLoadAssignment)
	if got := claEndpoints(map[string]*endpointv3.ClusterLoadAssignment{istiodXDS: cla}); !cmp.Equal(got[istiodXDS], []lbEndpoint{{"10.1.0.5:15012", 1, false}}) {
		t.Errorf("%s endpoints: %v, want the control plane's pod", istiodXDS, got)
	}
	if c := m.srv.viewFor(cds).cache.GetResources()[istiodXDS].(*clusterv3.Cluster); len(c.GetTransportSocketMatches()) != 2 {
		t.Errorf("%s: want a sidecar's cluster (mTLS and plaintext matches), got %v", istiodXDS, c)
	}

	// The exposure goes: so do its listeners, clusters and endpoints.
	m.store.SetGatewayConfig(model.GatewayConfig{Gateways: []model.IstioGateway{crossNetworkGateway}})
	m.publish()
	check("expose-istiod deleted", []string{"0.0.0.0_15443"}, []string{"0.0.0.0_15443"}, false)
}
