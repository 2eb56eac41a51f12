package envoy

import (
	"cmp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/causeway-mesh/causeway/internal/model"
)

// GatewayListener is the east-west gateway's listener on listenPort
// (model.DefaultGatewayPort as a rule), named 0.0.0.0_PORT: the TLS
// inspector reads the client's SNI, and one filter chain per TCP port of
// each service, for server name outbound_.PORT_._.HOST and the ALPN Istio's
// clients offer, passes the connection, still encrypted, to the cluster of
// the same name (GatewayCluster). Filter chains are sorted by host, then
// port.
//
// It returns nil when no service has a TCP port: Envoy rejects a listener
// without filter chains, so the gateway then serves no listener at all.
// services is not modified; nil entries are skipped.
func GatewayListener(services []*model.ServiceInfo, listenPort uint32) *listenerv3.Listener {
	return GatewayListenerWithPods(services, listenPort, nil)
}

// GatewayListenerWithPods is GatewayListener with, besides the services'
// chains, one chain per server name of podSNIs (PodSNI: one endpoint of a
// headless service in the gateway's network) to the GatewayPodCluster of
// the same name, so that a client of another network reaches that pod and
// no other. Istio's AUTO_PASSTHROUGH gateway has no such chains (it knows
// only services' SNIs), which is why istiod's headless listeners fail
// across networks (docs/sidecars.md). Chains after the services', sorted,
// duplicates dropped.
func GatewayListenerWithPods(services []*model.ServiceInfo, listenPort uint32, podSNIs []string) *listenerv3.Listener {
	type svcPort struct {
		host model.Host
		port uint32
	}
	var keys []svcPort
	for _, svc := range services {
		if svc == nil {
			continue
		}
		for _, p := range svc.Ports {
			if p.IsTCP() {
				keys = append(keys, svcPort{svc.Host, p.Port})
			}
		}
	}
	if len(keys) == 0 && len(podSNIs) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b svcPort) int { return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.port, b.port)) })
	keys = slices.Compact(keys) // Envoy rejects two chains with one match
	chains := make([]*listenerv3.FilterChain, len(keys))
	for i, k := range keys {
		chains[i] = gatewayFilterChain(model.SNI(k.host, k.port, ""))
	}
	pods := slices.Clone(podSNIs)
	slices.Sort(pods)
	for _, sni := range slices.Compact(pods) {
		chains = append(chains, gatewayFilterChain(sni))
	}
	return &listenerv3.Listener{
		Name:    OutboundListenerName(listenPort),
		Address: socketAddress("0.0.0.0", listenPort),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name: wellknown.TLSInspector,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{
				TypedConfig: typed(&tlsinspectorv3.TlsInspector{}),
			},
		}},
		FilterChains:     chains,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

// gatewayFilterChain passes TLS for sni through to the cluster named sni.
func gatewayFilterChain(sni string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		FilterChainMatch: &listenerv3.FilterChainMatch{
			ServerNames: []string{sni},
			// What Istio's clients offer: sidecars (istio-peer-exchange,
			// istio; see Cluster) and Istio's HTTP-aware variants.
			ApplicationProtocols: []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"},
		},
		Filters: []*listenerv3.Filter{{
			Name: wellknown.TCPProxy,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpproxyv3.TcpProxy{
				StatPrefix:       sni,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: sni},
			})},
		}},
	}
}
