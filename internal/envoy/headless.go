package envoy

import (
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

// HeadlessListeners are a captured sidecar's listeners for the TCP ports
// (model.PortProtocol) of a headless service, as istiod's: one per
// endpoint, IP_PORT at the endpoint's address and target port (what a
// client that resolved the service's name dials), bind_to_port false,
// tcp_proxy to the port's HeadlessCluster. eps lists, per Service port,
// its endpoints (model.Snapshot.EndpointAddrs). Ports of other protocols
// get none (HTTP ones are served by 0.0.0.0_PORT); an endpoint claimed
// twice keeps the first port's listener. Sorted by eps' order.
//
// Endpoints in other networks get theirs too, as from istiod, although a
// connection to such an address cannot leave the proxy's network (see
// docs/sidecars.md).
func HeadlessListeners(svc *model.ServiceInfo, eps map[uint32][]model.EndpointAddr) []*listenerv3.Listener {
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
			out = append(out, &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(e.Address, e.Port),
				BindToPort:       wrapperspb.Bool(false),
				FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxyFilter(cluster)}}},
				TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			})
		}
	}
	return out
}
