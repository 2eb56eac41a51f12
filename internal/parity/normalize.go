package parity

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Facts are a normalized xDS answer: a path (KIND/NAME/...) per thing
// Envoy acts on, and its value. Two answers are equal on those things
// exactly when their Facts are.
type Facts map[string]string

// Kinds of facts, the first segment of every path.
const (
	KindListener   = "listener"
	KindCluster    = "cluster"
	KindEndpoints  = "endpoints"
	KindRoute      = "route"
	KindUnanswered = "unanswered"
)

// present is the value of a fact that only says a thing is there.
const present = "present"

// Normalize flattens a snapshot into facts: listeners, their filter chains
// keyed by what selects them, clusters, endpoints (EDS and the inline
// assignments of other clusters), route configurations (RDS and inline),
// and the requests the server left unanswered.
func Normalize(s *Snapshot) Facts {
	f := Facts{}
	for name, l := range s.Listeners {
		f.listener(name, l)
	}
	for name, c := range s.Clusters {
		f.cluster(name, c)
	}
	for name, cla := range s.Endpoints {
		f.endpoints(name, cla)
	}
	for name, rc := range s.Routes {
		f.route(name, rc)
	}
	for _, u := range s.Unanswered {
		f[KindUnanswered+"/"+u] = "no answer"
	}
	return f
}

// empty is the value of a fact whose value is empty (no SAN matcher, no
// ALPN): a fact is never "", so that "" can mean "absent" in a Difference.
const empty = "(empty)"

func (f Facts) set(value string, parts ...string) {
	if value == "" {
		value = empty
	}
	f[strings.Join(parts, "/")] = value
}

func (f Facts) listener(name string, l *listenerv3.Listener) {
	p := KindListener + "/" + name
	f.set(socketAddress(l.GetAddress()), p, "address")
	for i, a := range l.GetAdditionalAddresses() {
		f.set(socketAddress(a.GetAddress()), p, "additional_address", strconv.Itoa(i))
	}
	f.set(strconv.FormatBool(l.GetBindToPort() == nil || l.GetBindToPort().GetValue()), p, "bind_to_port")
	f.set(strconv.FormatBool(l.GetUseOriginalDst().GetValue()), p, "use_original_dst")
	for _, lf := range l.GetListenerFilters() {
		f.set(present, p, "listener_filter", extensionName(lf.GetName(), lf.GetTypedConfig()))
	}
	byMatcher := chainMatcherKeys(l.GetFilterChainMatcher())
	seen := map[string]int{}
	for _, fc := range l.GetFilterChains() {
		key := chainKey(fc.GetFilterChainMatch())
		if keys, ok := byMatcher[fc.GetName()]; ok {
			key = joinNonEmpty(" & ", key, strings.Join(keys, " | "))
		}
		if n := seen[key]; n > 0 {
			// Envoy rejects two chains with one match; a matcher tree
			// may still reach two from one branch, so keep both.
			seen[key]++
			key += "#" + strconv.Itoa(n+1)
		} else {
			seen[key] = 1
		}
		f.chain(p+"/chain{"+key+"}", fc)
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		key := "default"
		if keys, ok := byMatcher[d.GetName()]; ok {
			key += " & " + strings.Join(keys, " | ")
		}
		f.chain(p+"/chain{"+key+"}", d)
	}
}

// chainKey is the filter chain match as conditions, in a fixed order:
// what picks the chain, independent of its name and position.
func chainKey(m *listenerv3.FilterChainMatch) string {
	var conds []string
	add := func(k string, vs ...string) {
		vs = slices.DeleteFunc(vs, func(v string) bool { return v == "" })
		if len(vs) == 0 {
			return
		}
		slices.Sort(vs)
		conds = append(conds, k+"="+strings.Join(vs, "+"))
	}
	if m.GetDestinationPort() != nil {
		add("dport", portString(m.GetDestinationPort().GetValue()))
	}
	add("dip", cidrs(m.GetPrefixRanges())...)
	add("dsip", cidrs(m.GetDirectSourcePrefixRanges())...)
	if st := m.GetSourceType(); st != listenerv3.FilterChainMatch_ANY {
		add("source_type", st.String())
	}
	add("sip", cidrs(m.GetSourcePrefixRanges())...)
	var sports []string
	for _, sp := range m.GetSourcePorts() {
		sports = append(sports, portString(sp))
	}
	add("sport", sports...)
	add("sni", m.GetServerNames()...)
	add("transport", m.GetTransportProtocol())
	add("alpn", m.GetApplicationProtocols()...)
	if len(conds) == 0 {
		return "*"
	}
	return strings.Join(conds, ",")
}

func cidrs(rs []*corev3.CidrRange) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		plen := uint32(32)
		if strings.Contains(r.GetAddressPrefix(), ":") {
			plen = 128
		}
		if r.GetPrefixLen() != nil {
			plen = r.GetPrefixLen().GetValue()
		}
		out = append(out, r.GetAddressPrefix()+"/"+portString(plen))
	}
	return out
}

func (f Facts) chain(p string, fc *listenerv3.FilterChain) {
	filters := fc.GetFilters()
	if len(filters) == 0 {
		f.set("none", p, "terminal")
	}
	for i, filter := range filters {
		name := extensionName(filter.GetName(), filter.GetTypedConfig())
		if i < len(filters)-1 {
			f.set(present, p, "filter", name)
			continue
		}
		f.set(terminal(name, filter.GetTypedConfig()), p, "terminal")
		hcm := &hcmv3.HttpConnectionManager{}
		if filter.GetTypedConfig().UnmarshalTo(hcm) == nil {
			for _, hf := range hcm.GetHttpFilters() {
				f.set(present, p, "http_filter", extensionName(hf.GetName(), hf.GetTypedConfig()))
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				f.route("inline:"+rc.GetName(), rc)
			}
		}
	}
	f.downstreamTLS(p, fc.GetTransportSocket())
}

// terminal describes the last network filter of a chain and where it
// sends traffic.
func terminal(name string, cfg *anypb.Any) string {
	tcp := &tcpproxyv3.TcpProxy{}
	if cfg.UnmarshalTo(tcp) == nil {
		if c := tcp.GetCluster(); c != "" {
			return "tcp_proxy cluster=" + c
		}
		var ws []string
		for _, w := range tcp.GetWeightedClusters().GetClusters() {
			ws = append(ws, w.GetName()+":"+portString(w.GetWeight()))
		}
		slices.Sort(ws)
		return "tcp_proxy weighted=" + strings.Join(ws, ",")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if cfg.UnmarshalTo(hcm) == nil {
		if n := hcm.GetRds().GetRouteConfigName(); n != "" {
			return "http_connection_manager rds=" + n
		}
		return "http_connection_manager route_config=inline:" + hcm.GetRouteConfig().GetName()
	}
	return name
}

// extensionName names an extension by its config's type (what Envoy
// selects the extension by), else by its name.
func extensionName(name string, cfg *anypb.Any) string {
	if cfg != nil && cfg.GetTypeUrl() != "" {
		t := cfg.GetTypeUrl()
		if i := strings.LastIndex(t, "/"); i >= 0 {
			t = t[i+1:]
		}
		if t == "udpa.type.v1.TypedStruct" || t == "xds.type.v3.TypedStruct" {
			return name
		}
		return t
	}
	return name
}

func (f Facts) downstreamTLS(p string, ts *corev3.TransportSocket) {
	if ts == nil {
		f.set("raw_buffer", p, "transport")
		return
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		f.set(extensionName(ts.GetName(), ts.GetTypedConfig()), p, "transport")
		return
	}
	f.set("tls", p, "transport")
	f.set(strconv.FormatBool(ctx.GetRequireClientCertificate().GetValue()), p, "tls", "require_client_cert")
	f.commonTLS(p+"/tls", ctx.GetCommonTlsContext())
}

func (f Facts) commonTLS(p string, c *tlsv3.CommonTlsContext) {
	var certs []string
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		certs = append(certs, s.GetName())
	}
	if len(c.GetTlsCertificates()) > 0 {
		certs = append(certs, fmt.Sprintf("inline(%d)", len(c.GetTlsCertificates())))
	}
	f.set(strings.Join(certs, ","), p, "certificate_sds")
	f.set(strings.Join(c.GetAlpnProtocols(), ","), p, "alpn")
	var validation string
	var sans []string
	switch v := c.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		validation = v.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		validation = v.CombinedValidationContext.GetValidationContextSdsSecretConfig().GetName()
		sans = sanMatchers(v.CombinedValidationContext.GetDefaultValidationContext())
	case *tlsv3.CommonTlsContext_ValidationContext:
		validation = "inline"
		sans = sanMatchers(v.ValidationContext)
	}
	f.set(validation, p, "validation_sds")
	slices.Sort(sans)
	f.set(strings.Join(sans, ","), p, "san")
}

// sanMatchers lists a validation context's SAN matchers as TYPE:MATCH.
// An untyped matcher (match_subject_alt_names, which Envoy tries against
// every SAN) of a spiffe:// identity reads as URI: only a URI SAN can hold
// "spiffe://" (a DNS name, IP or e-mail address cannot), so Envoy accepts
// exactly the same certificates either way.
func sanMatchers(v *tlsv3.CertificateValidationContext) []string {
	var out []string
	for _, m := range v.GetMatchTypedSubjectAltNames() {
		out = append(out, m.GetSanType().String()+":"+stringMatcher(m.GetMatcher()))
	}
	for _, m := range v.GetMatchSubjectAltNames() { //nolint:staticcheck // istiod still sends the deprecated untyped matchers; comparing them is the point.
		typ := "ANY"
		if spiffeMatcher(m) {
			typ = tlsv3.SubjectAltNameMatcher_URI.String()
		}
		out = append(out, typ+":"+stringMatcher(m))
	}
	return out
}

// spiffeMatcher reports whether m matches only strings that start with
// spiffe:// (an exact or prefix match on such a string).
func spiffeMatcher(m *matcherv3.StringMatcher) bool {
	const scheme = "spiffe://"
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return strings.HasPrefix(p.Exact, scheme)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(p.Prefix, scheme)
	}
	return false
}

func stringMatcher(m *matcherv3.StringMatcher) string {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return "exact=" + p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return "prefix=" + p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		return "suffix=" + p.Suffix
	case *matcherv3.StringMatcher_Contains:
		return "contains=" + p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		return "regex=" + p.SafeRegex.GetRegex()
	}
	return "?"
}

func (f Facts) cluster(name string, c *clusterv3.Cluster) {
	p := KindCluster + "/" + name
	typ := c.GetType().String()
	if ct := c.GetClusterType(); ct != nil {
		typ = extensionName(ct.GetName(), ct.GetTypedConfig())
	}
	f.set(typ, p, "type")
	lb := c.GetLbPolicy().String()
	if pol := c.GetLoadBalancingPolicy(); pol != nil {
		var names []string
		for _, pp := range pol.GetPolicies() {
			names = append(names, extensionName(pp.GetTypedExtensionConfig().GetName(), pp.GetTypedExtensionConfig().GetTypedConfig()))
		}
		lb = strings.Join(names, ",")
	}
	f.set(lb, p, "lb_policy")
	if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
		f.set(sn, p, "eds_service_name")
	}
	if c.GetConnectTimeout() != nil {
		f.set(c.GetConnectTimeout().AsDuration().String(), p, "connect_timeout")
	}
	f.set(upstreamProtocol(c), p, "upstream_protocol")
	if ts := c.GetTransportSocket(); ts != nil {
		f.upstreamTLS(p+"/transport_socket", ts)
	}
	for _, m := range c.GetTransportSocketMatches() {
		key := "*"
		if crit := m.GetMatch(); crit != nil && len(crit.GetFields()) > 0 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(crit.GetFields())) {
				kv = append(kv, k+"="+crit.GetFields()[k].GetStringValue())
			}
			key = strings.Join(kv, ",")
		}
		f.upstreamTLS(p+"/transport_socket_match{"+key+"}", m.GetTransportSocket())
	}
	if cla := c.GetLoadAssignment(); cla != nil && c.GetType() != clusterv3.Cluster_EDS {
		f.endpoints(name, cla)
	}
}

// upstreamProtocol is the HTTP protocol the cluster speaks upstream, as
// its HttpProtocolOptions (or the older per-cluster fields) choose it.
func upstreamProtocol(c *clusterv3.Cluster) string {
	if cfg, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		opts := &httpv3.HttpProtocolOptions{}
		if cfg.UnmarshalTo(opts) != nil {
			return "undecodable"
		}
		switch t := opts.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			if t.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
				return "http2"
			}
			if t.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
				return "http3"
			}
			return "http1"
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			return "use_downstream"
		case *httpv3.HttpProtocolOptions_AutoConfig:
			return "auto"
		}
		return "unset"
	}
	if c.GetHttp2ProtocolOptions() != nil { //nolint:staticcheck // a server may still send the deprecated field; Envoy honors it.
		return "http2"
	}
	return "default"
}

func (f Facts) upstreamTLS(p string, ts *corev3.TransportSocket) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if ts == nil || ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		name := "raw_buffer"
		if ts != nil {
			name = extensionName(ts.GetName(), ts.GetTypedConfig())
			if strings.HasSuffix(name, "RawBuffer") {
				name = "raw_buffer"
			}
		}
		f.set(name, p, "socket")
		return
	}
	f.set("tls", p, "socket")
	f.set(ctx.GetSni(), p, "sni")
	f.commonTLS(p, ctx.GetCommonTlsContext())
}

func (f Facts) endpoints(name string, cla *endpointv3.ClusterLoadAssignment) {
	p := KindEndpoints + "/" + name
	seen := map[string]int{}
	n := 0
	for _, loc := range cla.GetEndpoints() {
		locality := localityString(loc.GetLocality())
		for _, ep := range loc.GetLbEndpoints() {
			n++
			addr := socketAddress(ep.GetEndpoint().GetAddress())
			if seen[addr] > 0 {
				seen[addr]++
				addr += "#" + strconv.Itoa(seen[addr])
			} else {
				seen[addr] = 1
			}
			weight := uint32(1)
			if w := ep.GetLoadBalancingWeight(); w != nil {
				weight = w.GetValue()
			}
			health := "healthy"
			if hs := ep.GetHealthStatus(); hs != corev3.HealthStatus_UNKNOWN && hs != corev3.HealthStatus_HEALTHY {
				health = strings.ToLower(hs.String())
			}
			v := fmt.Sprintf("weight=%d locality=%s priority=%d health=%s", weight, locality, loc.GetPriority(), health)
			if lw := loc.GetLoadBalancingWeight(); lw != nil {
				v += " locality_weight=" + portString(lw.GetValue())
			}
			if md := ep.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]; md != nil {
				var kv []string
				for _, k := range slices.Sorted(maps.Keys(md.GetFields())) {
					kv = append(kv, k+"="+md.GetFields()[k].GetStringValue())
				}
				v += " socket_match=" + strings.Join(kv, ",")
			}
			f.set(v, p, addr)
		}
	}
	if n == 0 {
		f.set("none", p)
	}
}

func localityString(l *corev3.Locality) string {
	if l.GetRegion() == "" && l.GetZone() == "" && l.GetSubZone() == "" {
		return "-"
	}
	return l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
}

func socketAddress(a *corev3.Address) string {
	if sa := a.GetSocketAddress(); sa != nil {
		port := portString(sa.GetPortValue())
		if sa.GetNamedPort() != "" {
			port = sa.GetNamedPort()
		}
		return sa.GetAddress() + ":" + port
	}
	if pipe := a.GetPipe(); pipe != nil {
		return "unix:" + pipe.GetPath()
	}
	if ea := a.GetEnvoyInternalAddress(); ea != nil {
		return "internal:" + ea.GetServerListenerName()
	}
	return ""
}

func (f Facts) route(name string, rc *routev3.RouteConfiguration) {
	p := KindRoute + "/" + name
	if len(rc.GetVirtualHosts()) == 0 {
		f.set("none", p)
	}
	for _, vh := range rc.GetVirtualHosts() {
		vp := p + "/vhost/" + vh.GetName()
		domains := slices.Clone(vh.GetDomains())
		slices.Sort(domains)
		f.set(strings.Join(domains, ","), vp, "domains")
		for i, r := range vh.GetRoutes() {
			f.set(routeMatch(r.GetMatch())+" -> "+routeAction(r), vp, "route", strconv.Itoa(i))
		}
	}
}

func routeMatch(m *routev3.RouteMatch) string {
	var s string
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		s = "prefix:" + p.Prefix
	case *routev3.RouteMatch_Path:
		s = "path:" + p.Path
	case *routev3.RouteMatch_SafeRegex:
		s = "regex:" + p.SafeRegex.GetRegex()
	case *routev3.RouteMatch_PathSeparatedPrefix:
		s = "path_separated_prefix:" + p.PathSeparatedPrefix
	default:
		s = "other"
	}
	for _, h := range m.GetHeaders() {
		s += " header:" + h.GetName()
	}
	return s
}

func routeAction(r *routev3.Route) string {
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		switch c := a.Route.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			return "cluster:" + c.Cluster
		case *routev3.RouteAction_WeightedClusters:
			var ws []string
			for _, w := range c.WeightedClusters.GetClusters() {
				ws = append(ws, w.GetName()+":"+portString(w.GetWeight().GetValue()))
			}
			slices.Sort(ws)
			return "weighted:" + strings.Join(ws, ",")
		case *routev3.RouteAction_ClusterHeader:
			return "cluster_header:" + c.ClusterHeader
		}
		return "route:other"
	case *routev3.Route_Redirect:
		return "redirect"
	case *routev3.Route_DirectResponse:
		return "direct_response:" + strconv.FormatUint(uint64(a.DirectResponse.GetStatus()), 10)
	case *routev3.Route_NonForwardingAction:
		return "non_forwarding"
	}
	return "none"
}

func joinNonEmpty(sep string, parts ...string) string {
	parts = slices.DeleteFunc(parts, func(s string) bool { return s == "" || s == "*" })
	if len(parts) == 0 {
		return "*"
	}
	return strings.Join(parts, sep)
}
