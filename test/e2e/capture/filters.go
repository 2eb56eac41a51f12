package capture

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Type URLs of the typed configs this package reads; Envoy picks a
// filter's implementation by them, not by the filter's name.
const (
	typeHCM        = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeTCPProxy   = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeDownstream = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeRawBuffer  = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// Terminal is what a filter chain's last network filter does with a
// connection: an HTTP connection manager routes each request by a route
// configuration (RDS by name, or inline), tcp_proxy sends the bytes to
// one cluster.
type Terminal struct {
	// HTTP is true for an HTTP connection manager.
	HTTP bool
	// RDS is the route configuration's name when it comes over RDS.
	RDS string
	// Routes is the inline route configuration, when there is one.
	Routes *routev3.RouteConfiguration
	// Cluster is tcp_proxy's cluster.
	Cluster string
	// StripPort is the HTTP connection manager's strip_any_host_port:
	// the port of the Host header is dropped before virtual hosts are
	// matched.
	StripPort bool
}

// TerminalOf reads fc's last filter.
func TerminalOf(fc *listenerv3.FilterChain) (Terminal, error) {
	fs := fc.GetFilters()
	if len(fs) == 0 {
		return Terminal{}, fmt.Errorf("chain %q has no filters", fc.GetName())
	}
	last := fs[len(fs)-1]
	tc := last.GetTypedConfig()
	switch tc.GetTypeUrl() {
	case typeHCM:
		var hcm hcmv3.HttpConnectionManager
		if err := tc.UnmarshalTo(&hcm); err != nil {
			return Terminal{}, fmt.Errorf("chain %q: decode the HTTP connection manager: %w", fc.GetName(), err)
		}
		t := Terminal{HTTP: true, StripPort: hcm.GetStripAnyHostPort()}
		switch rs := hcm.GetRouteSpecifier().(type) {
		case *hcmv3.HttpConnectionManager_Rds:
			t.RDS = rs.Rds.GetRouteConfigName()
		case *hcmv3.HttpConnectionManager_RouteConfig:
			t.Routes = rs.RouteConfig
		default:
			return Terminal{}, fmt.Errorf("chain %q: HTTP connection manager with route specifier %T, which this interpreter does not read", fc.GetName(), rs)
		}
		return t, nil
	case typeTCPProxy:
		var tp tcpproxyv3.TcpProxy
		if err := tc.UnmarshalTo(&tp); err != nil {
			return Terminal{}, fmt.Errorf("chain %q: decode tcp_proxy: %w", fc.GetName(), err)
		}
		c := tp.GetCluster()
		if c == "" {
			return Terminal{}, fmt.Errorf("chain %q: tcp_proxy without a single cluster (weighted clusters are not read)", fc.GetName())
		}
		return Terminal{Cluster: c}, nil
	default:
		return Terminal{}, fmt.Errorf("chain %q ends with filter %q of type %q; want an HTTP connection manager or tcp_proxy", fc.GetName(), last.GetName(), tc.GetTypeUrl())
	}
}

// ErrNoRoute says no virtual host or route matches a request: Envoy
// answers it 404.
var ErrNoRoute = errors.New("no route matches: Envoy answers 404")

// Route is the virtual host and route a request matched, and its cluster.
type Route struct {
	VirtualHost string
	Route       string
	Cluster     string
}

// RouteCluster routes a request with Host header host and path path by rc
// as Envoy does: the virtual host whose domains match host best (exact,
// then the longest suffix wildcard "*.x", then the longest prefix wildcard
// "x.*", then "*"; case-insensitively, the port included), then its first
// route whose match holds.
func RouteCluster(rc *routev3.RouteConfiguration, host, path string) (Route, error) {
	host = strings.ToLower(host)
	var (
		vh   *routev3.VirtualHost
		best = -1
	)
	for _, v := range rc.GetVirtualHosts() {
		for _, d := range v.GetDomains() {
			d = strings.ToLower(d)
			rank := -1
			switch {
			case d == host:
				rank = 3 << 16
			case d == "*":
				rank = 0
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				rank = 2<<16 + len(d)
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(host) > len(d)-1:
				rank = 1<<16 + len(d)
			}
			if rank > best {
				best, vh = rank, v
			}
		}
	}
	if vh == nil {
		return Route{}, fmt.Errorf("route configuration %q, Host %q: no virtual host: %w", rc.GetName(), host, ErrNoRoute)
	}
	for _, r := range vh.GetRoutes() {
		ok, err := routeMatches(r.GetMatch(), path)
		if err != nil {
			return Route{}, fmt.Errorf("route configuration %q, virtual host %q, route %q: %w", rc.GetName(), vh.GetName(), r.GetName(), err)
		}
		if !ok {
			continue
		}
		action := r.GetRoute()
		if action == nil {
			return Route{}, fmt.Errorf("route configuration %q, virtual host %q, route %q: not a route to a cluster (%T)", rc.GetName(), vh.GetName(), r.GetName(), r.GetAction())
		}
		c := action.GetCluster()
		if c == "" {
			return Route{}, fmt.Errorf("route configuration %q, virtual host %q, route %q: no single cluster (%T is not read)", rc.GetName(), vh.GetName(), r.GetName(), action.GetClusterSpecifier())
		}
		return Route{VirtualHost: vh.GetName(), Route: r.GetName(), Cluster: c}, nil
	}
	return Route{}, fmt.Errorf("route configuration %q, virtual host %q, path %q: %w", rc.GetName(), vh.GetName(), path, ErrNoRoute)
}

// routeMatches reports whether m holds for a GET of path without query;
// matchers it cannot judge are errors.
func routeMatches(m *routev3.RouteMatch, path string) (bool, error) {
	if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 || m.GetRuntimeFraction() != nil || m.GetGrpc() != nil || len(m.GetDynamicMetadata()) > 0 {
		return false, errors.New("a route match on headers, query, runtime, gRPC or metadata is not interpreted")
	}
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	eq := func(a, b string) bool { return a == b || (!cs && strings.EqualFold(a, b)) }
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return len(path) >= len(ps.Prefix) && eq(path[:len(ps.Prefix)], ps.Prefix), nil
	case *routev3.RouteMatch_Path:
		return eq(path, ps.Path), nil
	default:
		return false, fmt.Errorf("path specifier %T is not interpreted", ps)
	}
}

// ServerTLS is what a filter chain's DownstreamTlsContext asks of a TLS
// server: the SDS secrets of its certificate and of the roots that
// validate clients, whether a client certificate is required, the ALPN it
// offers and the TLS versions.
type ServerTLS struct {
	CertSDS           []string
	ValidationSDS     string
	RequireClientCert bool
	ALPN              []string
	MinVersion        uint16
	MaxVersion        uint16
	// ClientSANs are the matchers of which the client certificate's URI
	// SANs must satisfy at least one (none: any validated certificate).
	ClientSANs []SANMatcher
}

// SANMatcher is a match_typed_subject_alt_names entry on URI SANs.
type SANMatcher struct {
	Exact, Prefix, Suffix, Contains string
}

// Match reports whether uri satisfies m.
func (m SANMatcher) Match(uri string) bool {
	switch {
	case m.Exact != "":
		return uri == m.Exact
	case m.Prefix != "":
		return strings.HasPrefix(uri, m.Prefix)
	case m.Suffix != "":
		return strings.HasSuffix(uri, m.Suffix)
	default:
		return strings.Contains(uri, m.Contains)
	}
}

// MatchAnySAN reports whether one of uris satisfies one of ms, as Envoy
// checks a peer certificate's SANs; no matchers accept every certificate.
func MatchAnySAN(ms []SANMatcher, uris []string) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if slices.ContainsFunc(uris, m.Match) {
			return true
		}
	}
	return false
}

// sanMatchers reads match_typed_subject_alt_names; SAN types other than
// URI and string matchers other than exact, prefix, suffix and contains
// (without ignore_case) are errors.
func sanMatchers(in []*tlsv3.SubjectAltNameMatcher) ([]SANMatcher, error) {
	var out []SANMatcher
	for _, m := range in {
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			return nil, fmt.Errorf("SAN matcher of type %v is not interpreted (only URI)", m.GetSanType())
		}
		sm := m.GetMatcher()
		if sm.GetIgnoreCase() {
			return nil, errors.New("a case-insensitive SAN matcher is not interpreted")
		}
		var x SANMatcher
		switch {
		case sm.GetExact() != "":
			x.Exact = sm.GetExact()
		case sm.GetPrefix() != "":
			x.Prefix = sm.GetPrefix()
		case sm.GetSuffix() != "":
			x.Suffix = sm.GetSuffix()
		case sm.GetContains() != "":
			x.Contains = sm.GetContains()
		default:
			return nil, fmt.Errorf("SAN string matcher %v is not interpreted", sm)
		}
		out = append(out, x)
	}
	return out, nil
}

// DownstreamTLSOf reads fc's transport socket: nil for plaintext (none, or
// raw_buffer), the TLS server's parameters for a DownstreamTlsContext.
func DownstreamTLSOf(fc *listenerv3.FilterChain) (*ServerTLS, error) {
	ts := fc.GetTransportSocket()
	if ts == nil || ts.GetTypedConfig().GetTypeUrl() == typeRawBuffer {
		return nil, nil
	}
	if ts.GetTypedConfig().GetTypeUrl() != typeDownstream {
		return nil, fmt.Errorf("chain %q: transport socket of type %q; want a DownstreamTlsContext", fc.GetName(), ts.GetTypedConfig().GetTypeUrl())
	}
	var d tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&d); err != nil {
		return nil, fmt.Errorf("chain %q: decode the DownstreamTlsContext: %w", fc.GetName(), err)
	}
	ctc := d.GetCommonTlsContext()
	if len(ctc.GetTlsCertificates()) > 0 {
		return nil, fmt.Errorf("chain %q: inline certificates; a sidecar's come from SDS", fc.GetName())
	}
	out := &ServerTLS{
		RequireClientCert: d.GetRequireClientCertificate().GetValue(),
		ALPN:              slices.Clone(ctc.GetAlpnProtocols()),
		MinVersion:        tls.VersionTLS12,
		MaxVersion:        tls.VersionTLS13,
	}
	for _, s := range ctc.GetTlsCertificateSdsSecretConfigs() {
		out.CertSDS = append(out.CertSDS, s.GetName())
	}
	switch v := ctc.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		out.ValidationSDS = v.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		out.ValidationSDS = v.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetName()
		ms, err := sanMatchers(v.CombinedValidationContext.GetDefaultValidationContext().GetMatchTypedSubjectAltNames())
		if err != nil {
			return nil, fmt.Errorf("chain %q: %w", fc.GetName(), err)
		}
		out.ClientSANs = ms
	default:
		return nil, fmt.Errorf("chain %q: validation context %T is not interpreted", fc.GetName(), v)
	}
	var err error
	if out.MinVersion, err = tlsVersion(ctc.GetTlsParams().GetTlsMinimumProtocolVersion(), tls.VersionTLS12); err != nil {
		return nil, fmt.Errorf("chain %q: %w", fc.GetName(), err)
	}
	if out.MaxVersion, err = tlsVersion(ctc.GetTlsParams().GetTlsMaximumProtocolVersion(), tls.VersionTLS13); err != nil {
		return nil, fmt.Errorf("chain %q: %w", fc.GetName(), err)
	}
	return out, nil
}

// tlsVersion maps Envoy's version to crypto/tls's; AUTO is def (Envoy's
// server defaults are TLS 1.2 to 1.3).
func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, def uint16) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return def, nil
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10, nil
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13, nil
	default:
		return 0, fmt.Errorf("TLS version %v is not interpreted", v)
	}
}

// SelectALPN is the protocol an Envoy TLS server negotiates: the first of
// its own protocols that the client offers, or none (Envoy then goes on
// without ALPN, where Go's TLS server would fail the handshake).
func SelectALPN(server, client []string) string {
	for _, s := range server {
		if slices.Contains(client, s) {
			return s
		}
	}
	return ""
}

// socketAddress is a TCP socket address, for tests and callers that build
// listeners.
func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_TCP, Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// StripHostPort drops the port of a Host header value ("name:80" gives
// "name", "[::1]:80" gives "[::1]"), as Envoy's strip_any_host_port does.
func StripHostPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.HasSuffix(host, "]") {
		return host
	}
	if _, err := strconv.ParseUint(host[i+1:], 10, 16); err != nil {
		return host
	}
	return host[:i]
}
