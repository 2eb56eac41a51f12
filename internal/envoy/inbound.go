package envoy

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// ALPNs of Istio's inbound filter chain matches and TLS contexts.
var (
	// mtlsHTTPALPNs are what a client sidecar offers for HTTP it sends
	// over mesh mTLS.
	mtlsHTTPALPNs = []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// allIstioMTLSALPNs are every ALPN a client sidecar offers.
	allIstioMTLSALPNs = []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
	// mtlsTCPALPNs are what a client sidecar offers for TCP.
	mtlsTCPALPNs = []string{"istio-peer-exchange", "istio"}
	// inboundHTTPTLSALPNs and inboundTCPTLSALPNs are what the server side
	// negotiates.
	inboundHTTPTLSALPNs = []string{"h2", "http/1.1"}
	inboundTCPTLSALPNs  = []string{"istio-peer-exchange", "h2", "http/1.1"}
	// inboundCipherSuites are Istio's server-side ciphers for sidecars.
	inboundCipherSuites = []string{
		"ECDHE-ECDSA-AES256-GCM-SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-AES128-GCM-SHA256",
		"ECDHE-RSA-AES128-GCM-SHA256",
		"AES256-GCM-SHA384",
		"AES128-GCM-SHA256",
	}
)

// InboundPort is a port the workload of a captured sidecar serves, with
// its protocol and the mTLS mode the sidecar enforces on it.
type InboundPort struct {
	Port     uint32
	Protocol model.Protocol
	Mode     model.MTLSMode
}

// Inbound is what a captured sidecar's virtual inbound listener and inbound
// clusters are built from.
type Inbound struct {
	// Ports sorted by port, one entry per port.
	Ports []InboundPort
	// Passthrough is the mode for the ports not listed (the workload's
	// mode without port-level overrides).
	Passthrough model.MTLSMode
}

// InboundKey is an Inbound as a comparable value, for cache keys: equal
// keys build equal resources.
type InboundKey string

// Key encodes in.
func (in Inbound) Key() InboundKey {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(in.Passthrough)))
	for _, p := range in.Ports {
		b.WriteByte(';')
		b.WriteString(strconv.FormatUint(uint64(p.Port), 10))
		b.WriteByte('/')
		b.WriteString(string(p.Protocol))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.Mode)))
	}
	return InboundKey(b.String())
}

// Inbound decodes a key made by Key; a malformed part is skipped.
func (k InboundKey) Inbound() Inbound {
	parts := strings.Split(string(k), ";")
	var in Inbound
	if m, err := strconv.Atoi(parts[0]); err == nil {
		in.Passthrough = model.MTLSMode(m)
	}
	for _, part := range parts[1:] {
		f := strings.Split(part, "/")
		if len(f) != 3 {
			continue
		}
		port, err1 := strconv.ParseUint(f[0], 10, 32)
		mode, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		in.Ports = append(in.Ports, InboundPort{Port: uint32(port), Protocol: model.Protocol(f[1]), Mode: model.MTLSMode(mode)})
	}
	return in
}

// WorkloadInbound is the inbound of a captured sidecar from its node: one
// port per TCP container port of POD_PORTS (not the proxy's own ports),
// with its protocol read from the container port's name as a service
// port's would be, and mode(port) as its mTLS mode (mode(0) for
// Passthrough). mode is typically model.EffectiveMTLS over the proxy's
// cluster's PeerAuthentications.
func WorkloadInbound(p *Proxy, mode func(port uint32) model.MTLSMode) Inbound {
	in := Inbound{Passthrough: mode(0)}
	for _, pp := range p.PodPorts {
		sp := model.ServicePort{Name: pp.Name, Port: pp.Port, Protocol: pp.Protocol}
		if !sp.IsTCP() || isProxyPort(pp.Port) {
			continue
		}
		in.Ports = append(in.Ports, InboundPort{Port: pp.Port, Protocol: model.PortProtocol(sp), Mode: mode(pp.Port)})
	}
	slices.SortFunc(in.Ports, func(a, b InboundPort) int { return cmp.Compare(a.Port, b.Port) })
	in.Ports = slices.CompactFunc(in.Ports, func(a, b InboundPort) bool { return a.Port == b.Port })
	return in
}

// InboundClusterName is the cluster inbound|PORT|| that delivers a port's
// connections to the workload.
func InboundClusterName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// chainOpt is one filter chain of a port: what it matches and whether it
// is HTTP (an HTTP connection manager) or TCP, and whether it terminates
// mesh mTLS.
type chainOpt struct {
	http      bool
	transport string
	alpn      []string
	mtls      bool
}

// inboundChainOpts are istiod's filter chain matches for a port by its
// mode and protocol: STRICT accepts only TLS (terminated), DISABLE only
// plaintext, PERMISSIVE both, with the ALPNs a client sidecar sends
// telling mesh mTLS from a client's own TLS, which passes through.
func inboundChainOpts(mode model.MTLSMode, proto model.Protocol) []chainOpt {
	tls := transportProtocolTLS
	switch {
	case proto.IsHTTP():
		switch mode {
		case model.MTLSStrict:
			return []chainOpt{{http: true, transport: tls, mtls: true}}
		case model.MTLSDisable:
			return []chainOpt{{http: true, transport: transportProtocolRaw}}
		default:
			return []chainOpt{
				{http: true, transport: tls, alpn: allIstioMTLSALPNs, mtls: true},
				{http: true, transport: transportProtocolRaw},
			}
		}
	case proto.IsUnsupported():
		switch mode {
		case model.MTLSStrict:
			return []chainOpt{
				{http: true, transport: tls, alpn: mtlsHTTPALPNs, mtls: true},
				{transport: tls, mtls: true},
			}
		case model.MTLSDisable:
			return []chainOpt{
				{http: true, transport: transportProtocolRaw, alpn: plaintextHTTPALPNs},
				{transport: transportProtocolRaw},
			}
		default:
			return []chainOpt{
				{http: true, transport: tls, alpn: mtlsHTTPALPNs, mtls: true},
				{http: true, transport: transportProtocolRaw, alpn: plaintextHTTPALPNs},
				{transport: tls, alpn: mtlsTCPALPNs, mtls: true},
				{transport: transportProtocolRaw},
				{transport: tls},
			}
		}
	default:
		switch mode {
		case model.MTLSStrict:
			return []chainOpt{{transport: tls, mtls: true}}
		case model.MTLSDisable:
			return []chainOpt{{transport: transportProtocolRaw}}
		default:
			return []chainOpt{
				{transport: tls, alpn: allIstioMTLSALPNs, mtls: true},
				{transport: transportProtocolRaw},
				{transport: tls},
			}
		}
	}
}

// VirtualInboundListener is the listener iptables sends every inbound
// connection to (0.0.0.0:15006, named virtualInbound as istiod names it),
// with istiod's filter chains:
//
//   - virtualInbound-blackhole: connections to 15006 itself are dropped.
//   - The passthrough chains (virtualInbound, virtualInbound-catchall-http)
//     for ports in.Ports does not list: sniffed, in in.Passthrough's mode,
//     to InboundPassthroughCluster.
//   - Per port of in.Ports, chains named 0.0.0.0_PORT matching the
//     destination port, by its mode and protocol (inboundChainOpts): HTTP
//     ports an HTTP connection manager with an inline route to
//     inbound|PORT||, TCP ports tcp_proxy to it, unknown ones both,
//     sniffed.
//
// A chain that terminates mesh mTLS requires a client certificate: SDS
// secret "default", validated against "ROOTCA", whose SPIFFE id is of
// trustDomain (empty: cluster.local; see inboundTLS). The
// listener filters are original_dst (original_src too under TPROXY), the
// TLS inspector, and the HTTP inspector on the ports where a chain needs
// it.
func VirtualInboundListener(in Inbound, mode InterceptionMode, trustDomain string) *listenerv3.Listener {
	chains := []*listenerv3.FilterChain{{
		Name:             virtualInboundBlackholeChain,
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(VirtualInboundPort)},
		Filters:          []*listenerv3.Filter{tcpProxyFilter(BlackHoleCluster)},
	}}
	for _, o := range inboundChainOpts(in.Passthrough, model.ProtocolUnsupported) {
		chains = append(chains, inboundChain(o, 0, model.ProtocolUnsupported, trustDomain))
	}
	for _, p := range in.Ports {
		for _, o := range inboundChainOpts(p.Mode, p.Protocol) {
			chains = append(chains, inboundChain(o, p.Port, p.Protocol, trustDomain))
		}
	}
	l := &listenerv3.Listener{
		Name:                             VirtualInboundListenerName,
		Address:                          socketAddress(wildcardIPv4, VirtualInboundPort),
		FilterChains:                     chains,
		TrafficDirection:                 corev3.TrafficDirection_INBOUND,
		ContinueOnListenerFiltersTimeout: true,
		ListenerFiltersTimeout:           durationpb.New(0),
	}
	l.ListenerFilters = append(l.ListenerFilters, originalDst())
	if mode == InterceptionTProxy {
		l.Transparent = wrapperspb.Bool(true)
		l.ListenerFilters = append(l.ListenerFilters, originalSrc())
	}
	l.ListenerFilters = append(l.ListenerFilters, inspectorsFor(chains)...)
	return l
}

// inboundChain is one filter chain of port (0: the passthrough chains).
func inboundChain(o chainOpt, port uint32, proto model.Protocol, trustDomain string) *listenerv3.FilterChain {
	cluster, name := InboundClusterName(port), OutboundListenerName(port)
	if port == 0 {
		cluster, name = InboundPassthroughCluster, VirtualInboundListenerName
		if o.http {
			name = virtualInboundCatchAllHTTP
		}
	}
	fc := &listenerv3.FilterChain{
		Name: name,
		FilterChainMatch: &listenerv3.FilterChainMatch{
			TransportProtocol:    o.transport,
			ApplicationProtocols: o.alpn,
		},
	}
	if port != 0 {
		fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
	}
	if o.http {
		fc.Filters = []*listenerv3.Filter{inboundHCM(port, cluster, proto)}
	} else {
		fc.Filters = []*listenerv3.Filter{tcpProxyFilter(cluster)}
	}
	if o.mtls {
		fc.TransportSocket = &corev3.TransportSocket{
			Name:       wellknown.TransportSocketTLS,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(inboundTLS(o.http, trustDomain))},
		}
	}
	return fc
}

// inboundHCM terminates HTTP for port and sends every request to cluster,
// with the client certificate's identity forwarded as Istio does.
func inboundHCM(port uint32, cluster string, proto model.Protocol) *listenerv3.Filter {
	vhostName := "inbound|http|" + strconv.FormatUint(uint64(port), 10)
	routeName := cluster
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_" + OutboundListenerName(port),
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:             routeName,
			ValidateClusters: wrapperspb.Bool(false),
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    vhostName,
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "default",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						Timeout:          durationpb.New(0),
						MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
							MaxStreamDuration:    durationpb.New(0),
							GrpcTimeoutHeaderMax: durationpb.New(0),
						},
					}},
					Decorator: &routev3.Decorator{Operation: ":" + strconv.FormatUint(uint64(port), 10) + "/*"},
				}},
			}},
		}},
		HttpFilters:              []*hcmv3.HttpFilter{routerFilter()},
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_APPEND_FORWARD,
		SetCurrentClientCertDetails: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Uri: true, Dns: true,
		},
	}
	if proto.IsHTTP2() {
		hcm.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	}
	return &listenerv3.Filter{
		Name:       wellknown.HTTPConnectionManager,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm)},
	}
}

// inboundTLS is the server side of mesh mTLS: the workload certificate,
// a client certificate required and validated against the mesh root,
// Istio's TLS versions and ciphers, and the ALPNs the application
// protocol negotiates (plus istio-peer-exchange for TCP). The client
// certificate must carry a URI SAN of the mesh's trust domain,
// spiffe://TRUSTDOMAIN/..., as istiod requires: a certificate the root
// signed for another trust domain is refused.
func inboundTLS(http bool, trustDomain string) *tlsv3.DownstreamTlsContext {
	alpn := inboundTCPTLSALPNs
	if http {
		alpn = inboundHTTPTLSALPNs
	}
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: alpn,
			TlsParams: &tlsv3.TlsParameters{
				CipherSuites:              inboundCipherSuites,
				TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
				Name:      SecretWorkloadCert,
				SdsConfig: sdsConfigSource(),
			}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_URI,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{
								Prefix: trustDomainSPIFFEPrefix(trustDomain),
							}},
						}},
					},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{
						Name:      SecretRootCA,
						SdsConfig: sdsConfigSource(),
					},
				},
			},
		},
	}
}

// trustDomainSPIFFEPrefix is what every SPIFFE id of trustDomain starts
// with (empty: cluster.local).
func trustDomainSPIFFEPrefix(trustDomain string) string {
	if trustDomain == "" {
		trustDomain = model.DefaultDomain
	}
	return "spiffe://" + trustDomain + "/"
}

// inspectorsFor are the TLS and HTTP inspectors the chains need, as istiod
// decides them: per destination port (0 for chains without one), the TLS
// inspector where a chain matches transport tls and the HTTP inspector
// where a chain matches a plaintext HTTP ALPN; each is disabled by
// destination port ranges where it is not needed.
func inspectorsFor(chains []*listenerv3.FilterChain) []*listenerv3.ListenerFilter {
	type need struct{ tls, http bool }
	byPort := map[uint32]need{}
	for _, fc := range chains {
		m := fc.GetFilterChainMatch()
		port := m.GetDestinationPort().GetValue()
		n := byPort[port]
		n.tls = n.tls || m.GetTransportProtocol() == transportProtocolTLS
		for _, a := range m.GetApplicationProtocols() {
			if a == "http/1.1" || a == "h2c" {
				n.http = true
			}
		}
		byPort[port] = n
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	var out []*listenerv3.ListenerFilter
	var tlsOn, tlsOff, httpOff []uint32
	anyTLS, anyHTTP := false, false
	for _, p := range ports {
		n := byPort[p]
		anyTLS = anyTLS || n.tls
		anyHTTP = anyHTTP || n.http
		if p != 0 {
			if n.tls {
				tlsOn = append(tlsOn, p)
			} else {
				tlsOff = append(tlsOff, p)
			}
		}
		if !n.http {
			httpOff = append(httpOff, p)
		}
	}
	if anyTLS {
		f := tlsInspector()
		if byPort[0].tls {
			// On by default: off where no chain needs it.
			if len(tlsOff) > 0 {
				f.FilterDisabled = portsPredicate(tlsOff)
			}
		} else if len(tlsOn) > 0 {
			// Off by default: on only where a chain needs it.
			f.FilterDisabled = &listenerv3.ListenerFilterChainMatchPredicate{
				Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: portsPredicate(tlsOn)},
			}
		}
		out = append(out, f)
	}
	if anyHTTP {
		f := httpInspector()
		if len(httpOff) > 0 {
			f.FilterDisabled = portsPredicate(httpOff)
		}
		out = append(out, f)
	}
	return out
}

// portsPredicate matches connections to any of ports.
func portsPredicate(ports []uint32) *listenerv3.ListenerFilterChainMatchPredicate {
	rules := make([]*listenerv3.ListenerFilterChainMatchPredicate, len(ports))
	for i, p := range ports {
		rules[i] = &listenerv3.ListenerFilterChainMatchPredicate{
			Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
				DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1},
			},
		}
	}
	if len(rules) == 1 {
		return rules[0]
	}
	return &listenerv3.ListenerFilterChainMatchPredicate{
		Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
			OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules},
		},
	}
}
