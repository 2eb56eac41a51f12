package gateway

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

const (
	helloHost model.Host = "helloworld.sample.svc.cluster.local"
	apiHost   model.Host = "api.team-a.svc.cluster.local"
)

func helloService() *model.ServiceInfo {
	return &model.ServiceInfo{
		Host: helloHost, Namespace: "sample", Name: "helloworld",
		Ports: []model.ServicePort{{Name: "http", Port: 5000}},
	}
}

func apiService() *model.ServiceInfo {
	return &model.ServiceInfo{
		Host: apiHost, Namespace: "team-a", Name: "api",
		Ports: []model.ServicePort{{Name: "grpc", Port: 9090}, {Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "http", Port: 8080}},
	}
}

// chain is a filter chain passing server names to cluster with tcp_proxy.
func chain(t *testing.T, cluster string, names ...string) *listenerv3.FilterChain {
	t.Helper()
	return &listenerv3.FilterChain{
		FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: names},
		Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})},
		}},
	}
}

func ldsListener(chains ...*listenerv3.FilterChain) *listenerv3.Listener {
	return &listenerv3.Listener{Name: "0.0.0.0_15443", FilterChains: chains}
}

func istioALPN() []string {
	return []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
}

func TestDecodeGatewayResources(t *testing.T) {
	helloSNI := model.SNI(helloHost, 5000, "")
	l := envoy.GatewayListener([]*model.ServiceInfo{apiService(), helloService()}, model.DefaultGatewayPort)
	got, err := decodeListener(l)
	if err != nil {
		t.Fatal(err)
	}
	want := &listenerConfig{name: "0.0.0.0_15443", routes: []Route{
		{ServerNames: []string{model.SNI(apiHost, 8080, "")}, ALPN: istioALPN(), ClusterName: model.SNI(apiHost, 8080, "")},
		{ServerNames: []string{model.SNI(apiHost, 9090, "")}, ALPN: istioALPN(), ClusterName: model.SNI(apiHost, 9090, "")},
		{ServerNames: []string{helloSNI}, ALPN: istioALPN(), ClusterName: helloSNI},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(listenerConfig{})); diff != "" {
		t.Errorf("listener (-want +got):\n%s", diff)
	}

	cc, err := decodeCluster(envoy.GatewayCluster(helloService(), helloService().Ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(clusterConfig{connectTimeout: envoy.DefaultConnectTimeout, edsName: helloSNI}, cc, cmp.AllowUnexported(clusterConfig{})); diff != "" {
		t.Errorf("cluster (-want +got):\n%s", diff)
	}

	view := model.View{Endpoints: []model.ViewEndpoint{
		{Address: "10.244.1.5", Port: 5000, Weight: 1, Loc: model.Locality{Region: "r2", Zone: "z2"}, TLSMode: model.TLSModeIstio},
		{Address: "10.244.2.9", Port: 5000, Weight: 3, Loc: model.Locality{Region: "r1"}, TLSMode: model.TLSModeIstio},
	}}
	cla := envoy.GatewayClusterLoadAssignment(helloHost, 5000, view)
	if cla.GetClusterName() != helloSNI {
		t.Fatalf("EDS resource %q, want %q", cla.GetClusterName(), helloSNI)
	}
	eps, err := decodeAssignment(cla)
	if err != nil {
		t.Fatal(err)
	}
	wantEps := []Endpoint{ // the builder orders by locality: r1 before r2
		newEndpoint(netip.MustParseAddrPort("10.244.2.9:5000"), 3),
		newEndpoint(netip.MustParseAddrPort("10.244.1.5:5000"), 1),
	}
	if diff := cmp.Diff(wantEps, eps, cmp.AllowUnexported(Endpoint{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

func TestDecodeListenerRejects(t *testing.T) {
	hello := model.SNI(helloHost, 5000, "")
	tests := []struct {
		name        string
		listener    func() *listenerv3.Listener
		wantErr     string
		unsupported bool // the error wraps errUnsupported
	}{
		{
			name: "a filter chain that terminates TLS",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.TransportSocket = &corev3.TransportSocket{
					Name:       "envoy.transport_sockets.tls",
					ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &tlsv3.DownstreamTlsContext{})},
				}
				return ldsListener(fc)
			},
			wantErr:     "terminates TLS",
			unsupported: true,
		},
		{
			name: "a match on the destination port",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(15443)
				return ldsListener(fc)
			},
			wantErr:     "matches on addresses or ports",
			unsupported: true,
		},
		{
			name: "transport protocol raw_buffer",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.FilterChainMatch.TransportProtocol = "raw_buffer"
				return ldsListener(fc)
			},
			wantErr:     `transport protocol "raw_buffer"`,
			unsupported: true,
		},
		{
			name: "a network filter before tcp_proxy",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.Filters = append([]*listenerv3.Filter{{Name: "istio.stats"}}, fc.Filters...)
				return ldsListener(fc)
			},
			wantErr:     "has 2 network filters",
			unsupported: true,
		},
		{
			name: "another network filter",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.Filters[0] = &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager"}
				return ldsListener(fc)
			},
			wantErr:     "network filter envoy.filters.network.http_connection_manager",
			unsupported: true,
		},
		{
			name: "tcp_proxy to weighted clusters",
			listener: func() *listenerv3.Listener {
				fc := chain(t, hello, hello)
				fc.Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: testkit.MustAny(t, &tcpproxyv3.TcpProxy{
					StatPrefix: "x",
					ClusterSpecifier: &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{
						Clusters: []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 1}},
					}},
				})}
				return ldsListener(fc)
			},
			wantErr:     "weighted_clusters",
			unsupported: true,
		},
		{
			name: "the original destination listener filter",
			listener: func() *listenerv3.Listener {
				l := ldsListener(chain(t, hello, hello))
				l.ListenerFilters = []*listenerv3.ListenerFilter{{
					Name:       "envoy.filters.listener.original_dst",
					ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: testkit.MustAny(t, &originaldstv3.OriginalDst{})},
				}}
				return l
			},
			wantErr:     "only the TLS inspector is",
			unsupported: true,
		},
		{
			name: "a partial wildcard server name",
			listener: func() *listenerv3.Listener {
				return ldsListener(chain(t, hello, "out*.example.com"))
			},
			wantErr:     `server name "out*.example.com"`,
			unsupported: true,
		},
		{
			name: "two chains with the same match",
			listener: func() *listenerv3.Listener {
				return ldsListener(chain(t, "a", hello, "x.example"), chain(t, "b", "y.example", hello))
			},
			wantErr: "filter chains 0 and 1 have the same match",
		},
		{
			name: "a proxyless gRPC API listener",
			listener: func() *listenerv3.Listener {
				return envoy.GRPCListener(helloService(), helloService().Ports[0])
			},
			wantErr:     "is an API listener",
			unsupported: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeListener(tt.listener())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			if got := errors.Is(err, errUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(err, errUnsupported) = %v, want %v (%v)", got, tt.unsupported, err)
			}
		})
	}
}

func TestDecodeCluster(t *testing.T) {
	hello := helloService()
	sidecar := envoy.Cluster(hello, hello.Ports[0], envoy.ClusterOptions{})
	static := &clusterv3.Cluster{
		Name:                 "static",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LbPolicy:             clusterv3.Cluster_LEAST_REQUEST,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "static", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.1", 80, 0, corev3.HealthStatus_UNKNOWN)},
		}}},
	}
	eds := func(mut func(c *clusterv3.Cluster)) *clusterv3.Cluster {
		c := envoy.GatewayCluster(hello, hello.Ports[0])
		mut(c)
		return c
	}
	tests := []struct {
		name    string
		cluster *clusterv3.Cluster
		want    clusterConfig
		wantErr string
	}{
		{
			name:    "STATIC with its endpoints, Envoy's default connect timeout",
			cluster: static,
			want:    clusterConfig{connectTimeout: 5 * time.Second, static: []Endpoint{newEndpoint(netip.MustParseAddrPort("10.0.0.1:80"), 1)}},
		},
		{
			name: "EDS named by service_name",
			cluster: eds(func(c *clusterv3.Cluster) {
				c.EdsClusterConfig.ServiceName = "other"
				c.ConnectTimeout = durationpb.New(time.Second)
			}),
			want: clusterConfig{connectTimeout: time.Second, edsName: "other"},
		},
		{
			name:    "EDS named by the cluster",
			cluster: eds(func(c *clusterv3.Cluster) { c.EdsClusterConfig.ServiceName = "" }),
			want:    clusterConfig{connectTimeout: envoy.DefaultConnectTimeout, edsName: model.SNI(helloHost, 5000, "")},
		},
		{name: "a sidecar's cluster originates mTLS", cluster: sidecar, wantErr: `transport socket match "tlsMode-istio" uses envoy.transport_sockets.tls`},
		{name: "ring hash", cluster: eds(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RING_HASH }), wantErr: "lb_policy RING_HASH"},
		{name: "DNS", cluster: eds(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		}), wantErr: "type STRICT_DNS"},
		{
			name: "EDS from elsewhere than ADS",
			cluster: eds(func(c *clusterv3.Cluster) {
				c.EdsClusterConfig.EdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{Path: "/eds.yaml"}}}
			}),
			wantErr: "other than ADS",
		},
		{name: "upstream filters", cluster: eds(func(c *clusterv3.Cluster) { c.Filters = []*clusterv3.Filter{{Name: "x"}} }), wantErr: "upstream network filters"},
		{name: "a zero connect timeout", cluster: eds(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(0) }), wantErr: "want a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCluster(tt.cluster)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(clusterConfig{}, Endpoint{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("cluster (-want +got):\n%s", diff)
			}
		})
	}
}

func lbEndpoint(ip string, port, weight uint32, health corev3.HealthStatus) *endpointv3.LbEndpoint {
	lb := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: testkit.SocketAddress(ip, port)}},
		HealthStatus:   health,
	}
	if weight != 0 {
		lb.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return lb
}

func TestDecodeAssignment(t *testing.T) {
	ep := func(s string, w uint32) Endpoint { return newEndpoint(netip.MustParseAddrPort(s), w) }
	loc := func(pri uint32, lbs ...*endpointv3.LbEndpoint) *endpointv3.LocalityLbEndpoints {
		return &endpointv3.LocalityLbEndpoints{Priority: pri, LbEndpoints: lbs}
	}
	tests := []struct {
		name    string
		cla     *endpointv3.ClusterLoadAssignment
		want    []Endpoint
		wantErr string
	}{
		{name: "empty", cla: &endpointv3.ClusterLoadAssignment{ClusterName: "c"}, want: nil},
		{
			name: "weights (none means 1), across localities",
			cla: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{
				loc(0, lbEndpoint("10.0.0.1", 80, 0, corev3.HealthStatus_HEALTHY), lbEndpoint("10.0.0.2", 80, 4, corev3.HealthStatus_HEALTHY)),
				loc(0, lbEndpoint("10.0.1.1", 8080, 2, corev3.HealthStatus_DEGRADED)),
			}},
			want: []Endpoint{ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 4), ep("10.0.1.1:8080", 2)},
		},
		{
			name: "unhealthy, draining and timed-out endpoints are left out",
			cla: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{loc(0,
				lbEndpoint("10.0.0.1", 80, 1, corev3.HealthStatus_UNHEALTHY),
				lbEndpoint("10.0.0.2", 80, 1, corev3.HealthStatus_DRAINING),
				lbEndpoint("10.0.0.3", 80, 1, corev3.HealthStatus_TIMEOUT),
				lbEndpoint("10.0.0.4", 80, 1, corev3.HealthStatus_UNKNOWN),
			)}},
			want: []Endpoint{ep("10.0.0.4:80", 1)},
		},
		{
			name: "the best priority with a usable endpoint wins",
			cla: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{
				loc(2, lbEndpoint("10.0.2.1", 80, 1, corev3.HealthStatus_HEALTHY)),
				loc(0, lbEndpoint("10.0.0.1", 80, 1, corev3.HealthStatus_UNHEALTHY)),
				loc(1, lbEndpoint("10.0.1.1", 80, 1, corev3.HealthStatus_HEALTHY), lbEndpoint("10.0.1.2", 80, 1, corev3.HealthStatus_HEALTHY)),
			}},
			want: []Endpoint{ep("10.0.1.1:80", 1), ep("10.0.1.2:80", 1)},
		},
		{
			name: "IPv6 and IPv4-mapped addresses",
			cla: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{loc(0,
				lbEndpoint("fd00::1", 443, 1, corev3.HealthStatus_HEALTHY), lbEndpoint("::ffff:10.0.0.9", 443, 1, corev3.HealthStatus_HEALTHY),
			)}},
			want: []Endpoint{ep("[fd00::1]:443", 1), ep("10.0.0.9:443", 1)},
		},
		{
			name:    "a host name",
			cla:     &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{loc(0, lbEndpoint("backend.example", 80, 1, 0))}},
			wantErr: `"backend.example" is not an IP address`,
		},
		{
			name: "weight 0",
			cla: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{loc(0, func() *endpointv3.LbEndpoint {
				e := lbEndpoint("10.0.0.1", 80, 0, 0)
				e.LoadBalancingWeight = wrapperspb.UInt32(0)
				return e
			}())}},
			wantErr: "weighs 0",
		},
		{
			name:    "port 0",
			cla:     &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{loc(0, lbEndpoint("10.0.0.1", 0, 1, 0))}},
			wantErr: "no port number",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAssignment(tt.cla)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Endpoint{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// routingListener exercises every level of the filter chain match.
func routingListener(t *testing.T) *listenerv3.Listener {
	alpn := func(fc *listenerv3.FilterChain, protos ...string) *listenerv3.FilterChain {
		fc.FilterChainMatch.ApplicationProtocols = protos
		return fc
	}
	tlsOnly := func(fc *listenerv3.FilterChain) *listenerv3.FilterChain {
		fc.FilterChainMatch.TransportProtocol = "tls"
		return fc
	}
	l := ldsListener(
		alpn(chain(t, "hello-istio", "outbound_.5000_._.helloworld.sample.svc.cluster.local"), "istio", "istio-peer-exchange"),
		alpn(chain(t, "hello-h2", "outbound_.5000_._.helloworld.sample.svc.cluster.local"), "h2"),
		chain(t, "wild-deep", "*.b.example.com"),
		chain(t, "wild", "*.example.com"),
		chain(t, "exact", "a.b.example.com", "other.example.net"),
		tlsOnly(chain(t, "tls-any", "mixed.example")),
		alpn(chain(t, "plain-h2", "mixed.example"), "h2"),
		chain(t, "catch-all"),
		alpn(chain(t, "missing", "missing.example"), "istio"),
	)
	l.DefaultFilterChain = &listenerv3.FilterChain{Filters: chain(t, "default").Filters}
	return l
}

func TestTableRoute(t *testing.T) {
	lc, err := decodeListener(routingListener(t))
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]clusterConfig{}
	for _, n := range []string{"hello-istio", "hello-h2", "wild-deep", "wild", "exact", "tls-any", "plain-h2", "catch-all", "default"} {
		clusters[n] = clusterConfig{connectTimeout: time.Second, edsName: n}
	}
	tbl := buildTable(tableInputs{listeners: listeners(lc), clusters: clusters}, nil)

	tests := []struct {
		sni  string
		alpn []string
		want string // the route's cluster name; "" for no route
	}{
		{"outbound_.5000_._.helloworld.sample.svc.cluster.local", []string{"istio"}, "hello-istio"},
		{"outbound_.5000_._.helloworld.sample.svc.cluster.local", []string{"istio-peer-exchange", "istio"}, "hello-istio"},
		{"outbound_.5000_._.helloworld.sample.svc.cluster.local", []string{"h2", "istio"}, "hello-h2"},
		// The name matched; no chain takes its ALPN: Envoy does not fall
		// back to the catch-all, only to the default chain.
		{"outbound_.5000_._.helloworld.sample.svc.cluster.local", []string{"http/1.1"}, "default"},
		{"outbound_.5000_._.helloworld.sample.svc.cluster.local", nil, "default"},
		{"a.b.example.com", nil, "exact"},
		{"x.b.example.com", nil, "wild-deep"},
		{"y.x.b.example.com", nil, "wild-deep"},
		{"b.example.com", nil, "wild"},
		{"z.example.com", []string{"h2"}, "wild"},
		{"example.com", nil, "catch-all"},
		{"other.example.net", nil, "exact"},
		// A chain for transport protocol tls ranks above one without,
		// whatever the ALPN.
		{"mixed.example", []string{"h2"}, "tls-any"},
		{"unknown.example", []string{"istio"}, "catch-all"},
		{"", nil, "catch-all"},
		{"missing.example", []string{"istio"}, "missing"},
	}
	for _, tt := range tests {
		r := tbl.Route(tt.sni, tt.alpn)
		got := ""
		if r != nil {
			got = r.ClusterName
		}
		if got != tt.want {
			t.Errorf("Route(%q, %q) = %q, want %q", tt.sni, tt.alpn, got, tt.want)
		}
	}
	if r := tbl.Route("missing.example", []string{"istio"}); r.Cluster != nil {
		t.Errorf("route to a cluster CDS does not hold resolved to %v", r.Cluster)
	}

	// Without the catch-all and the default chain, an unknown name has no
	// route.
	l := ldsListener(chain(t, "hello", "outbound_.5000_._.helloworld.sample.svc.cluster.local"))
	lc, err = decodeListener(l)
	if err != nil {
		t.Fatal(err)
	}
	tbl = buildTable(tableInputs{listeners: listeners(lc), clusters: clusters}, nil)
	if r := tbl.Route("unknown.example", nil); r != nil {
		t.Errorf("unknown SNI routed to %q", r.ClusterName)
	}
	if r := tbl.Route("", nil); r != nil {
		t.Errorf("no SNI routed to %q", r.ClusterName)
	}
	if r := (*Table)(nil).Route("x", nil); r != nil {
		t.Error("the nil table routes")
	}
}

func TestBuildTableReusesClusters(t *testing.T) {
	ep := func(s string, w uint32) Endpoint { return newEndpoint(netip.MustParseAddrPort(s), w) }
	lc, err := decodeListener(ldsListener(chain(t, "a", "a.example"), chain(t, "b", "b.example")))
	if err != nil {
		t.Fatal(err)
	}
	in := tableInputs{
		versions:  Versions{Listeners: "1", Clusters: "1", Endpoints: "1"},
		listeners: listeners(lc),
		clusters: map[string]clusterConfig{
			"a": {connectTimeout: time.Second, edsName: "a"},
			"b": {connectTimeout: time.Second, edsName: "b"},
		},
		endpoints: map[string][]Endpoint{
			"a": {ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 1)},
			"b": {ep("10.0.1.1:80", 1)},
		},
	}
	t1 := buildTable(in, nil)
	t1.Clusters["a"].stats.connections.Add(7)
	if e, _ := t1.Clusters["a"].pick(); e.Address.String() != "10.0.0.1:80" {
		t.Fatalf("first pick %v", e.Address)
	}

	in.versions.Endpoints = "2"
	in.endpoints = map[string][]Endpoint{
		"a": {ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 1)}, // unchanged
		"b": {ep("10.0.1.1:80", 1), ep("10.0.1.2:80", 1)},
	}
	t2 := buildTable(in, t1)
	if t2.Clusters["a"] != t1.Clusters["a"] {
		t.Error("cluster a, unchanged, was rebuilt")
	}
	if e, _ := t2.Clusters["a"].pick(); e.Address.String() != "10.0.0.2:80" {
		t.Errorf("second pick %v: the balancer's position was lost", e.Address)
	}
	if t2.Clusters["b"] == t1.Clusters["b"] || len(t2.Clusters["b"].Endpoints) != 2 {
		t.Error("cluster b, changed, was not rebuilt")
	}
	if t2.Clusters["b"].stats != t1.Clusters["b"].stats {
		t.Error("cluster b's counters were not carried over")
	}
	if t2.Routes[1].Cluster != t2.Clusters["b"] {
		t.Error("route b does not point at the new cluster b")
	}
	if t2.Versions.Endpoints != "2" || t2.Listener != "0.0.0.0_15443" {
		t.Errorf("versions %+v, listener %q", t2.Versions, t2.Listener)
	}

	// A connect timeout change rebuilds; a removed cluster is gone and
	// its route unresolved.
	in.clusters = map[string]clusterConfig{"a": {connectTimeout: 2 * time.Second, edsName: "a"}}
	t3 := buildTable(in, t2)
	if t3.Clusters["a"] == t2.Clusters["a"] || t3.Clusters["a"].ConnectTimeout != 2*time.Second {
		t.Error("cluster a with a new connect timeout was not rebuilt")
	}
	if t3.Clusters["a"].stats.connections.Load() != 7 {
		t.Error("cluster a's counters were lost")
	}
	if _, ok := t3.Clusters["b"]; ok || t3.Routes[1].Cluster != nil {
		t.Error("cluster b, removed from CDS, is still routed to")
	}

	// No endpoints: no pick.
	in.endpoints = map[string][]Endpoint{}
	if _, ok := buildTable(in, t3).Clusters["a"].pick(); ok {
		t.Error("picked an endpoint of a cluster without endpoints")
	}
}

// listeners indexes decoded listeners by name, as tableInputs holds them.
func listeners(lcs ...*listenerConfig) map[string]*listenerConfig {
	m := make(map[string]*listenerConfig, len(lcs))
	for _, lc := range lcs {
		m[lc.name] = lc
	}
	return m
}

// buildTable builds the table of the gateway's usual single listener,
// 0.0.0.0_15443.
func buildTable(in tableInputs, prev *Table) *Table {
	var prevs []*Table
	if prev != nil {
		prevs = []*Table{prev}
	}
	return buildTables(in, []string{"0.0.0.0_15443"}, prevs)[0]
}

// TestBuildTablesPerListener: each listener gets the routes of its own
// LDS listener over one shared set of clusters; a listener LDS lacks gets
// an empty table.
func TestBuildTablesPerListener(t *testing.T) {
	main, err := decodeListener(ldsListener(chain(t, "hello", helloSNI)))
	if err != nil {
		t.Fatal(err)
	}
	cpl := ldsListener(chain(t, "cp"))
	cpl.Name = "0.0.0.0_15012"
	cp, err := decodeListener(cpl)
	if err != nil {
		t.Fatal(err)
	}
	in := tableInputs{
		versions:  Versions{Listeners: "1"},
		listeners: listeners(main, cp),
		clusters: map[string]clusterConfig{
			"hello": {connectTimeout: time.Second, static: []Endpoint{newEndpoint(netip.MustParseAddrPort("10.0.0.1:5000"), 1)}},
			"cp":    {connectTimeout: time.Second, static: []Endpoint{newEndpoint(netip.MustParseAddrPort("10.0.0.2:15012"), 1)}},
		},
	}
	names := []string{"0.0.0.0_15443", "0.0.0.0_15012", "0.0.0.0_9999"}
	tables := buildTables(in, names, nil)
	if len(tables) != 3 {
		t.Fatalf("%d tables, want 3", len(tables))
	}
	type row struct{ Listener, SNI, Cluster string }
	var got []row
	for _, tbl := range tables {
		for _, sni := range []string{helloSNI, "istiod-remote.istio-system.svc"} {
			r := row{Listener: tbl.Listener, SNI: sni}
			if rt := tbl.Route(sni, nil); rt != nil && rt.Cluster != nil {
				r.Cluster = rt.Cluster.Name
			}
			got = append(got, r)
		}
	}
	want := []row{
		{"0.0.0.0_15443", helloSNI, "hello"},
		{"0.0.0.0_15443", "istiod-remote.istio-system.svc", ""},
		{"0.0.0.0_15012", helloSNI, "cp"},
		{"0.0.0.0_15012", "istiod-remote.istio-system.svc", "cp"},
		{"", helloSNI, ""},
		{"", "istiod-remote.istio-system.svc", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes per listener (-want +got):\n%s", diff)
	}
	if tables[0].Clusters["cp"] != tables[1].Clusters["cp"] || tables[2].Clusters["hello"] != tables[0].Clusters["hello"] {
		t.Error("the listeners' tables do not share their clusters")
	}
	next := buildTables(in, names, tables)
	if next[1].Clusters["cp"] != tables[1].Clusters["cp"] {
		t.Error("an unchanged cluster was rebuilt")
	}
}
