package envoy

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// TestIstioNames pins the resource names to the home lab's (Istio's) exact
// strings: other tools and Istio proxies depend on them.
func TestIstioNames(t *testing.T) {
	svc := helloworld()
	port := svc.Ports[0]
	const (
		cluster = "outbound|5000||helloworld.sample.svc.cluster.local"
		sni     = "outbound_.5000_._.helloworld.sample.svc.cluster.local"
	)
	ew := GatewayListener([]*model.ServiceInfo{svc}, 15443)
	got := map[string]string{
		"cluster":                 Cluster(svc, port, ClusterOptions{}).GetName(),
		"cluster EDS":             Cluster(svc, port, ClusterOptions{}).GetEdsClusterConfig().GetServiceName(),
		"cluster SNI":             upstreamTLS(t, Cluster(svc, port, ClusterOptions{})).GetSni(),
		"sidecar listener":        SidecarListeners([]*model.ServiceInfo{svc})[0].GetName(),
		"sidecar route":           SidecarRoute(5000, []*model.ServiceInfo{svc}, "sample", "cluster1", AllowAny).GetName(),
		"virtual host":            SidecarRoute(5000, []*model.ServiceInfo{svc}, "sample", "cluster1", AllowAny).GetVirtualHosts()[0].GetName(),
		"east-west listener":      ew.GetName(),
		"east-west server name":   ew.GetFilterChains()[0].GetFilterChainMatch().GetServerNames()[0],
		"east-west tcp_proxy":     tcpProxy(t, ew).GetCluster(),
		"east-west cluster":       GatewayCluster(svc, port).GetName(),
		"east-west cluster EDS":   GatewayCluster(svc, port).GetEdsClusterConfig().GetServiceName(),
		"east-west cluster name":  GatewayClusterName(svc.Host, port.Port),
		"grpc listener":           GRPCListener(svc, port).GetName(),
		"grpc route":              GRPCRoute(svc, port).GetName(),
		"grpc cluster":            GRPCCluster(svc, port, ClusterOptions{}).GetName(),
		"grpc route target":       GRPCRoute(svc, port).GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(),
		"sidecar route target":    SidecarRoute(5000, []*model.ServiceInfo{svc}, "sample", "cluster1", AllowAny).GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(),
		"endpoints":               ClusterLoadAssignment(helloView()).GetClusterName(),
		"east-west endpoints":     GatewayClusterLoadAssignment(svc.Host, 5000, helloLocalView()).GetClusterName(),
		"grpc endpoints":          GRPCClusterLoadAssignment(helloView()).GetClusterName(),
		"sidecar route reference": unpackHCM(t, SidecarListeners([]*model.ServiceInfo{svc})[0].GetFilterChains()[0].GetFilters()[0]).GetRds().GetRouteConfigName(),
	}
	want := map[string]string{
		"cluster":                 cluster,
		"cluster EDS":             cluster,
		"cluster SNI":             sni,
		"sidecar listener":        "0.0.0.0_5000",
		"sidecar route":           "5000",
		"virtual host":            "helloworld.sample.svc.cluster.local:5000",
		"east-west listener":      "0.0.0.0_15443",
		"east-west server name":   sni,
		"east-west tcp_proxy":     sni,
		"east-west cluster":       sni,
		"east-west cluster EDS":   sni,
		"east-west cluster name":  sni,
		"grpc listener":           "helloworld.sample.svc.cluster.local:5000",
		"grpc route":              "helloworld.sample.svc.cluster.local:5000",
		"grpc cluster":            cluster,
		"grpc route target":       cluster,
		"sidecar route target":    cluster,
		"endpoints":               cluster,
		"east-west endpoints":     sni,
		"grpc endpoints":          cluster,
		"sidecar route reference": "5000",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}

func upstreamTLS(t *testing.T, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	for _, m := range c.GetTransportSocketMatches() {
		if m.GetName() != "tlsMode-istio" {
			continue
		}
		u := new(tlsv3.UpstreamTlsContext)
		if err := m.GetTransportSocket().GetTypedConfig().UnmarshalTo(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	t.Fatalf("cluster %s has no tlsMode-istio match", c.GetName())
	return nil
}

func tcpProxy(t *testing.T, l *listenerv3.Listener) *tcpproxyv3.TcpProxy {
	t.Helper()
	tp := new(tcpproxyv3.TcpProxy)
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestClusterOptions(t *testing.T) {
	svc := helloworld()
	svc.ServiceAccounts = []model.NamespacedName{{Namespace: "sample", Name: "hello-v1"}, {Namespace: "sample", Name: "hello-v2"}}
	port := svc.Ports[0]
	tests := []struct {
		name        string
		svc         *model.ServiceInfo
		o           ClusterOptions
		wantTimeout time.Duration
		wantSANs    []string
	}{
		{
			name:        "defaults",
			svc:         svc,
			wantTimeout: 10 * time.Second,
			wantSANs:    []string{"spiffe://cluster.local/ns/sample/sa/hello-v1", "spiffe://cluster.local/ns/sample/sa/hello-v2"},
		},
		{
			name:        "trust domain and timeout",
			svc:         svc,
			o:           ClusterOptions{ConnectTimeout: 2500 * time.Millisecond, TrustDomain: "example.org"},
			wantTimeout: 2500 * time.Millisecond,
			wantSANs:    []string{"spiffe://example.org/ns/sample/sa/hello-v1", "spiffe://example.org/ns/sample/sa/hello-v2"},
		},
		{
			name:        "no accounts known: no SAN check",
			svc:         &model.ServiceInfo{Host: "x.y.svc.cluster.local", Name: "x", Namespace: "y"},
			o:           ClusterOptions{ConnectTimeout: -time.Second},
			wantTimeout: 10 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Cluster(tt.svc, port, tt.o)
			validateDeep(t, c)
			if got := c.GetConnectTimeout().AsDuration(); got != tt.wantTimeout {
				t.Errorf("connect_timeout %v, want %v", got, tt.wantTimeout)
			}
			var sans []string
			for _, m := range upstreamTLS(t, c).GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
				if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
					t.Errorf("SAN matcher of type %v, want URI", m.GetSanType())
				}
				sans = append(sans, m.GetMatcher().GetExact())
			}
			if diff := cmp.Diff(tt.wantSANs, sans); diff != "" {
				t.Errorf("SANs (-want +got):\n%s", diff)
			}

			g := GRPCCluster(tt.svc, port, tt.o)
			validateDeep(t, g)
			if n := len(g.GetTransportSocketMatches()); n != 0 || g.GetTransportSocket() != nil {
				t.Errorf("gRPC cluster has %d transport socket matches and socket %v: grpc-go rejects them", n, g.GetTransportSocket())
			}
			if got := g.GetConnectTimeout().AsDuration(); got != tt.wantTimeout {
				t.Errorf("gRPC connect_timeout %v, want %v", got, tt.wantTimeout)
			}
			// Apart from TLS and the load balancer, the same cluster.
			plain := Cluster(tt.svc, port, tt.o)
			plain.TransportSocketMatches = nil
			plain.LbPolicy = g.GetLbPolicy()
			if diff := cmp.Diff(stableJSON(t, plain), stableJSON(t, g)); diff != "" {
				t.Errorf("gRPC cluster differs from the sidecar's beyond TLS:\n%s", diff)
			}
		})
	}
}

func TestGatewayClusterIsPlainTCP(t *testing.T) {
	c := GatewayCluster(helloworld(), helloworld().Ports[0])
	validateDeep(t, c)
	if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) != 0 {
		t.Error("the gateway cluster terminates TLS; it must pass it through")
	}
	if got := c.GetConnectTimeout().AsDuration(); got != DefaultConnectTimeout {
		t.Errorf("connect_timeout %v, want %v", got, DefaultConnectTimeout)
	}
}

// TestTypedInvalidUTF8 checks the documented fallback: a string that is
// not UTF-8 leaves the typed config empty (the proxy rejects it) instead of
// panicking.
func TestTypedInvalidUTF8(t *testing.T) {
	svc := &model.ServiceInfo{Host: "bad\xff.ns.svc.cluster.local", Name: "bad\xff", Namespace: "ns", Ports: []model.ServicePort{{Port: 80}}}
	l := GatewayListener([]*model.ServiceInfo{svc}, 15443)
	cfg := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig()
	if want := "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"; cfg.GetTypeUrl() != want {
		t.Errorf("type URL %q, want %q", cfg.GetTypeUrl(), want)
	}
	if len(cfg.GetValue()) != 0 {
		t.Errorf("typed config has %d bytes, want none", len(cfg.GetValue()))
	}
	if err := validateMessage(l.ProtoReflect()); err == nil {
		t.Error("the empty tcp_proxy config passes validation; the proxy would not flag it")
	}
}

// TestClusterLBPolicy: sidecar and gateway service clusters balance by
// LEAST_REQUEST, as istiod's do with no DestinationRule; proxyless gRPC
// clusters keep ROUND_ROBIN, which every grpc-go release accepts.
func TestClusterLBPolicy(t *testing.T) {
	svc := helloworld()
	port := svc.Ports[0]
	got := map[string]string{
		"sidecar": Cluster(svc, port, ClusterOptions{}).GetLbPolicy().String(),
		"gateway": GatewayCluster(svc, port).GetLbPolicy().String(),
		"grpc":    GRPCCluster(svc, port, ClusterOptions{}).GetLbPolicy().String(),
	}
	want := map[string]string{"sidecar": "LEAST_REQUEST", "gateway": "LEAST_REQUEST", "grpc": "ROUND_ROBIN"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lb_policy (-want +got):\n%s", diff)
	}
}
