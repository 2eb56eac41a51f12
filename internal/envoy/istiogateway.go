package envoy

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/causeway-mesh/causeway/internal/model"
)

// IstioGatewayListeners are the listeners of an east-west gateway that
// Istio's Gateways select (plan, from model.GatewayConfig.Plan), as istiod
// builds them:
//
//   - per AUTO_PASSTHROUGH port, GatewayListenerWithPods on that port over
//     the services one of the port's hosts admits (the cross-network
//     Gateway's "*.local" admits every service of the cluster.local
//     domain), with the per-pod chains of podSNIs;
//   - per PASSTHROUGH port, PassthroughListener.
//
// Listeners are sorted by port; a port that would have no filter chain has
// no listener (Envoy rejects one). services is not modified.
func IstioGatewayListeners(plan *model.GatewayPlan, services []*model.ServiceInfo, podSNIs []string) []*listenerv3.Listener {
	byHost := make(map[model.Host]*model.ServiceInfo, len(services))
	for _, svc := range services {
		if svc != nil {
			byHost[svc.Host] = svc
		}
	}
	var out []*listenerv3.Listener
	auto := plan.AutoPassthrough
	pass := plan.Passthrough
	for len(auto) > 0 || len(pass) > 0 {
		if len(pass) == 0 || (len(auto) > 0 && auto[0].Port < pass[0].Port) {
			a := auto[0]
			auto = auto[1:]
			var admitted []*model.ServiceInfo
			for _, svc := range services {
				if svc != nil && admits(a.Hosts, svc) {
					admitted = append(admitted, svc)
				}
			}
			if l := GatewayListenerWithPods(admitted, a.Port, podSNIs); l != nil {
				out = append(out, l)
			}
			continue
		}
		p := pass[0]
		pass = pass[1:]
		if l := PassthroughListener(p, byHost); l != nil {
			out = append(out, l)
		}
	}
	return out
}

func admits(hosts []model.GatewayHost, svc *model.ServiceInfo) bool {
	for _, h := range hosts {
		if h.Admits(svc.Host, svc.Namespace) {
			return true
		}
	}
	return false
}

// PassthroughListener is the listener 0.0.0.0_PORT of a PASSTHROUGH
// server of an Istio Gateway (expose-istiod.yaml's 15012 and 15017): the
// TLS inspector reads the SNI, and one filter chain per route, matching
// its SNI hosts (any server name when it has none, Istio's "*"), passes
// the connection, still encrypted, to the route's destination cluster
// outbound|PORT||HOST (Cluster, as a sidecar's). TLS is not terminated:
// the client verifies the destination's own certificate.
//
// A route whose destination is not a known service is left out, as is
// one without a destination port whose service has not exactly one TCP
// port; nil when no route is left.
func PassthroughListener(p model.PassthroughPort, services map[model.Host]*model.ServiceInfo) *listenerv3.Listener {
	var chains []*listenerv3.FilterChain
	for _, r := range p.Routes {
		port, ok := destinationPort(services[r.Destination], r.DestinationPort)
		if !ok {
			continue
		}
		cluster := model.ClusterName(r.Destination, port, "")
		var match *listenerv3.FilterChainMatch
		if len(r.SNIHosts) > 0 {
			match = &listenerv3.FilterChainMatch{ServerNames: r.SNIHosts}
		}
		chains = append(chains, &listenerv3.FilterChain{
			Name:             cluster,
			FilterChainMatch: match,
			Filters: []*listenerv3.Filter{{
				Name: wellknown.TCPProxy,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpproxyv3.TcpProxy{
					StatPrefix:       cluster,
					ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
				})},
			}},
		})
	}
	if len(chains) == 0 {
		return nil
	}
	return &listenerv3.Listener{
		Name:    OutboundListenerName(p.Port),
		Address: socketAddress("0.0.0.0", p.Port),
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

// destinationPort is the port a route's destination uses: port if the
// service has it as a TCP port, else, for port 0, the service's only TCP
// port.
func destinationPort(svc *model.ServiceInfo, port uint32) (uint32, bool) {
	if svc == nil {
		return 0, false
	}
	var tcp []uint32
	for _, p := range svc.Ports {
		if p.IsTCP() {
			if p.Port == port {
				return port, true
			}
			tcp = append(tcp, p.Port)
		}
	}
	if port == 0 && len(tcp) == 1 {
		return tcp[0], true
	}
	return 0, false
}

// PassthroughClusters are the clusters of a plan's passthrough routes:
// Cluster (a sidecar's outbound|PORT||HOST, as istiod sends a gateway)
// per destination that is a known service port, sorted by name.
func PassthroughClusters(plan *model.GatewayPlan, services map[model.Host]*model.ServiceInfo, o ClusterOptions) []*clusterv3.Cluster {
	var out []*clusterv3.Cluster
	for _, d := range plan.Destinations() {
		svc := services[d.Host]
		port, ok := destinationPort(svc, d.Port)
		if !ok {
			continue
		}
		for _, sp := range svc.Ports {
			if sp.Port == port {
				out = append(out, Cluster(svc, sp, o))
				break
			}
		}
	}
	return out
}

// IstioGatewayClusterLoadAssignment is the EDS resource of GatewayCluster
// for an east-west gateway that Istio's Gateways configure: the mesh-mTLS
// endpoints of v (the gateway network's LocalView) only, with no exception
// for the control plane: istiod's AUTO_PASSTHROUGH clusters keep only
// tlsMode=istio endpoints, and the control plane is exposed by a
// PASSTHROUGH server (PassthroughListener) when the user asks for it.
func IstioGatewayClusterLoadAssignment(host model.Host, port uint32, v model.View) *endpointv3.ClusterLoadAssignment {
	return loadAssignment(GatewayClusterName(host, port), mtlsOnly(v.Endpoints))
}
