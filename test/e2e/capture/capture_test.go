package capture

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// The listeners below are written by hand, in the shapes istiod gives a
// captured sidecar, independent of the code under test in internal/envoy.

func tcpProxy(t *testing.T, cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: testkit.MustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}),
	}}
}

func rdsHCM(t *testing.T, rds string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: testkit.MustAny(t, &hcmv3.HttpConnectionManager{StatPrefix: "x", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds}}}),
	}}
}

func port(p uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(p) }

// virtualOutbound is istiod's 0.0.0.0:15001 with its two chains.
func virtualOutbound(t *testing.T) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: "virtualOutbound", Address: socketAddress("0.0.0.0", 15001), UseOriginalDst: wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{
			{Name: "virtualOutbound-blackhole", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: port(15001)}, Filters: []*listenerv3.Filter{tcpProxy(t, "BlackHoleCluster")}},
			{Name: "virtualOutbound-catchall-tcp", Filters: []*listenerv3.Filter{tcpProxy(t, "PassthroughCluster")}},
		},
	}
}

// httpPort is 0.0.0.0_PORT of an HTTP service port.
func httpPort(t *testing.T, p uint32) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: "0.0.0.0_5000", Address: socketAddress("0.0.0.0", p), BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
			Filters:          []*listenerv3.Filter{rdsHCM(t, "5000")},
		}},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "PassthroughFilterChain", Filters: []*listenerv3.Filter{tcpProxy(t, "PassthroughCluster")}},
	}
}

// vipPort is VIP_PORT of a TCP service port.
func vipPort(t *testing.T, vip string, p uint32, cluster string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: vip + "_3306", Address: socketAddress(vip, p), BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{Name: "tcp", Filters: []*listenerv3.Filter{tcpProxy(t, cluster)}}},
	}
}

func TestOutboundListener(t *testing.T) {
	ls := []*listenerv3.Listener{virtualOutbound(t), httpPort(t, 5000), vipPort(t, "10.96.0.7", 3306, "outbound|3306||db.sample.svc.cluster.local")}
	for _, c := range []struct {
		dst  string
		want string
	}{
		{"10.96.0.20:5000", "0.0.0.0_5000"},      // any address on an HTTP port
		{"10.96.0.7:3306", "10.96.0.7_3306"},     // the VIP of a TCP port
		{"10.96.0.8:3306", "virtualOutbound"},    // another address on that port: nothing claims it
		{"93.184.216.34:443", "virtualOutbound"}, // outside the mesh
	} {
		l, err := OutboundListener(ls, VirtualOutboundPort, netip.MustParseAddrPort(c.dst))
		if err != nil {
			t.Fatalf("%s: %v", c.dst, err)
		}
		if l.GetName() != c.want {
			t.Errorf("a connection to %s is served by %s, want %s", c.dst, l.GetName(), c.want)
		}
	}
	// Without the virtual listener, or without use_original_dst, captured
	// connections go nowhere.
	if _, err := OutboundListener(ls[1:], VirtualOutboundPort, netip.MustParseAddrPort("10.96.0.20:5000")); err == nil {
		t.Error("no listener at 15001: want an error")
	}
	vo := virtualOutbound(t)
	vo.UseOriginalDst = nil
	if _, err := OutboundListener([]*listenerv3.Listener{vo, httpPort(t, 5000)}, VirtualOutboundPort, netip.MustParseAddrPort("10.96.0.20:5000")); err == nil {
		t.Error("15001 without use_original_dst: want an error")
	}
}

func TestMatchChainOutbound(t *testing.T) {
	dst := netip.MustParseAddrPort("10.96.0.20:5000")
	for _, c := range []struct {
		name string
		l    *listenerv3.Listener
		conn Conn
		want string
	}{
		{"plaintext HTTP/1.1 on an HTTP port", httpPort(t, 5000), Conn{Dst: dst, Transport: TransportRaw, ALPN: []string{"http/1.1"}}, ""},
		{"the application's own TLS on an HTTP port", httpPort(t, 5000), Conn{Dst: dst, Transport: TransportTLS, ALPN: []string{"h2"}}, "PassthroughFilterChain"},
		{"not HTTP on an HTTP port", httpPort(t, 5000), Conn{Dst: dst, Transport: TransportRaw}, "PassthroughFilterChain"},
		{"catch-all", virtualOutbound(t), Conn{Dst: dst, Transport: TransportRaw}, "virtualOutbound-catchall-tcp"},
		{"a connection to 15001 itself", virtualOutbound(t), Conn{Dst: netip.MustParseAddrPort("10.1.0.20:15001"), Transport: TransportRaw}, "virtualOutbound-blackhole"},
	} {
		fc, err := MatchChain(c.l, c.conn)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if fc.GetName() != c.want {
			t.Errorf("%s: chain %q, want %q", c.name, fc.GetName(), c.want)
		}
	}
}

var istioALPNs = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}

func downstreamTLS(t *testing.T) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
			}},
		},
	})}}
}

// virtualInbound is istiod's 15006 for a workload with HTTP port 5000 in
// mode strict or permissive (the passthrough chains follow the same mode).
func virtualInbound(t *testing.T, strict bool) *listenerv3.Listener {
	inline := func(cluster string) *listenerv3.Filter { return tcpProxy(t, cluster) }
	chains := []*listenerv3.FilterChain{
		{Name: "virtualInbound-blackhole", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: port(15006)}, Filters: []*listenerv3.Filter{inline("BlackHoleCluster")}},
		{Name: "virtualInbound", FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"}, TransportSocket: downstreamTLS(t), Filters: []*listenerv3.Filter{inline("InboundPassthroughCluster")}},
		{Name: "0.0.0.0_5000", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: port(5000), TransportProtocol: "tls", ApplicationProtocols: istioALPNs}, TransportSocket: downstreamTLS(t), Filters: []*listenerv3.Filter{inline("inbound|5000||")}},
	}
	if !strict {
		chains = append(chains,
			&listenerv3.FilterChain{Name: "virtualInbound-raw", FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: []*listenerv3.Filter{inline("InboundPassthroughCluster")}},
			&listenerv3.FilterChain{Name: "0.0.0.0_5000-raw", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: port(5000), TransportProtocol: "raw_buffer"}, Filters: []*listenerv3.Filter{inline("inbound|5000||")}},
		)
	}
	return &listenerv3.Listener{Name: "virtualInbound", Address: socketAddress("0.0.0.0", 15006), FilterChains: chains}
}

func TestMatchChainInbound(t *testing.T) {
	dst := netip.MustParseAddrPort("10.1.0.10:5000")
	other := netip.MustParseAddrPort("10.1.0.10:9090")
	mtls := Conn{Dst: dst, Transport: TransportTLS, ALPN: []string{"istio-peer-exchange", "istio"}, SNI: "outbound_.5000_._.helloworld.sample.svc.cluster.local"}
	plain := Conn{Dst: dst, Transport: TransportRaw, ALPN: []string{"http/1.1"}}
	for _, c := range []struct {
		name    string
		strict  bool
		conn    Conn
		want    string
		refused bool
	}{
		{"mTLS, permissive", false, mtls, "0.0.0.0_5000", false},
		{"mTLS, strict", true, mtls, "0.0.0.0_5000", false},
		{"plaintext, permissive", false, plain, "0.0.0.0_5000-raw", false},
		// The port's chains claim the connection: Envoy does not fall
		// back to the passthrough chains, so there is nothing left.
		{"plaintext, strict", true, plain, "", true},
		{"TLS without Istio's ALPN on the port, strict", true, Conn{Dst: dst, Transport: TransportTLS, ALPN: []string{"h2"}}, "", true},
		{"plaintext to an undeclared port, permissive", false, Conn{Dst: other, Transport: TransportRaw}, "virtualInbound-raw", false},
		{"plaintext to an undeclared port, strict", true, Conn{Dst: other, Transport: TransportRaw}, "", true},
		{"to 15006 itself", true, Conn{Dst: netip.MustParseAddrPort("10.1.0.10:15006"), Transport: TransportRaw}, "virtualInbound-blackhole", false},
	} {
		fc, err := MatchChain(virtualInbound(t, c.strict), c.conn)
		switch {
		case c.refused && !errors.Is(err, ErrNoChain):
			t.Errorf("%s: chain %q, error %v; want ErrNoChain", c.name, fc.GetName(), err)
		case !c.refused && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.refused && fc.GetName() != c.want:
			t.Errorf("%s: chain %q, want %q", c.name, fc.GetName(), c.want)
		}
	}
}

func TestMatchChainSpecificity(t *testing.T) {
	l := &listenerv3.Listener{Name: "l", Address: socketAddress("0.0.0.0", 80), FilterChains: []*listenerv3.FilterChain{
		{Name: "any"},
		{Name: "wide", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: port(8)}}}},
		{Name: "narrow", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.1.0.0", PrefixLen: port(16)}}}},
		{Name: "sni", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.2.0.0", PrefixLen: port(16)}}, ServerNames: []string{"*.example.com"}}},
		{Name: "sni-exact", FilterChainMatch: &listenerv3.FilterChainMatch{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.2.0.0", PrefixLen: port(16)}}, ServerNames: []string{"a.example.com"}}},
	}}
	for _, c := range []struct {
		dst, sni, want string
	}{
		{"10.1.2.3:80", "", "narrow"},
		{"10.9.2.3:80", "", "wide"},
		{"192.168.0.1:80", "", "any"},
		{"10.2.0.1:80", "b.example.com", "sni"},
		{"10.2.0.1:80", "a.example.com", "sni-exact"},
		{"10.2.0.1:80", "", ""}, // the /16 claims it, its SNI chains do not match
	} {
		fc, err := MatchChain(l, Conn{Dst: netip.MustParseAddrPort(c.dst), Transport: TransportTLS, SNI: c.sni})
		if c.want == "" {
			if !errors.Is(err, ErrNoChain) {
				t.Errorf("%s %q: chain %q, %v; want ErrNoChain", c.dst, c.sni, fc.GetName(), err)
			}
			continue
		}
		if err != nil || fc.GetName() != c.want {
			t.Errorf("%s %q: chain %q, %v; want %q", c.dst, c.sni, fc.GetName(), err, c.want)
		}
	}
	// Two chains with the same match: Envoy rejects the listener.
	dup := &listenerv3.Listener{Name: "dup", FilterChains: []*listenerv3.FilterChain{{Name: "a"}, {Name: "b"}}}
	if _, err := MatchChain(dup, Conn{Dst: netip.MustParseAddrPort("10.0.0.1:80")}); err == nil {
		t.Error("two chains with the same match: want an error")
	}
}

func TestRouteCluster(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "5000", VirtualHosts: []*routev3.VirtualHost{
		{Name: "helloworld.sample.svc.cluster.local:5000", Domains: []string{"helloworld.sample.svc.cluster.local", "helloworld.sample.svc.cluster.local:5000", "helloworld.sample", "helloworld.sample:5000", "10.96.0.20", "10.96.0.20:5000"},
			Routes: []*routev3.Route{
				{Name: "api", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/api"}}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "api"}}}},
				{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|5000||helloworld.sample.svc.cluster.local"}}}},
			}},
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{{Name: "w", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "example"}}}}}},
	}}
	for _, c := range []struct {
		host, path, want string
	}{
		{"helloworld.sample:5000", "/hello", "outbound|5000||helloworld.sample.svc.cluster.local"},
		{"HelloWorld.Sample:5000", "/api", "api"},
		{"www.example.com", "/", "example"},
	} {
		r, err := RouteCluster(rc, c.host, c.path)
		if err != nil || r.Cluster != c.want {
			t.Errorf("%s%s: %+v, %v; want cluster %s", c.host, c.path, r, err, c.want)
		}
	}
	if _, err := RouteCluster(rc, "helloworld.other:5000", "/"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("unknown host: %v, want ErrNoRoute", err)
	}
}

func TestDownstreamTLSOf(t *testing.T) {
	got, err := DownstreamTLSOf(virtualInbound(t, true).GetFilterChains()[2])
	if err != nil {
		t.Fatal(err)
	}
	want := &ServerTLS{CertSDS: []string{"default"}, ValidationSDS: "ROOTCA", RequireClientCert: true, ALPN: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DownstreamTLSOf (-want +got):\n%s", diff)
	}
	plain, err := DownstreamTLSOf(virtualInbound(t, false).GetFilterChains()[4])
	if err != nil || plain != nil {
		t.Errorf("plaintext chain: %+v, %v; want nil", plain, err)
	}
	if got := SelectALPN([]string{"h2", "http/1.1"}, []string{"istio-peer-exchange", "istio"}); got != "" {
		t.Errorf("no common protocol: %q, want none (Envoy goes on without ALPN)", got)
	}
	if got := SelectALPN([]string{"h2", "http/1.1"}, []string{"http/1.1", "h2"}); got != "h2" {
		t.Errorf("server preference: %q, want h2", got)
	}
}

// helloworldCluster is outbound|5000||helloworld with Istio's transport
// socket matches.
func helloworldCluster(t *testing.T) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name: "outbound|5000||helloworld.sample.svc.cluster.local", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{},
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
				TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &tlsv3.UpstreamTlsContext{
					Sni: "outbound_.5000_._.helloworld.sample.svc.cluster.local",
					CommonTlsContext: &tlsv3.CommonTlsContext{
						AlpnProtocols: []string{"istio-peer-exchange", "istio"},
						ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
							DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
								SanType: tlsv3.SubjectAltNameMatcher_URI,
								Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/sample/sa/helloworld"}},
							}}},
						}},
					},
				})}}},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &rawbufferv3.RawBuffer{})}}},
		},
	}
}

func lbEndpoint(ip string, p uint32, tlsMode string) *endpointv3.LbEndpoint {
	lb := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(ip, p)}}}
	if tlsMode != "" {
		lb.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue(tlsMode)}},
		}}
	}
	return lb
}

func TestResolveHTTP(t *testing.T) {
	cl := helloworldCluster(t)
	cfg := Config{
		Listeners: []*listenerv3.Listener{virtualOutbound(t), httpPort(t, 5000)},
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{cl.GetName(): cl},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	dst := netip.MustParseAddrPort("10.96.0.20:5000")
	p, err := cfg.ResolveHTTP(dst, "helloworld.sample:5000", "/hello")
	if !errors.Is(err, ErrMissing) || p.RouteConfig != "5000" {
		t.Fatalf("without RDS: %+v, %v; want ErrMissing for route configuration 5000", p, err)
	}
	cfg.Routes["5000"] = &routev3.RouteConfiguration{Name: "5000", VirtualHosts: []*routev3.VirtualHost{{Name: "helloworld", Domains: []string{"helloworld.sample:5000"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cl.GetName()}}}}}}}}
	if _, err := cfg.ResolveHTTP(dst, "helloworld.sample:5000", "/hello"); !errors.Is(err, ErrMissing) {
		t.Fatalf("without EDS: %v; want ErrMissing", err)
	}
	cfg.Endpoints[cl.GetName()] = &endpointv3.ClusterLoadAssignment{ClusterName: cl.GetName(), Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
		lbEndpoint("10.1.0.10", 5000, "istio"), lbEndpoint("10.1.0.11", 5000, ""),
	}}}}
	p, err = cfg.ResolveHTTP(dst, "helloworld.sample:5000", "/hello")
	if err != nil {
		t.Fatal(err)
	}
	want := &Path{Listener: "0.0.0.0_5000", BindsPort: false, RouteConfig: "5000", VirtualHost: "helloworld", Cluster: cl.GetName(), EDS: cl.GetName(), Endpoints: []Endpoint{
		{Address: "10.1.0.10:5000", Weight: 1, TLS: &UpstreamTLS{SNI: "outbound_.5000_._.helloworld.sample.svc.cluster.local", ALPN: []string{"istio-peer-exchange", "istio"}, SANs: []string{"spiffe://cluster.local/ns/sample/sa/helloworld"}}},
		{Address: "10.1.0.11:5000", Weight: 1},
	}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("ResolveHTTP (-want +got):\n%s", diff)
	}
	// A destination no service claims goes to PassthroughCluster, which
	// is not a service's cluster.
	cfg.Clusters["PassthroughCluster"] = &clusterv3.Cluster{Name: "PassthroughCluster", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}}
	p, err = cfg.ResolveHTTP(netip.MustParseAddrPort("10.96.0.20:8080"), "helloworld.sample:8080", "/hello")
	if err == nil || p.Cluster != "PassthroughCluster" || p.Listener != "virtualOutbound" || !p.BindsPort {
		t.Errorf("unclaimed destination: %+v, %v; want virtualOutbound (which binds 15001), PassthroughCluster and an error", p, err)
	}
}

func TestStripHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"helloworld.sample:5000": "helloworld.sample",
		"helloworld.sample":      "helloworld.sample",
		"10.96.0.1:80":           "10.96.0.1",
		"[fd00::1]:80":           "[fd00::1]",
		"[fd00::1]":              "[fd00::1]",
		"name:notaport":          "name:notaport",
	} {
		if got := StripHostPort(in); got != want {
			t.Errorf("StripHostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchAnySAN(t *testing.T) {
	ms := []SANMatcher{{Prefix: "spiffe://cluster.local/"}}
	for _, tc := range []struct {
		ms   []SANMatcher
		uris []string
		want bool
	}{
		{ms, []string{"spiffe://cluster.local/ns/sample/sa/sleep"}, true},
		{ms, []string{"spiffe://other.domain/ns/sample/sa/sleep"}, false},
		{ms, nil, false},
		{nil, nil, true},
		{[]SANMatcher{{Exact: "spiffe://cluster.local/ns/a/sa/b"}}, []string{"x", "spiffe://cluster.local/ns/a/sa/b"}, true},
		{[]SANMatcher{{Suffix: "/sa/b"}}, []string{"spiffe://cluster.local/ns/a/sa/c"}, false},
	} {
		if got := MatchAnySAN(tc.ms, tc.uris); got != tc.want {
			t.Errorf("MatchAnySAN(%v, %v) = %t, want %t", tc.ms, tc.uris, got, tc.want)
		}
	}
}
