package envoy

import (
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// HeadlessCluster is a captured sidecar's outbound|PORT||HOST for a
// headless service (model.IsHeadless), as istiod builds it: ORIGINAL_DST,
// so that a connection to one pod (a StatefulSet member, say) reaches that
// pod and not any endpoint of the service. Envoy knows nothing of such a
// destination before connecting, so the transport cannot follow endpoint
// metadata: the cluster speaks mesh mTLS (Cluster's tlsMode=istio socket)
// when strict (model.Snapshot.ServiceMTLSStrict: the destination's
// workloads refuse plaintext), else plaintext, as istiod's.
//
// Sidecars that are not captured keep Cluster (EDS): their listener binds
// the port itself, so there is no original destination to go to.
//
// svc must not be nil.
func HeadlessCluster(svc *model.ServiceInfo, port model.ServicePort, o ClusterOptions, strict bool) *clusterv3.Cluster {
	c := edsCluster(model.ClusterName(svc.Host, port.Port, ""), svc, port, o.ConnectTimeout)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
	c.EdsClusterConfig = nil
	c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	c.TypedExtensionProtocolOptions = protocolOptions(model.PortProtocol(port))
	if strict {
		c.TransportSocket = &corev3.TransportSocket{
			Name:       wellknown.TransportSocketTLS,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(istioUpstreamTLS(svc, port, o.TrustDomain))},
		}
	}
	return c
}

// HeadlessEndpoint is an endpoint of a headless service as a captured
// sidecar reaches it: directly, or, when Gateways is not empty, through
// those gateways of its network (model.Snapshot.PodGateways).
type HeadlessEndpoint struct {
	model.EndpointAddr
	Gateways []model.Gateway
}

// HeadlessListeners are a captured sidecar's listeners for the TCP ports
// (model.PortProtocol) of a headless service, as istiod's: one per
// endpoint, IP_PORT at the endpoint's address and target port (what a
// client that resolved the service's name dials), bind_to_port false,
// tcp_proxy to the port's HeadlessCluster. eps lists, per Service port,
// its endpoints (model.Snapshot.EndpointAddrs). Ports of other protocols
// get none (HTTP ones are served by 0.0.0.0_PORT); an endpoint claimed
// twice keeps the first port's listener. Sorted by eps' order.
//
// Where istiod's listener fails, Causeway's differs: an endpoint with
// Gateways (in another network, speaking mesh mTLS) is sent to its own
// PodCluster, which reaches it through its network's east-west gateway;
// istiod's ORIGINAL_DST cluster would dial the pod's address, unreachable
// from here (istio/istio#31787). See docs/sidecars.md.
func HeadlessListeners(svc *model.ServiceInfo, eps map[uint32][]HeadlessEndpoint) []*listenerv3.Listener {
	var out []*listenerv3.Listener
	seen := map[string]bool{}
	for _, p := range svc.Ports {
		if !model.PortProtocol(p).IsTCP() {
			continue
		}
		cluster := model.ClusterName(svc.Host, p.Port, "")
		for _, e := range eps[p.Port] {
			name := e.Address + "_" + strconv.FormatUint(uint64(e.Port), 10)
			if seen[name] {
				continue
			}
			seen[name] = true
			target := cluster
			if len(e.Gateways) > 0 {
				target = PodClusterName(svc.Host, p.Port, e.Address)
			}
			out = append(out, &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(e.Address, e.Port),
				BindToPort:       wrapperspb.Bool(false),
				FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxyFilter(target)}}},
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			})
		}
	}
	return out
}

// PodClusterName is a captured sidecar's cluster for one endpoint (addr)
// of headless service h on Service port port:
// outbound|PORT||ADDR-WITH-DASHES.HOST (model.PodHost).
func PodClusterName(h model.Host, port uint32, addr string) string {
	return model.ClusterName(model.PodHost(h, addr), port, "")
}

// PodSNI is the server name of one endpoint (addr) of headless service h
// on Service port port: outbound_.PORT_._.ADDR-WITH-DASHES.HOST, Istio's
// SNI form for the per-pod host (model.PodHost). A sidecar's PodCluster
// sends it; the east-west gateway of the endpoint's network passes it to
// its GatewayPodCluster of the same name.
func PodSNI(h model.Host, port uint32, addr string) string {
	return model.SNI(model.PodHost(h, addr), port, "")
}

// PodCluster is a captured sidecar's cluster for one endpoint e of a
// headless service in another network (e.Gateways not empty): STATIC,
// the gateways as its endpoints (equal weights), mesh mTLS with PodSNI as
// the server name and the service's accounts as the peer's SANs, so that
// the gateway passes the connection to exactly that pod.
//
// svc must not be nil.
func PodCluster(svc *model.ServiceInfo, port model.ServicePort, e HeadlessEndpoint, o ClusterOptions) *clusterv3.Cluster {
	name := PodClusterName(svc.Host, port.Port, e.Address)
	c := edsCluster(name, svc, port, o.ConnectTimeout)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.EdsClusterConfig = nil
	c.TypedExtensionProtocolOptions = protocolOptions(model.PortProtocol(port))
	lbs := make([]*endpointv3.LbEndpoint, len(e.Gateways))
	for i, g := range e.Gateways {
		lbs[i] = staticEndpoint(g.Address, g.Port)
	}
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}
	tc := istioUpstreamTLS(svc, port, o.TrustDomain)
	tc.Sni = PodSNI(svc.Host, port.Port, e.Address)
	c.TransportSocket = &corev3.TransportSocket{
		Name:       wellknown.TransportSocketTLS,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(tc)},
	}
	return c
}

// GatewayPodCluster is the east-west gateway's cluster for one endpoint e
// of a headless service in its own network (model.Snapshot.GatewayPods),
// named PodSNI: STATIC, e's address and target port, plain TCP (the
// gateway passes the client's mTLS through, as GatewayCluster).
//
// svc must not be nil.
func GatewayPodCluster(svc *model.ServiceInfo, port model.ServicePort, e model.EndpointAddr) *clusterv3.Cluster {
	name := PodSNI(svc.Host, port.Port, e.Address)
	c := edsCluster(name, svc, port, 0)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.EdsClusterConfig = nil
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{staticEndpoint(e.Address, e.Port)},
		}},
	}
	return c
}

func staticEndpoint(addr string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
		Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr, port)},
	}}
}
