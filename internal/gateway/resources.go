package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultConnectTimeout is a cluster's connect timeout when it sets none
// (Envoy's default).
const DefaultConnectTimeout = 5 * time.Second

// errUnsupported is wrapped by every decode error: the resource is valid
// xDS that this gateway cannot carry out faithfully, so it is NACKed rather
// than half applied.
var errUnsupported = errors.New("not supported by this gateway")

// listenerConfig is the gateway's listener, decoded: its filter chains as
// routes (clusters not yet resolved).
type listenerConfig struct {
	name         string
	routes       []Route
	defaultRoute *Route
}

// clusterConfig is a cluster, decoded. An EDS cluster names its EDS
// resource; a STATIC one carries its endpoints.
type clusterConfig struct {
	connectTimeout time.Duration
	edsName        string
	static         []Endpoint
}

// transportProtocolTLS is the only transport protocol the gateway sees:
// it passes TLS through and closes anything else.
const transportProtocolTLS = "tls"

// decodeListener checks that l is a listener the gateway can run, SNI
// passthrough as GatewayListener builds it, and decodes it. What the gateway
// would have to ignore to run l (another listener filter, a filter chain
// match on addresses or ports, a filter chain that terminates TLS, a
// network filter other than one tcp_proxy to one cluster) is an error
// wrapping errUnsupported that names the part.
func decodeListener(l *listenerv3.Listener) (*listenerConfig, error) {
	unsupported := func(format string, args ...any) (*listenerConfig, error) {
		return nil, fmt.Errorf("listener %q: %s: %w", l.GetName(), fmt.Sprintf(format, args...), errUnsupported)
	}
	switch {
	case l.GetApiListener() != nil:
		return unsupported("is an API listener (proxyless gRPC), not a TCP listener")
	case l.GetInternalListener() != nil:
		return unsupported("is an internal listener")
	case l.GetAddress().GetSocketAddress().GetProtocol() != corev3.SocketAddress_TCP:
		return unsupported("listens on %s, only TCP is", l.GetAddress().GetSocketAddress().GetProtocol())
	case l.GetFilterChainMatcher() != nil:
		return unsupported("uses filter_chain_matcher; only filter_chain_match (server names, transport protocol, ALPN) is")
	case l.GetFcdsConfig() != nil:
		return unsupported("uses filter chain discovery (FCDS)")
	}
	for i, lf := range l.GetListenerFilters() {
		if !isExtension(lf.GetName(), lf.GetTypedConfig(), wellknown.TLSInspector, &tlsinspectorv3.TlsInspector{}) {
			return unsupported("listener filter %d (%s %s): only the TLS inspector is", i, lf.GetName(), lf.GetTypedConfig().GetTypeUrl())
		}
	}
	cfg := &listenerConfig{name: l.GetName(), routes: make([]Route, 0, len(l.GetFilterChains()))}
	type matchKey struct {
		serverName string
		tls        bool
		alpn       string
	}
	seen := make(map[matchKey]int)
	for i, fc := range l.GetFilterChains() {
		r, err := decodeFilterChain(fc)
		if err != nil {
			return nil, fmt.Errorf("listener %q: filter chain %d %q: %w", l.GetName(), i, fc.GetName(), err)
		}
		names := r.ServerNames
		if len(names) == 0 {
			names = []string{""}
		}
		protos := r.ALPN
		if len(protos) == 0 {
			protos = []string{""}
		}
		for _, n := range names {
			for _, p := range protos {
				k := matchKey{n, r.TLS, p}
				if j, dup := seen[k]; dup {
					return nil, fmt.Errorf("listener %q: filter chains %d and %d have the same match (server name %q, ALPN %q); "+
						"Envoy rejects such a listener too", l.GetName(), j, i, n, p)
				}
				seen[k] = i
			}
		}
		cfg.routes = append(cfg.routes, r)
	}
	if dfc := l.GetDefaultFilterChain(); dfc != nil {
		if dfc.GetFilterChainMatch() != nil {
			return unsupported("default filter chain has a filter_chain_match")
		}
		r, err := decodeFilterChain(dfc)
		if err != nil {
			return nil, fmt.Errorf("listener %q: default filter chain: %w", l.GetName(), err)
		}
		cfg.defaultRoute = &r
	}
	return cfg, nil
}

// decodeFilterChain decodes one filter chain into a route.
func decodeFilterChain(fc *listenerv3.FilterChain) (Route, error) {
	unsupported := func(format string, args ...any) (Route, error) {
		return Route{}, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errUnsupported)
	}
	m := fc.GetFilterChainMatch()
	switch {
	case m.GetDestinationPort() != nil, len(m.GetPrefixRanges()) > 0, m.GetAddressSuffix() != "", m.GetSuffixLen() != nil,
		len(m.GetDirectSourcePrefixRanges()) > 0, m.GetSourceType() != listenerv3.FilterChainMatch_ANY,
		len(m.GetSourcePrefixRanges()) > 0, len(m.GetSourcePorts()) > 0:
		return unsupported("matches on addresses or ports; only server names, transport protocol and ALPN are matched")
	case m.GetTransportProtocol() != "" && m.GetTransportProtocol() != transportProtocolTLS:
		return unsupported("matches transport protocol %q; the gateway passes only TLS", m.GetTransportProtocol())
	case fc.GetTransportSocket() != nil:
		return unsupported("terminates TLS (transport socket %s); the gateway passes TLS through and holds no certificate",
			fc.GetTransportSocket().GetName())
	}
	r := Route{Name: fc.GetName(), TLS: m.GetTransportProtocol() == transportProtocolTLS, ALPN: m.GetApplicationProtocols()}
	for _, n := range m.GetServerNames() {
		n = strings.ToLower(n)
		if n == "" || strings.Contains(strings.TrimPrefix(n, "*."), "*") {
			return unsupported("server name %q: want a DNS name, or *. followed by one", n)
		}
		r.ServerNames = append(r.ServerNames, n)
	}
	filters := fc.GetFilters()
	if len(filters) != 1 {
		return unsupported("has %d network filters; the gateway runs one tcp_proxy", len(filters))
	}
	f := filters[0]
	tp := new(tcpproxyv3.TcpProxy)
	if !isExtension(f.GetName(), f.GetTypedConfig(), wellknown.TCPProxy, tp) {
		return unsupported("network filter %s (%s): the gateway runs only tcp_proxy", f.GetName(), f.GetTypedConfig().GetTypeUrl())
	}
	if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
		return Route{}, fmt.Errorf("tcp_proxy config: %w", err)
	}
	switch {
	case tp.GetWeightedClusters() != nil:
		return unsupported("tcp_proxy with weighted_clusters; one cluster is")
	case tp.GetTunnelingConfig() != nil:
		return unsupported("tcp_proxy tunnels over HTTP (tunneling_config)")
	case tp.GetOnDemand() != nil:
		return unsupported("tcp_proxy with on-demand cluster discovery")
	case tp.GetCluster() == "":
		return Route{}, errors.New("tcp_proxy names no cluster")
	}
	r.ClusterName = tp.GetCluster()
	return r, nil
}

// isExtension reports whether an extension (a listener or network filter)
// is the one of name and config type want: Envoy finds extensions by the
// type of their typed_config, or by name when it has none.
func isExtension(name string, cfg *anypb.Any, wantName string, want proto.Message) bool {
	if cfg == nil {
		return name == wantName
	}
	return cfg.MessageIs(want)
}

// decodeCluster checks that c is a cluster the gateway can balance over,
// plain TCP (EDS over ADS or STATIC, no upstream TLS, round-robin-like
// balancing), and decodes it. Errors wrap errUnsupported.
func decodeCluster(c *clusterv3.Cluster) (clusterConfig, error) {
	unsupported := func(format string, args ...any) (clusterConfig, error) {
		return clusterConfig{}, fmt.Errorf("cluster %q: %s: %w", c.GetName(), fmt.Sprintf(format, args...), errUnsupported)
	}
	if c.GetName() == "" {
		return clusterConfig{}, errors.New("a cluster has no name")
	}
	cfg := clusterConfig{connectTimeout: DefaultConnectTimeout}
	if d := c.GetConnectTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return clusterConfig{}, fmt.Errorf("cluster %q: connect_timeout %v: want a positive duration", c.GetName(), d)
		}
		cfg.connectTimeout = d.AsDuration()
	}
	switch {
	case c.GetClusterType() != nil:
		return unsupported("custom cluster type %s; EDS and STATIC are supported", c.GetClusterType().GetName())
	case c.GetType() == clusterv3.Cluster_EDS:
		if src := c.GetEdsClusterConfig().GetEdsConfig(); src.GetAds() == nil && src.GetSelf() == nil {
			return unsupported("EDS from a config source other than ADS")
		}
		cfg.edsName = c.GetEdsClusterConfig().GetServiceName()
		if cfg.edsName == "" {
			cfg.edsName = c.GetName()
		}
	case c.GetType() == clusterv3.Cluster_STATIC:
		eps, err := decodeAssignment(c.GetLoadAssignment())
		if err != nil {
			return clusterConfig{}, fmt.Errorf("cluster %q: load_assignment: %w", c.GetName(), err)
		}
		cfg.static = eps
	default:
		return unsupported("type %s; EDS and STATIC are supported", c.GetType())
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_LEAST_REQUEST, clusterv3.Cluster_RANDOM:
		// All spread connections by weight; the gateway does it by smooth
		// weighted round robin.
	default:
		return unsupported("lb_policy %s; ROUND_ROBIN, LEAST_REQUEST and RANDOM are supported", c.GetLbPolicy())
	}
	switch {
	case c.GetLoadBalancingPolicy() != nil:
		return unsupported("load_balancing_policy (an extension policy); lb_policy is supported")
	case c.GetLbSubsetConfig() != nil:
		return unsupported("subset load balancing")
	case !isRawBuffer(c.GetTransportSocket()):
		return unsupported("upstream transport socket %s; the gateway passes TLS through and originates none",
			c.GetTransportSocket().GetName())
	case c.GetTransportSocketMatcher() != nil:
		return unsupported("transport_socket_matcher")
	case len(c.GetFilters()) > 0:
		return unsupported("upstream network filters")
	}
	for _, m := range c.GetTransportSocketMatches() {
		if !isRawBuffer(m.GetTransportSocket()) {
			return unsupported("transport socket match %q uses %s; the gateway passes TLS through and originates none",
				m.GetName(), m.GetTransportSocket().GetName())
		}
	}
	return cfg, nil
}

// isRawBuffer reports whether ts is plaintext (or absent).
func isRawBuffer(ts *corev3.TransportSocket) bool {
	return ts == nil || isExtension(ts.GetName(), ts.GetTypedConfig(), wellknown.TransportSocketRawBuffer, &rawbufferv3.RawBuffer{})
}

// decodeAssignment returns the endpoints of a load assignment that new
// connections go to: the usable ones (health status unknown, healthy or
// degraded, as Envoy counts them) of the lowest priority that has any.
// Locality weights are not applied: as in Envoy without locality-weighted
// balancing, every endpoint of the priority competes by its own weight.
// An endpoint that is not an IP address and port, or weighs 0, is an error.
func decodeAssignment(cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	var (
		best    []Endpoint
		bestPri uint32
	)
	for _, loc := range cla.GetEndpoints() {
		pri := loc.GetPriority()
		for _, lb := range loc.GetLbEndpoints() {
			ep, err := decodeEndpoint(lb)
			if err != nil {
				return nil, err
			}
			if !usable(lb.GetHealthStatus()) {
				continue
			}
			switch {
			case best == nil || pri < bestPri:
				best, bestPri = []Endpoint{ep}, pri
			case pri == bestPri:
				best = append(best, ep)
			}
		}
	}
	return slices.Clip(best), nil
}

// decodeEndpoint decodes one endpoint, whatever its health.
func decodeEndpoint(lb *endpointv3.LbEndpoint) (Endpoint, error) {
	if lb.GetEndpointName() != "" {
		return Endpoint{}, fmt.Errorf("named endpoint %q: %w", lb.GetEndpointName(), errUnsupported)
	}
	sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
	if sa == nil {
		return Endpoint{}, fmt.Errorf("an endpoint without a socket address: %w", errUnsupported)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return Endpoint{}, fmt.Errorf("endpoint %s uses %s: %w", sa.GetAddress(), sa.GetProtocol(), errUnsupported)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint address %q is not an IP address: %w", sa.GetAddress(), errUnsupported)
	}
	port, ok := sa.GetPortSpecifier().(*corev3.SocketAddress_PortValue)
	if !ok || port.PortValue == 0 || port.PortValue > 65535 {
		return Endpoint{}, fmt.Errorf("endpoint %s has no port number in 1-65535: %w", sa.GetAddress(), errUnsupported)
	}
	weight := uint32(1)
	if w := lb.GetLoadBalancingWeight(); w != nil {
		if w.GetValue() == 0 {
			return Endpoint{}, fmt.Errorf("endpoint %s:%d weighs 0; weights start at 1", sa.GetAddress(), port.PortValue)
		}
		weight = w.GetValue()
	}
	return newEndpoint(netip.AddrPortFrom(ip.Unmap(), uint16(port.PortValue)), weight), nil
}

// usable reports whether Envoy sends new connections to an endpoint of
// this health status.
func usable(h corev3.HealthStatus) bool {
	switch h {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_DEGRADED:
		return true
	default:
		return false
	}
}
