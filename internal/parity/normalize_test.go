package parity

import (
	"maps"
	"testing"
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func tcpChain(t *testing.T, name, cluster string, match *listenerv3.FilterChainMatch, tls *corev3.TransportSocket) *listenerv3.FilterChain {
	t.Helper()
	return &listenerv3.FilterChain{
		Name:             name,
		FilterChainMatch: match,
		TransportSocket:  tls,
		Filters: []*listenerv3.Filter{
			{Name: "istio.metadata_exchange", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, &structpb.Struct{})}},
			{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, &tcpproxyv3.TcpProxy{
				StatPrefix: name, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
			})}},
		},
	}
}

func inboundTLS(t *testing.T) *corev3.TransportSocket {
	t.Helper()
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
			}},
		},
	})}}
}

// matcherTo builds a filter_chain_matcher branch that names chain.
func onChain(t *testing.T, chain string) *xdsmatcherv3.Matcher_OnMatch {
	t.Helper()
	return &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{Action: &xdscorev3.TypedExtensionConfig{
		Name: chain, TypedConfig: testkit.MustAny(t, wrapperspb.String(chain)),
	}}}
}

func input(t *testing.T, name string, m proto.Message) *xdscorev3.TypedExtensionConfig {
	t.Helper()
	return &xdscorev3.TypedExtensionConfig{Name: name, TypedConfig: testkit.MustAny(t, m)}
}

// TestNormalizeChainKeys: a chain picked by a filter_chain_matcher tree
// (istiod's inbound listener) and the same chain picked by its
// FilterChainMatch normalize to the same facts.
func TestNormalizeChainKeys(t *testing.T) {
	byMatch := &listenerv3.Listener{
		Name:           "virtualInbound",
		Address:        testkit.SocketAddress("0.0.0.0", 15006),
		UseOriginalDst: wrapperspb.Bool(true),
		FilterChains: []*listenerv3.FilterChain{
			tcpChain(t, "a", "inbound|9000||", &listenerv3.FilterChainMatch{
				DestinationPort: wrapperspb.UInt32(9000), TransportProtocol: "tls",
			}, inboundTLS(t)),
			tcpChain(t, "b", "InboundPassthroughCluster", &listenerv3.FilterChainMatch{
				PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "0.0.0.0", PrefixLen: wrapperspb.UInt32(0)}},
			}, nil),
		},
	}
	tree := &xdsmatcherv3.Matcher{
		MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input: input(t, "port", &networkinputsv3.DestinationPortInput{}),
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{
				Map: map[string]*xdsmatcherv3.Matcher_OnMatch{
					"9000": {OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: &xdsmatcherv3.Matcher{
						MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
							Input: input(t, "transport", &networkinputsv3.TransportProtocolInput{}),
							TreeType: &xdsmatcherv3.Matcher_MatcherTree_ExactMatchMap{ExactMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{
								Map: map[string]*xdsmatcherv3.Matcher_OnMatch{"tls": onChain(t, "a")},
							}},
						}},
					}}},
				},
			}},
		}},
		OnNoMatch: onChain(t, "b"),
	}
	byTree := proto.Clone(byMatch).(*listenerv3.Listener)
	byTree.FilterChains[0].FilterChainMatch = nil
	byTree.FilterChains[1].FilterChainMatch = nil
	byTree.FilterChainMatcher = tree

	want := Facts{
		"listener/virtualInbound/address":                                                       "0.0.0.0:15006",
		"listener/virtualInbound/bind_to_port":                                                  "true",
		"listener/virtualInbound/use_original_dst":                                              "true",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/filter/google.protobuf.Struct": present,
		"listener/virtualInbound/chain{dport=9000,transport=tls}/terminal":                      "tcp_proxy cluster=inbound|9000||",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/transport":                     "tls",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/tls/require_client_cert":       "true",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/tls/certificate_sds":           "default",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/tls/alpn":                      "h2,http/1.1",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/tls/validation_sds":            "ROOTCA",
		"listener/virtualInbound/chain{dport=9000,transport=tls}/tls/san":                       empty,
		"listener/virtualInbound/chain{dip=0.0.0.0/0}/filter/google.protobuf.Struct":            present,
		"listener/virtualInbound/chain{dip=0.0.0.0/0}/terminal":                                 "tcp_proxy cluster=InboundPassthroughCluster",
		"listener/virtualInbound/chain{dip=0.0.0.0/0}/transport":                                "raw_buffer",
	}
	if diff := cmp.Diff(want, Normalize(&Snapshot{Listeners: map[string]*listenerv3.Listener{"virtualInbound": byMatch}})); diff != "" {
		t.Errorf("by FilterChainMatch (-want +got):\n%s", diff)
	}
	// The tree's no-match branch reads dport=*, where the match said
	// 0.0.0.0/0: the same chain, keyed by what the tree says.
	wantTree := Facts{}
	maps.Copy(wantTree, want)
	for k, v := range want {
		if len(k) > len("listener/virtualInbound/chain{dip=0.0.0.0/0}") && k[:len("listener/virtualInbound/chain{dip=0.0.0.0/0}")] == "listener/virtualInbound/chain{dip=0.0.0.0/0}" {
			delete(wantTree, k)
			wantTree["listener/virtualInbound/chain{dport=*}"+k[len("listener/virtualInbound/chain{dip=0.0.0.0/0}"):]] = v
		}
	}
	if diff := cmp.Diff(wantTree, Normalize(&Snapshot{Listeners: map[string]*listenerv3.Listener{"virtualInbound": byTree}})); diff != "" {
		t.Errorf("by filter_chain_matcher (-want +got):\n%s", diff)
	}
}

func TestNormalizeHTTPChainAndRoutes(t *testing.T) {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "outbound_0.0.0.0_5000",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "5000"}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: testkit.MustAny(t, &structpb.Struct{})}},
		},
	}
	l := &listenerv3.Listener{
		Name:       "0.0.0.0_5000",
		Address:    testkit.SocketAddress("0.0.0.0", 5000),
		BindToPort: wrapperspb.Bool(false),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, hcm)}}},
		}},
	}
	rc := &routev3.RouteConfiguration{Name: "5000", VirtualHosts: []*routev3.VirtualHost{{
		Name:    "helloworld.sample.svc.cluster.local:5000",
		Domains: []string{"helloworld.sample.svc.cluster.local", "helloworld"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|5000||helloworld.sample.svc.cluster.local"}}},
		}},
	}}}
	snap := &Snapshot{Listeners: map[string]*listenerv3.Listener{l.Name: l}, Routes: map[string]*routev3.RouteConfiguration{"5000": rc}}
	if diff := cmp.Diff([]string{"5000"}, snap.rdsNames()); diff != "" {
		t.Errorf("RDS names (-want +got):\n%s", diff)
	}
	want := Facts{
		"listener/0.0.0.0_5000/address":                                     "0.0.0.0:5000",
		"listener/0.0.0.0_5000/bind_to_port":                                "false",
		"listener/0.0.0.0_5000/use_original_dst":                            "false",
		"listener/0.0.0.0_5000/chain{*}/terminal":                           "http_connection_manager rds=5000",
		"listener/0.0.0.0_5000/chain{*}/http_filter/google.protobuf.Struct": present,
		"listener/0.0.0.0_5000/chain{*}/transport":                          "raw_buffer",
		"route/5000/vhost/helloworld.sample.svc.cluster.local:5000/domains": "helloworld,helloworld.sample.svc.cluster.local",
		"route/5000/vhost/helloworld.sample.svc.cluster.local:5000/route/0": "prefix:/ -> cluster:outbound|5000||helloworld.sample.svc.cluster.local",
	}
	if diff := cmp.Diff(want, Normalize(snap)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNormalizeClustersAndEndpoints(t *testing.T) {
	name := "outbound|5000||helloworld.sample.svc.cluster.local"
	upstream := &tlsv3.UpstreamTlsContext{
		Sni: "outbound_.5000_._.helloworld.sample.svc.cluster.local",
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/sample/sa/helloworld"}},
				}}},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
			}},
		},
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: name},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{
				Name:            "tlsMode-istio",
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
				TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, upstream)}},
			},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}},
		},
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Locality: &corev3.Locality{Region: "r1"},
		LbEndpoints: []*endpointv3.LbEndpoint{
			{
				HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: testkit.SocketAddress("10.1.0.10", 5000)}},
				LoadBalancingWeight: wrapperspb.UInt32(2),
				Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
					"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
					"istio":                        {Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue("ignored")}},
				}},
			},
			{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: testkit.SocketAddress("172.18.0.10", 15443)}},
				HealthStatus:   corev3.HealthStatus_UNHEALTHY,
			},
		},
	}}}
	snap := &Snapshot{
		Clusters:  map[string]*clusterv3.Cluster{name: c},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{name: cla, "empty": {ClusterName: "empty"}},
	}
	if diff := cmp.Diff([]string{name}, snap.edsNames()); diff != "" {
		t.Errorf("EDS names (-want +got):\n%s", diff)
	}
	p := "cluster/" + name
	tsm := p + "/transport_socket_match{tlsMode=istio}"
	want := Facts{
		p + "/type":                                "EDS",
		p + "/lb_policy":                           "ROUND_ROBIN",
		p + "/eds_service_name":                    name,
		p + "/connect_timeout":                     "10s",
		p + "/upstream_protocol":                   "default",
		tsm + "/socket":                            "tls",
		tsm + "/sni":                               "outbound_.5000_._.helloworld.sample.svc.cluster.local",
		tsm + "/alpn":                              "istio-peer-exchange,istio",
		tsm + "/certificate_sds":                   "default",
		tsm + "/validation_sds":                    "ROOTCA",
		tsm + "/san":                               "URI:exact=spiffe://cluster.local/ns/sample/sa/helloworld",
		p + "/transport_socket_match{*}/socket":    "raw_buffer",
		"endpoints/" + name + "/10.1.0.10:5000":    "weight=2 locality=r1// priority=0 health=healthy socket_match=tlsMode=istio",
		"endpoints/" + name + "/172.18.0.10:15443": "weight=1 locality=r1// priority=0 health=unhealthy",
		"endpoints/empty":                          "none",
	}
	if diff := cmp.Diff(want, Normalize(snap)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNodeProto(t *testing.T) {
	n := Node{
		Type: "sidecar", IP: "10.1.0.20", Pod: "sleep-1", Namespace: "sample",
		Labels: map[string]string{"app": "sleep"}, Network: "network1", ClusterID: "cluster1",
		InterceptionMode: "REDIRECT", IstioVersion: "1.31-dev", WorkloadName: "sleep",
		PodPorts: []PodPort{{Name: "http", ContainerPort: 80, Protocol: "TCP"}},
	}
	p := n.Proto()
	if p.GetId() != "sidecar~10.1.0.20~sleep-1.sample~sample.svc.cluster.local" {
		t.Errorf("id %s", p.GetId())
	}
	md := p.GetMetadata().GetFields()
	for k, want := range map[string]string{
		"NAMESPACE": "sample", "NETWORK": "network1", "CLUSTER_ID": "cluster1", "INTERCEPTION_MODE": "REDIRECT",
		"ISTIO_VERSION": "1.31-dev", "POD_PORTS": `[{"name":"http","containerPort":80,"protocol":"TCP"}]`,
		"INSTANCE_IPS": "10.1.0.20", "OWNER": "kubernetes://apis/apps/v1/namespaces/sample/deployments/sleep",
	} {
		if got := md[k].GetStringValue(); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	if got := md["LABELS"].GetStructValue().GetFields()["app"].GetStringValue(); got != "sleep" {
		t.Errorf("LABELS app = %q, want sleep", got)
	}
}

// TestSANMatchers: an untyped matcher of a SPIFFE identity is the URI
// matcher Envoy would apply; anything else keeps its type.
func TestSANMatchers(t *testing.T) {
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	v := &tlsv3.CertificateValidationContext{
		MatchSubjectAltNames: []*matcherv3.StringMatcher{ //nolint:staticcheck // the deprecated field istiod sends.
			exact("spiffe://cluster.local/ns/a/sa/b"),
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://cluster.local/"}},
			exact("helloworld.sample.svc"),
		},
		MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: exact("x.y")}},
	}
	want := []string{"DNS:exact=x.y", "URI:exact=spiffe://cluster.local/ns/a/sa/b", "URI:prefix=spiffe://cluster.local/", "ANY:exact=helloworld.sample.svc"}
	if diff := cmp.Diff(want, sanMatchers(v)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
