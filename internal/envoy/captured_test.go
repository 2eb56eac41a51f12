package envoy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// chainSummary is what Envoy acts on in a filter chain, in short.
type chainSummary struct {
	Name      string
	Port      uint32
	Transport string
	ALPN      string
	Target    string // tcp:CLUSTER, rds:NAME or route:CLUSTER
	TLS       string // "" or "mtls alpn=... sds=default/ROOTCA"
}

type listenerSummary struct {
	Name, Address string
	Bind          bool
	OrigDst       bool
	Filters       string
	Chains        []chainSummary
	Default       string
}

func summarizeChain(t *testing.T, fc *listenerv3.FilterChain) chainSummary {
	t.Helper()
	m := fc.GetFilterChainMatch()
	s := chainSummary{
		Name: fc.GetName(), Port: m.GetDestinationPort().GetValue(), Transport: m.GetTransportProtocol(),
		ALPN: strings.Join(m.GetApplicationProtocols(), ","),
	}
	f := fc.GetFilters()[len(fc.GetFilters())-1]
	msg, err := f.GetTypedConfig().UnmarshalNew()
	if err != nil {
		t.Fatal(err)
	}
	switch c := msg.(type) {
	case *tcpproxyv3.TcpProxy:
		s.Target = "tcp:" + c.GetCluster()
	case *hcmv3.HttpConnectionManager:
		if rds := c.GetRds(); rds != nil {
			s.Target = "rds:" + rds.GetRouteConfigName()
		} else {
			s.Target = "route:" + c.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster()
		}
	default:
		t.Fatalf("terminal filter %T", msg)
	}
	if ts := fc.GetTransportSocket(); ts != nil {
		var tc tlsv3.DownstreamTlsContext
		if err := ts.GetTypedConfig().UnmarshalTo(&tc); err != nil {
			t.Fatal(err)
		}
		ctx := tc.GetCommonTlsContext()
		s.TLS = fmt.Sprintf("mtls require=%v alpn=%s sds=%s/%s", tc.GetRequireClientCertificate().GetValue(),
			strings.Join(ctx.GetAlpnProtocols(), ","), ctx.GetTlsCertificateSdsSecretConfigs()[0].GetName(),
			ctx.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName())
	}
	return s
}

func summarizeListener(t *testing.T, l *listenerv3.Listener) listenerSummary {
	t.Helper()
	validateDeep(t, l)
	sa := l.GetAddress().GetSocketAddress()
	s := listenerSummary{
		Name: l.GetName(), Address: fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()),
		Bind: l.GetBindToPort() == nil || l.GetBindToPort().GetValue(), OrigDst: l.GetUseOriginalDst().GetValue(),
	}
	var filters []string
	for _, f := range l.GetListenerFilters() {
		name := strings.TrimPrefix(f.GetName(), "envoy.filters.listener.")
		if f.GetFilterDisabled() != nil {
			name += "(some ports)"
		}
		filters = append(filters, name)
	}
	s.Filters = strings.Join(filters, ",")
	for _, fc := range l.GetFilterChains() {
		s.Chains = append(s.Chains, summarizeChain(t, fc))
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		s.Default = summarizeChain(t, d).Target
	}
	return s
}

func TestCapturedOutboundListeners(t *testing.T) {
	hello := helloworld() // http 5000, VIPs in cluster1 and cluster2
	other := svcInfo("other", "api", map[model.ClusterID]string{"cluster1": "10.96.0.20"})
	other.Ports = []model.ServicePort{{Name: "http-api", Port: 5000}, {Name: "grpc", Port: 9000}, {Name: "http", Port: 15001}, {Name: "http", Port: 15006}}
	db := svcInfo("data", "db", map[model.ClusterID]string{"cluster1": "10.96.0.30"})
	db.Ports = []model.ServicePort{{Name: "mysql", Port: 3306}, {Name: "tls-x", Port: 443}, {Name: "dns", Port: 53, Protocol: "UDP"}}
	web := svcInfo("web", "web", map[model.ClusterID]string{"cluster2": "10.97.0.40"})
	web.Ports = []model.ServicePort{{Name: "web", Port: 8080}, {Port: 8443, AppProtocol: "kubernetes.io/h2c"}}
	headless := svcInfo("data", "cassandra", map[model.ClusterID]string{"cluster1": "None"})
	headless.Ports = []model.ServicePort{{Name: "tcp-cql", Port: 9042}}
	// Same VIP as db (a service being replaced): the first host keeps it.
	dup := svcInfo("data", "aaa", map[model.ClusterID]string{"cluster1": "10.96.0.30"})
	dup.Ports = []model.ServicePort{{Name: "tcp", Port: 3306}}

	services := []*model.ServiceInfo{web, db, hello, other, headless, nil}
	for _, policy := range []OutboundTrafficPolicy{AllowAny, RegistryOnly} {
		t.Run(policy.String(), func(t *testing.T) {
			catchAll := "tcp:" + policy.catchAllCluster()
			http := []chainSummary{{Transport: "raw_buffer", ALPN: "http/1.1,h2c"}}
			httpOn := func(port string) []chainSummary {
				c := append([]chainSummary(nil), http...)
				c[0].Target = "rds:" + port
				return c
			}
			want := []listenerSummary{
				{
					Name: "0.0.0.0_5000", Address: "0.0.0.0:5000", Filters: "http_inspector", // no TLS inspector, as istiod
					Chains: httpOn("5000"), Default: catchAll,
				},
				{
					Name: "0.0.0.0_8443", Address: "0.0.0.0:8443", Filters: "http_inspector", // no TLS inspector, as istiod
					Chains: httpOn("8443"), Default: catchAll,
				},
				{
					Name: "0.0.0.0_9000", Address: "0.0.0.0:9000", Filters: "http_inspector", // no TLS inspector, as istiod
					Chains: httpOn("9000"), Default: catchAll,
				},
				{
					Name: "10.96.0.30_3306", Address: "10.96.0.30:3306",
					Chains: []chainSummary{{Target: "tcp:outbound|3306||db.data.svc.cluster.local"}},
				},
				{
					Name: "10.96.0.30_443", Address: "10.96.0.30:443",
					Chains: []chainSummary{{Target: "tcp:outbound|443||db.data.svc.cluster.local"}},
				},
				{
					// Not in cluster1: the VIP of the cluster that has one.
					Name: "10.97.0.40_8080", Address: "10.97.0.40:8080", Filters: "http_inspector", // no TLS inspector, as istiod
					Chains: []chainSummary{{
						Transport: "raw_buffer", ALPN: "http/1.1,h2c", Target: "rds:web.web.svc.cluster.local:8080",
					}},
					Default: "tcp:outbound|8080||web.web.svc.cluster.local",
				},
			}
			var got []listenerSummary
			for _, l := range CapturedOutboundListeners(services, "cluster1", policy) {
				got = append(got, summarizeListener(t, l))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("duplicate VIP", func(t *testing.T) {
		ls := CapturedOutboundListeners([]*model.ServiceInfo{db, dup}, "cluster1", AllowAny)
		got := summarizeListener(t, ls[0])
		if got.Name != "10.96.0.30_3306" || got.Chains[0].Target != "tcp:outbound|3306||aaa.data.svc.cluster.local" {
			t.Errorf("got %+v, want 10.96.0.30_3306 to aaa (first host)", got)
		}
	})
}

func TestSniffedRoutes(t *testing.T) {
	web := svcInfo("web", "web", map[model.ClusterID]string{"cluster1": "10.96.0.40"})
	web.Ports = []model.ServicePort{{Name: "web", Port: 8080}, {Name: "http", Port: 80}}
	if diff := cmp.Diff([]uint32{8080}, SniffedPorts(web, "cluster1")); diff != "" {
		t.Errorf("SniffedPorts (-want +got):\n%s", diff)
	}
	headless := svcInfo("web", "h", map[model.ClusterID]string{"cluster1": "None"}, 8080)
	if got := SniffedPorts(headless, "cluster1"); got != nil {
		t.Errorf("SniffedPorts(headless) = %v, want none", got)
	}
	rc := SniffedRoute(web, 8080)
	validateDeep(t, rc)
	// The listener is the service's own VIP_PORT: every Host is the
	// service's, as istiod's "*".
	if rc.GetName() != "web.web.svc.cluster.local:8080" || len(rc.GetVirtualHosts()) != 1 ||
		!slices.Equal(rc.GetVirtualHosts()[0].GetDomains(), []string{"*"}) ||
		rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster() != "outbound|8080||web.web.svc.cluster.local" {
		t.Errorf("SniffedRoute = %v", rc)
	}
}

func TestVirtualOutboundListener(t *testing.T) {
	for _, tt := range []struct {
		policy   OutboundTrafficPolicy
		mode     InterceptionMode
		catchAll string
	}{
		{AllowAny, InterceptionRedirect, "tcp:PassthroughCluster"},
		{RegistryOnly, InterceptionTProxy, "tcp:BlackHoleCluster"},
	} {
		l := VirtualOutboundListener(tt.policy, tt.mode)
		want := listenerSummary{
			Name: "virtualOutbound", Address: "0.0.0.0:15001", Bind: true, OrigDst: true,
			Chains: []chainSummary{
				{Name: "virtualOutbound-blackhole", Port: 15001, Target: "tcp:BlackHoleCluster"},
				{Name: "virtualOutbound-catchall-tcp", Target: tt.catchAll},
			},
		}
		if diff := cmp.Diff(want, summarizeListener(t, l)); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tt.policy, diff)
		}
		if got := l.GetTransparent().GetValue(); got != (tt.mode == InterceptionTProxy) {
			t.Errorf("%v: transparent = %v", tt.mode, got)
		}
	}
}

func TestVirtualInboundListener(t *testing.T) {
	const (
		mtlsHTTP = "mtls require=true alpn=h2,http/1.1 sds=default/ROOTCA"
		mtlsTCP  = "mtls require=true alpn=istio-peer-exchange,h2,http/1.1 sds=default/ROOTCA"
		allMTLS  = "istio,istio-peer-exchange,istio-http/1.0,istio-http/1.1,istio-h2"
		httpMTLS = "istio-http/1.0,istio-http/1.1,istio-h2"
	)
	blackhole := chainSummary{Name: "virtualInbound-blackhole", Port: 15006, Target: "tcp:BlackHoleCluster"}
	passPermissive := []chainSummary{
		{Name: "virtualInbound-catchall-http", Transport: "tls", ALPN: httpMTLS, Target: "route:InboundPassthroughCluster", TLS: mtlsHTTP},
		{Name: "virtualInbound-catchall-http", Transport: "raw_buffer", ALPN: "http/1.1,h2c", Target: "route:InboundPassthroughCluster"},
		{Name: "virtualInbound", Transport: "tls", ALPN: "istio-peer-exchange,istio", Target: "tcp:InboundPassthroughCluster", TLS: mtlsTCP},
		{Name: "virtualInbound", Transport: "raw_buffer", Target: "tcp:InboundPassthroughCluster"},
		{Name: "virtualInbound", Transport: "tls", Target: "tcp:InboundPassthroughCluster"},
	}
	tests := []struct {
		name string
		in   Inbound
		mode InterceptionMode
		want listenerSummary
	}{
		{
			name: "PERMISSIVE http, tcp and sniffed ports",
			in: Inbound{Passthrough: model.MTLSPermissive, Ports: []InboundPort{
				{Port: 5000, Protocol: model.ProtocolHTTP, Mode: model.MTLSPermissive},
				{Port: 6379, Protocol: model.ProtocolRedis, Mode: model.MTLSPermissive},
			}},
			mode: InterceptionRedirect,
			want: listenerSummary{
				Name: "virtualInbound", Address: "0.0.0.0:15006", Bind: true,
				Filters: "original_dst,tls_inspector(some ports),http_inspector(some ports)",
				Chains: append(append([]chainSummary{blackhole}, passPermissive...),
					chainSummary{Name: "0.0.0.0_5000", Port: 5000, Transport: "tls", ALPN: allMTLS, Target: "route:inbound|5000||", TLS: mtlsHTTP},
					chainSummary{Name: "0.0.0.0_5000", Port: 5000, Transport: "raw_buffer", Target: "route:inbound|5000||"},
					chainSummary{Name: "0.0.0.0_6379", Port: 6379, Transport: "tls", ALPN: allMTLS, Target: "tcp:inbound|6379||", TLS: mtlsTCP},
					chainSummary{Name: "0.0.0.0_6379", Port: 6379, Transport: "raw_buffer", Target: "tcp:inbound|6379||"},
					chainSummary{Name: "0.0.0.0_6379", Port: 6379, Transport: "tls", Target: "tcp:inbound|6379||"},
				),
			},
		},
		{
			name: "STRICT workload with a DISABLE port, TPROXY",
			in: Inbound{Passthrough: model.MTLSStrict, Ports: []InboundPort{
				{Port: 8080, Protocol: model.ProtocolUnsupported, Mode: model.MTLSStrict},
				{Port: 9090, Protocol: model.ProtocolHTTP, Mode: model.MTLSDisable},
			}},
			mode: InterceptionTProxy,
			want: listenerSummary{
				Name: "virtualInbound", Address: "0.0.0.0:15006", Bind: true,
				// No chain matches plaintext HTTP ALPNs: no HTTP inspector.
				Filters: "original_dst,original_src,tls_inspector(some ports)",
				Chains: []chainSummary{
					blackhole,
					{Name: "virtualInbound-catchall-http", Transport: "tls", ALPN: httpMTLS, Target: "route:InboundPassthroughCluster", TLS: mtlsHTTP},
					{Name: "virtualInbound", Transport: "tls", Target: "tcp:InboundPassthroughCluster", TLS: mtlsTCP},
					{Name: "0.0.0.0_8080", Port: 8080, Transport: "tls", ALPN: httpMTLS, Target: "route:inbound|8080||", TLS: mtlsHTTP},
					{Name: "0.0.0.0_8080", Port: 8080, Transport: "tls", Target: "tcp:inbound|8080||", TLS: mtlsTCP},
					{Name: "0.0.0.0_9090", Port: 9090, Transport: "raw_buffer", Target: "route:inbound|9090||"},
				},
			},
		},
		{
			name: "DISABLE: plaintext only, no TLS anywhere",
			in: Inbound{Passthrough: model.MTLSDisable, Ports: []InboundPort{
				{Port: 7000, Protocol: model.ProtocolTCP, Mode: model.MTLSDisable},
			}},
			mode: InterceptionRedirect,
			want: listenerSummary{
				Name: "virtualInbound", Address: "0.0.0.0:15006", Bind: true,
				Filters: "original_dst,http_inspector(some ports)",
				Chains: []chainSummary{
					blackhole,
					{Name: "virtualInbound-catchall-http", Transport: "raw_buffer", ALPN: "http/1.1,h2c", Target: "route:InboundPassthroughCluster"},
					{Name: "virtualInbound", Transport: "raw_buffer", Target: "tcp:InboundPassthroughCluster"},
					{Name: "0.0.0.0_7000", Port: 7000, Transport: "raw_buffer", Target: "tcp:inbound|7000||"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarizeListener(t, VirtualInboundListener(tt.in, tt.mode, ""))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestInboundInspectorPorts(t *testing.T) {
	// PERMISSIVE passthrough: the TLS inspector is on by default and off
	// on 15006 and the DISABLE port; the HTTP inspector off where no chain
	// matches plaintext HTTP ALPNs.
	l := VirtualInboundListener(Inbound{Passthrough: model.MTLSPermissive, Ports: []InboundPort{
		{Port: 7000, Protocol: model.ProtocolTCP, Mode: model.MTLSDisable},
	}}, InterceptionRedirect, "")
	var got []string
	for _, f := range l.GetListenerFilters() {
		d := ""
		if f.GetFilterDisabled() != nil {
			d = f.GetFilterDisabled().String()
		}
		got = append(got, f.GetName()+" "+d)
	}
	want := []string{
		"envoy.filters.listener.original_dst ",
		"envoy.filters.listener.tls_inspector or_match:{rules:{destination_port_range:{start:7000 end:7001}} rules:{destination_port_range:{start:15006 end:15007}}}",
		"envoy.filters.listener.http_inspector or_match:{rules:{destination_port_range:{start:7000 end:7001}} rules:{destination_port_range:{start:15006 end:15007}}}",
	}
	if diff := cmp.Diff(strings.ReplaceAll(strings.Join(want, "\n"), " ", ""), strings.ReplaceAll(strings.Join(got, "\n"), " ", "")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestInboundKey(t *testing.T) {
	in := Inbound{Passthrough: model.MTLSStrict, Ports: []InboundPort{
		{Port: 5000, Protocol: model.ProtocolHTTP, Mode: model.MTLSPermissive},
		{Port: 9000, Protocol: model.ProtocolGRPCWeb, Mode: model.MTLSDisable},
		{Port: 9001, Protocol: model.ProtocolUnsupported, Mode: model.MTLSStrict},
	}}
	if diff := cmp.Diff(in, in.Key().Inbound()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Inbound{}, Inbound{}.Key().Inbound()); diff != "" {
		t.Errorf("empty round trip (-want +got):\n%s", diff)
	}
	other := in
	other.Ports = []InboundPort{in.Ports[0]}
	if in.Key() == other.Key() {
		t.Error("different inbounds have equal keys")
	}
}

func TestWorkloadInbound(t *testing.T) {
	p := &Proxy{PodPorts: []PodPort{
		{Name: "http", Port: 5000, Protocol: "TCP"},
		{Name: "dns", Port: 53, Protocol: "UDP"},
		{Port: 8080},
		{Name: "tcp-db", Port: 3306},
		{Name: "http-envoy-prom", Port: 15090},
	}}
	mode := func(port uint32) model.MTLSMode {
		if port == 8080 {
			return model.MTLSDisable
		}
		return model.MTLSStrict
	}
	want := Inbound{Passthrough: model.MTLSStrict, Ports: []InboundPort{
		{Port: 3306, Protocol: model.ProtocolTCP, Mode: model.MTLSStrict},
		{Port: 5000, Protocol: model.ProtocolHTTP, Mode: model.MTLSStrict},
		{Port: 8080, Protocol: model.ProtocolUnsupported, Mode: model.MTLSDisable},
	}}
	if diff := cmp.Diff(want, WorkloadInbound(p, mode)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCapturedClusters(t *testing.T) {
	type summary struct {
		Name, Type, LB, Bind string
		Endpoints            int
	}
	sum := func(c *clusterv3.Cluster) summary {
		validateDeep(t, c)
		return summary{
			Name: c.GetName(), Type: c.GetType().String(), LB: c.GetLbPolicy().String(),
			Bind:      c.GetUpstreamBindConfig().GetSourceAddress().GetAddress(),
			Endpoints: len(c.GetLoadAssignment().GetEndpoints()),
		}
	}
	var got []summary
	for _, c := range CapturedClusters(ClusterOptions{}) {
		got = append(got, sum(c))
	}
	for _, p := range []InboundPort{{Port: 5000, Protocol: model.ProtocolHTTP}, {Port: 9000, Protocol: model.ProtocolGRPC}} {
		got = append(got, sum(InboundCluster(p, ClusterOptions{})))
	}
	want := []summary{
		{Name: "BlackHoleCluster", Type: "STATIC", LB: "ROUND_ROBIN"},
		{Name: "InboundPassthroughCluster", Type: "ORIGINAL_DST", LB: "CLUSTER_PROVIDED", Bind: "127.0.0.6"},
		{Name: "PassthroughCluster", Type: "ORIGINAL_DST", LB: "CLUSTER_PROVIDED"},
		{Name: "inbound|5000||", Type: "ORIGINAL_DST", LB: "CLUSTER_PROVIDED", Bind: "127.0.0.6"},
		{Name: "inbound|9000||", Type: "ORIGINAL_DST", LB: "CLUSTER_PROVIDED", Bind: "127.0.0.6"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if InboundCluster(InboundPort{Port: 9000, Protocol: model.ProtocolGRPC}, ClusterOptions{}).GetTypedExtensionProtocolOptions() == nil {
		t.Error("a gRPC inbound cluster has no HTTP/2 options")
	}
}

func TestClusterProtocolOptions(t *testing.T) {
	for _, tt := range []struct {
		port model.ServicePort
		want string
	}{
		{model.ServicePort{Name: "http", Port: 80}, ""},
		{model.ServicePort{Name: "tcp", Port: 80}, ""},
		{model.ServicePort{Name: "grpc", Port: 80}, "explicit_http_config"},
		{model.ServicePort{Name: "web", Port: 80}, "use_downstream_protocol_config"},
	} {
		c := Cluster(helloworld(), tt.port, ClusterOptions{})
		validateDeep(t, c)
		got := ""
		if a := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; a != nil {
			m, err := a.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			got = string(m.ProtoReflect().WhichOneof(m.ProtoReflect().Descriptor().Oneofs().ByName("upstream_protocol_options")).Name())
		}
		if got != tt.want {
			t.Errorf("port %s: protocol options %q, want %q", tt.port.Name, got, tt.want)
		}
	}
}

// TestInboundClientSAN: every chain that terminates mesh mTLS accepts only
// client certificates of the mesh's trust domain (a URI SAN starting
// spiffe://TRUSTDOMAIN/), as istiod's.
func TestInboundClientSAN(t *testing.T) {
	in := Inbound{Passthrough: model.MTLSPermissive, Ports: []InboundPort{
		{Port: 80, Protocol: model.ProtocolHTTP, Mode: model.MTLSStrict},
		{Port: 7000, Protocol: model.ProtocolTCP, Mode: model.MTLSPermissive},
	}}
	for _, tt := range []struct{ trustDomain, want string }{
		{"", "spiffe://cluster.local/"},
		{"example.org", "spiffe://example.org/"},
	} {
		l := VirtualInboundListener(in, InterceptionRedirect, tt.trustDomain)
		n := 0
		for _, fc := range l.GetFilterChains() {
			if fc.GetTransportSocket() == nil {
				continue
			}
			n++
			var tc tlsv3.DownstreamTlsContext
			if err := fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range tc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
				got = append(got, m.GetSanType().String()+" prefix="+m.GetMatcher().GetPrefix())
			}
			if diff := cmp.Diff([]string{"URI prefix=" + tt.want}, got); diff != "" {
				t.Errorf("trust domain %q, chain %s: SAN matchers (-want +got):\n%s", tt.trustDomain, fc.GetName(), diff)
			}
		}
		if n == 0 {
			t.Fatalf("trust domain %q: no chain terminates mTLS", tt.trustDomain)
		}
	}
}
