package envoy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	originalsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Names and ports of what a captured sidecar gets besides its services'
// resources, as istiod names them.
const (
	VirtualOutboundListenerName = "virtualOutbound"
	VirtualInboundListenerName  = "virtualInbound"
	// VirtualOutboundPort is where iptables sends the pod's outbound
	// connections, VirtualInboundPort its inbound ones.
	VirtualOutboundPort uint32 = 15001
	VirtualInboundPort  uint32 = 15006

	PassthroughCluster        = "PassthroughCluster"
	BlackHoleCluster          = "BlackHoleCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"

	virtualOutboundBlackholeChain = "virtualOutbound-blackhole"
	virtualOutboundCatchAllChain  = "virtualOutbound-catchall-tcp"
	virtualInboundBlackholeChain  = "virtualInbound-blackhole"
	virtualInboundCatchAllHTTP    = "virtualInbound-catchall-http"
	passthroughFilterChain        = "PassthroughFilterChain"

	transportProtocolRaw = "raw_buffer"
	wildcardIPv4         = "0.0.0.0"
)

// plaintextHTTPALPNs are what Envoy's HTTP inspector reports for plaintext
// HTTP/1.1 and HTTP/2 (istiod matches HTTP/1.0 only if told to).
var plaintextHTTPALPNs = []string{"http/1.1", "h2c"}

// OutboundTrafficPolicy is the mesh config's outboundTrafficPolicy.mode:
// where a captured connection to a destination no service claims goes.
type OutboundTrafficPolicy int

// Outbound traffic policies.
const (
	// AllowAny (the default) forwards it to its original destination
	// (PassthroughCluster).
	AllowAny OutboundTrafficPolicy = iota
	// RegistryOnly drops it (BlackHoleCluster).
	RegistryOnly
)

// String spells the policy as mesh config does.
func (p OutboundTrafficPolicy) String() string {
	if p == RegistryOnly {
		return "REGISTRY_ONLY"
	}
	return "ALLOW_ANY"
}

// catchAllCluster is where unmatched outbound connections go.
func (p OutboundTrafficPolicy) catchAllCluster() string {
	if p == RegistryOnly {
		return BlackHoleCluster
	}
	return PassthroughCluster
}

// VirtualOutboundListener is the listener iptables sends every outbound
// connection to (0.0.0.0:15001, named virtualOutbound as istiod names it).
// use_original_dst hands each connection to the listener of its original
// destination (a service's VIP_PORT or 0.0.0.0_PORT); what none claims
// goes to PassthroughCluster, or BlackHoleCluster under REGISTRY_ONLY.
// A connection to 15001 itself is dropped, so that it cannot loop.
func VirtualOutboundListener(policy OutboundTrafficPolicy, mode InterceptionMode) *listenerv3.Listener {
	l := &listenerv3.Listener{
		Name:           VirtualOutboundListenerName,
		Address:        socketAddress(wildcardIPv4, VirtualOutboundPort),
		UseOriginalDst: wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{
			{
				Name:             virtualOutboundBlackholeChain,
				FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(VirtualOutboundPort)},
				Filters:          []*listenerv3.Filter{tcpProxyFilter(BlackHoleCluster)},
			},
			{
				Name:    virtualOutboundCatchAllChain,
				Filters: []*listenerv3.Filter{tcpProxyFilter(policy.catchAllCluster())},
			},
		},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
	if mode == InterceptionTProxy {
		l.Transparent = wrapperspb.Bool(true)
	}
	return l
}

// CapturedOutboundListeners are a captured sidecar's per-port outbound
// listeners, bind_to_port false (iptables and VirtualOutboundListener
// hand them their connections), chosen by each service port's protocol
// (model.PortProtocol) as istiod chooses them:
//
//   - HTTP (http, http2, grpc, grpc-web): one listener 0.0.0.0_PORT per
//     port, shared by every service with it, an HTTP connection manager
//     with RDS SidecarRouteName(PORT), for connections the HTTP inspector
//     finds to be plaintext HTTP/1.1 or HTTP/2; anything else on the port
//     goes to the catch-all cluster (PassthroughFilterChain).
//   - TCP (tcp, tls, https, mongo, redis, mysql): one listener VIP_PORT per
//     service, at its cluster IP in the proxy's cluster, tcp_proxy to
//     outbound|PORT||HOST.
//   - Unknown (unnamed or unrecognized names): VIP_PORT as for TCP, but
//     sniffed: plaintext HTTP goes to an HTTP connection manager with RDS
//     SniffedRouteName(HOST, PORT), the rest to tcp_proxy.
//   - UDP and SCTP ports get nothing, nor HTTP ports 15001 and 15006
//     (the virtual listeners' addresses).
//
// A service without a cluster IP (headless) gets no VIP_PORT listener: its
// TCP traffic reaches the pod directly through the virtual listener's
// catch-all (PassthroughCluster). Sorted by name; services is not modified.
func CapturedOutboundListeners(services []*model.ServiceInfo, proxyCluster model.ClusterID, policy OutboundTrafficPolicy) []*listenerv3.Listener {
	sorted := slices.DeleteFunc(slices.Clone(services), func(s *model.ServiceInfo) bool { return s == nil })
	slices.SortFunc(sorted, func(a, b *model.ServiceInfo) int { return cmp.Compare(a.Host, b.Host) })
	httpPorts := map[uint32]bool{}
	byName := map[string]*listenerv3.Listener{}
	for _, svc := range sorted {
		vip := ServiceVIP(svc, proxyCluster)
		for _, p := range svc.Ports {
			proto := model.PortProtocol(p)
			switch {
			case proto.IsHTTP():
				// 0.0.0.0:15001 and :15006 are the virtual listeners'.
				if p.Port != VirtualOutboundPort && p.Port != VirtualInboundPort {
					httpPorts[p.Port] = true
				}
			case proto.IsTCP() || proto.IsUnsupported():
				if vip == "" {
					continue
				}
				name := vip + "_" + strconv.FormatUint(uint64(p.Port), 10)
				if _, taken := byName[name]; taken {
					continue // two services with one VIP: the first host keeps it
				}
				byName[name] = vipListener(name, vip, svc, p.Port, proto.IsUnsupported())
			}
		}
	}
	for port := range httpPorts {
		l := httpWildcardListener(port, policy)
		byName[l.GetName()] = l
	}
	out := make([]*listenerv3.Listener, 0, len(byName))
	for _, l := range byName {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *listenerv3.Listener) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}

// ServiceVIP is the address a captured proxy of proxyCluster reaches svc
// at: its cluster IP there, else the cluster IP of the first cluster (by
// id) that has one, else "" (headless, or no cluster IP anywhere).
func ServiceVIP(svc *model.ServiceInfo, proxyCluster model.ClusterID) string {
	if ip, err := netip.ParseAddr(svc.ClusterIPs[proxyCluster]); err == nil {
		return ip.String()
	}
	var best model.ClusterID
	vip := ""
	for c, s := range svc.ClusterIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil || (vip != "" && c >= best) {
			continue
		}
		best, vip = c, ip.String()
	}
	return vip
}

// SniffedRouteName is the RDS resource of a sniffed (unknown protocol)
// service port, HOST:PORT, as istiod names it: the port's listener is the
// service's own, so its routes are too.
func SniffedRouteName(host model.Host, port uint32) string {
	return hostPort(string(host), port)
}

// SniffedRoute is the RDS resource SniffedRouteName(HOST, PORT): one
// virtual host, as in SidecarRoute, but for every domain ("*"): the
// listener is the service's own VIP_PORT, so whatever Host a request
// carries, it was sent to this service (as istiod's). Nothing else shares
// the route, so it has no catch-all.
func SniffedRoute(svc *model.ServiceInfo, port uint32) *routev3.RouteConfiguration {
	name := SniffedRouteName(svc.Host, port)
	return &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{sidecarVirtualHost(name, svc.Host, port, []string{"*"})},
	}
}

// SniffedPorts are the ports of svc whose protocol is unknown and that
// have a SniffedRoute for a proxy of proxyCluster (those with a VIP).
func SniffedPorts(svc *model.ServiceInfo, proxyCluster model.ClusterID) []uint32 {
	if svc == nil || ServiceVIP(svc, proxyCluster) == "" {
		return nil
	}
	var out []uint32
	for _, p := range svc.Ports {
		if model.PortProtocol(p).IsUnsupported() {
			out = append(out, p.Port)
		}
	}
	return out
}

// httpWildcardListener is 0.0.0.0_PORT of a captured sidecar. It has the
// HTTP inspector only, as istiod's: without a TLS inspector Envoy reports
// every connection's transport as raw_buffer, and a TLS client's bytes
// are not HTTP, so they go to the catch-all all the same.
func httpWildcardListener(port uint32, policy OutboundTrafficPolicy) *listenerv3.Listener {
	name := OutboundListenerName(port)
	return &listenerv3.Listener{
		Name:       name,
		Address:    socketAddress(wildcardIPv4, port),
		BindToPort: wrapperspb.Bool(false),
		ListenerFilters: []*listenerv3.ListenerFilter{
			httpInspector(),
		},
		ListenerFiltersTimeout:           durationpb.New(0),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains: []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{
				TransportProtocol:    transportProtocolRaw,
				ApplicationProtocols: plaintextHTTPALPNs,
			},
			Filters: []*listenerv3.Filter{outboundHCM(name, SidecarRouteName(port))},
		}},
		DefaultFilterChain: &listenerv3.FilterChain{
			Name:             passthroughFilterChain,
			FilterChainMatch: &listenerv3.FilterChainMatch{},
			Filters:          []*listenerv3.Filter{tcpProxyFilter(policy.catchAllCluster())},
		},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

// vipListener is VIP_PORT of one service: tcp_proxy, or for a sniffed port
// an HTTP chain for plaintext HTTP and tcp_proxy for the rest.
func vipListener(name, vip string, svc *model.ServiceInfo, port uint32, sniffed bool) *listenerv3.Listener {
	cluster := model.ClusterName(svc.Host, port, "")
	tcp := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{tcpProxyFilter(cluster)}}
	l := &listenerv3.Listener{
		Name:                             name,
		Address:                          socketAddress(vip, port),
		BindToPort:                       wrapperspb.Bool(false),
		ListenerFiltersTimeout:           durationpb.New(0),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     []*listenerv3.FilterChain{tcp},
		TrafficDirection:                 corev3.TrafficDirection_OUTBOUND,
	}
	if sniffed {
		l.ListenerFilters = []*listenerv3.ListenerFilter{httpInspector()}
		l.FilterChains = []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{
				TransportProtocol:    transportProtocolRaw,
				ApplicationProtocols: plaintextHTTPALPNs,
			},
			Filters: []*listenerv3.Filter{outboundHCM(name, SniffedRouteName(svc.Host, port))},
		}}
		l.DefaultFilterChain = tcp
	}
	return l
}

// outboundHCM is the HTTP connection manager of an outbound listener.
func outboundHCM(listenerName, rds string) *listenerv3.Filter {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + listenerName,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: rds,
		}},
		HttpFilters:   []*hcmv3.HttpFilter{routerFilter()},
		StripPortMode: stripAnyHostPort(),
	}
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm)},
	}
}

// tcpProxyFilter forwards a connection to cluster.
func tcpProxyFilter(cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpproxyv3.TcpProxy{
			StatPrefix:       cluster,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
		})},
	}
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.TLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&tlsinspectorv3.TlsInspector{})},
	}
}

func httpInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.HTTPInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&httpinspectorv3.HttpInspector{})},
	}
}

func originalDst() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.OriginalDestination,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&originaldstv3.OriginalDst{})},
	}
}

// originalSrc keeps the client's address on inbound connections of a
// TPROXY sidecar, with Istio's mark.
func originalSrc() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.OriginalSource,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed(&originalsrcv3.OriginalSrc{Mark: 1337})},
	}
}
