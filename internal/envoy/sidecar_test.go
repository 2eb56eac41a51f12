package envoy

import (
	"maps"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// svcInfo is a service of the default domain with the given cluster IPs.
func svcInfo(ns, name string, ips map[model.ClusterID]string, ports ...uint32) *model.ServiceInfo {
	s := &model.ServiceInfo{
		Host:       model.ServiceHost(ns, name, ""),
		Namespace:  ns,
		Name:       name,
		ClusterIPs: ips,
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, model.ServicePort{Name: "p", Port: p})
	}
	return s
}

func TestRouteDomains(t *testing.T) {
	tests := []struct {
		name      string
		svc       *model.ServiceInfo
		namespace string
		cluster   model.ClusterID
		want      []string
	}{
		{
			name:      "own namespace: the home lab's list",
			svc:       helloworld(),
			namespace: "sample",
			cluster:   "cluster1",
			want: []string{
				"helloworld.sample.svc.cluster.local", "helloworld.sample.svc.cluster.local.",
				"helloworld",
				"helloworld.sample.svc",
				"helloworld.sample",
				"10.96.81.179",
			},
		},
		{
			name:      "other namespace: no bare name",
			svc:       helloworld(),
			namespace: "default",
			cluster:   "cluster2",
			want: []string{
				"helloworld.sample.svc.cluster.local", "helloworld.sample.svc.cluster.local.",
				"helloworld.sample.svc",
				"helloworld.sample",
				"10.97.12.4",
			},
		},
		{
			name:      "no service in the proxy's cluster: the first cluster's IP, as istiod",
			svc:       helloworld(),
			namespace: "default",
			cluster:   "cluster3",
			want: []string{
				"helloworld.sample.svc.cluster.local", "helloworld.sample.svc.cluster.local.",
				"helloworld.sample.svc",
				"helloworld.sample",
				"10.96.81.179",
			},
		},
		{
			name:      "headless service",
			svc:       svcInfo("db", "pg", map[model.ClusterID]string{"c1": "None"}, 5432),
			namespace: "db",
			cluster:   "c1",
			want: []string{
				"pg.db.svc.cluster.local", "pg.db.svc.cluster.local.",
				"pg", "pg.db.svc", "pg.db",
			},
		},
		{
			name:      "IPv6 cluster IP in brackets",
			svc:       svcInfo("db", "pg", map[model.ClusterID]string{"c1": "fd00:10:96::a"}, 5432),
			namespace: "other",
			cluster:   "c1",
			want: []string{
				"pg.db.svc.cluster.local", "pg.db.svc.cluster.local.",
				"pg.db.svc", "pg.db",
				"[fd00:10:96::a]",
			},
		},
		{
			name: "host not of Kubernetes form",
			svc: &model.ServiceInfo{
				Host: "api.example.com", Name: "api", Namespace: "ext",
				ClusterIPs: map[model.ClusterID]string{"c1": "10.0.0.1"},
			},
			namespace: "ext",
			cluster:   "c1",
			want:      []string{"api.example.com", "api.example.com.", "10.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := routeDomains(tt.svc, tt.namespace, tt.cluster)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("routeDomains (-want +got):\n%s", diff)
			}
		})
	}
}

// vhostDomains summarizes a route configuration as virtual host name →
// domains.
func vhostDomains(rc *routev3.RouteConfiguration) map[string][]string {
	out := make(map[string][]string, len(rc.GetVirtualHosts()))
	for _, vh := range rc.GetVirtualHosts() {
		out[vh.GetName()] = vh.GetDomains()
	}
	return out
}

func TestSidecarRoute(t *testing.T) {
	c1 := func(ip string) map[model.ClusterID]string { return map[model.ClusterID]string{"c1": ip} }
	tests := []struct {
		name     string
		port     uint32
		services []*model.ServiceInfo
		want     map[string][]string
	}{
		{
			name: "same name in two namespaces: the bare name goes to the proxy's",
			port: 80,
			services: []*model.ServiceInfo{
				svcInfo("team-b", "web", c1("10.96.0.2"), 80),
				svcInfo("team-a", "web", c1("10.96.0.1"), 80),
			},
			want: map[string][]string{
				"web.team-a.svc.cluster.local:80": {
					"web.team-a.svc.cluster.local", "web.team-a.svc.cluster.local.", "web",
					"web.team-a.svc", "web.team-a", "10.96.0.1",
				},
				"web.team-b.svc.cluster.local:80": {
					"web.team-b.svc.cluster.local", "web.team-b.svc.cluster.local.",
					"web.team-b.svc", "web.team-b", "10.96.0.2",
				},
			},
		},
		{
			name: "a cluster IP claimed twice stays with the first host",
			port: 80,
			services: []*model.ServiceInfo{
				svcInfo("team-a", "new", c1("10.96.0.1"), 80),
				svcInfo("team-a", "old", c1("10.96.0.1"), 80),
			},
			want: map[string][]string{
				"new.team-a.svc.cluster.local:80": {
					"new.team-a.svc.cluster.local", "new.team-a.svc.cluster.local.", "new",
					"new.team-a.svc", "new.team-a", "10.96.0.1",
				},
				"old.team-a.svc.cluster.local:80": {
					"old.team-a.svc.cluster.local", "old.team-a.svc.cluster.local.", "old",
					"old.team-a.svc", "old.team-a",
				},
			},
		},
		{
			name: "only services with the port; a host listed twice once; nil skipped",
			port: 8080,
			services: []*model.ServiceInfo{
				svcInfo("team-a", "api", c1("10.96.0.3"), 8080),
				nil,
				svcInfo("team-a", "web", c1("10.96.0.1"), 80),
				svcInfo("team-a", "api", c1("10.96.0.4"), 8080),
			},
			want: map[string][]string{
				"api.team-a.svc.cluster.local:8080": {
					"api.team-a.svc.cluster.local", "api.team-a.svc.cluster.local.", "api",
					"api.team-a.svc", "api.team-a", "10.96.0.3",
				},
			},
		},
		{
			name: "no service with the port",
			port: 9090,
			services: []*model.ServiceInfo{
				svcInfo("team-a", "web", c1("10.96.0.1"), 80),
			},
			want: map[string][]string{},
		},
	}
	catchAll := map[string][]string{"allow_any": {"*"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := make([]*model.ServiceInfo, len(tt.services))
			copy(before, tt.services)
			rc := SidecarRoute(tt.port, tt.services, "team-a", "c1", AllowAny)
			validateDeep(t, rc)
			if got, want := rc.GetName(), SidecarRouteName(tt.port); got != want {
				t.Errorf("name %q, want %q", got, want)
			}
			maps.Copy(tt.want, catchAll)
			if diff := cmp.Diff(tt.want, vhostDomains(rc)); diff != "" {
				t.Errorf("virtual hosts (-want +got):\n%s", diff)
			}
			seen := map[string]string{}
			vhosts := rc.GetVirtualHosts()
			if n := len(vhosts); n == 0 || vhosts[n-1].GetName() != "allow_any" {
				t.Fatalf("the last virtual host is not the catch-all allow_any: %v", vhosts)
			}
			vhosts = vhosts[:len(vhosts)-1]
			for _, vh := range vhosts {
				for _, d := range vh.GetDomains() {
					if other, dup := seen[d]; dup {
						t.Errorf("domain %q in both %s and %s: Envoy rejects the route configuration", d, other, vh.GetName())
					}
					seen[d] = vh.GetName()
				}
				want := "outbound|" + SidecarRouteName(tt.port) + "||" + vh.GetName()[:len(vh.GetName())-len(SidecarRouteName(tt.port))-1]
				if got := vh.GetRoutes()[0].GetRoute().GetCluster(); got != want {
					t.Errorf("%s routes to %q, want %q", vh.GetName(), got, want)
				}
			}
			for i := 1; i < len(vhosts); i++ {
				if vhosts[i-1].Name >= vhosts[i].Name {
					t.Errorf("virtual hosts not sorted: %s before %s", vhosts[i-1].Name, vhosts[i].Name)
				}
			}
			if diff := cmp.Diff(before, tt.services); diff != "" {
				t.Errorf("SidecarRoute changed its input (-before +after):\n%s", diff)
			}
		})
	}
}

// TestSidecarRouteCatchAll: a request whose Host names no service goes
// to its original destination under ALLOW_ANY and is answered 502 under
// REGISTRY_ONLY, from the last virtual host, as istiod's allow_any and
// block_all.
func TestSidecarRouteCatchAll(t *testing.T) {
	web := svcInfo("team-a", "web", map[model.ClusterID]string{"c1": "10.96.0.1"}, 80)
	type summary struct {
		Name    string
		Domains []string
		Cluster string
		Status  uint32
	}
	for _, tt := range []struct {
		policy OutboundTrafficPolicy
		want   summary
	}{
		{AllowAny, summary{Name: "allow_any", Domains: []string{"*"}, Cluster: PassthroughCluster}},
		{RegistryOnly, summary{Name: "block_all", Domains: []string{"*"}, Status: 502}},
	} {
		rc := SidecarRoute(80, []*model.ServiceInfo{web}, "team-a", "c1", tt.policy)
		validateDeep(t, rc)
		vh := rc.GetVirtualHosts()[len(rc.GetVirtualHosts())-1]
		r := vh.GetRoutes()[0]
		got := summary{Name: vh.GetName(), Domains: vh.GetDomains(), Cluster: r.GetRoute().GetCluster(), Status: r.GetDirectResponse().GetStatus()}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%v: catch-all (-want +got):\n%s", tt.policy, diff)
		}
		if r.GetMatch().GetPrefix() != "/" {
			t.Errorf("%v: catch-all matches %v, want every path", tt.policy, r.GetMatch())
		}
	}
}

func TestSidecarListeners(t *testing.T) {
	udp := svcInfo("kube-system", "dns", nil)
	udp.Ports = []model.ServicePort{{Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "dns-tcp", Port: 53, Protocol: "TCP"}}
	sctp := svcInfo("team-a", "sig", nil)
	sctp.Ports = []model.ServicePort{{Name: "sig", Port: 3868, Protocol: "SCTP"}}
	services := []*model.ServiceInfo{
		svcInfo("team-a", "web", nil, 8080, 80),
		svcInfo("team-b", "web", nil, 80),
		// The east-west gateway's ports: status-port 15021 is the proxy's own.
		svcInfo("istio-system", "istio-eastwestgateway", nil, 15021, 15443, 15012),
		udp, sctp,
	}
	db := svcInfo("data", "db", nil)
	db.Ports = []model.ServicePort{{Name: "tcp-db", Port: 5432}, {Name: "https", Port: 443}}
	db2 := svcInfo("data", "a-db", nil)
	db2.Ports = []model.ServicePort{{Name: "mysql", Port: 5432}}
	web443 := svcInfo("team-c", "web", nil)
	web443.Ports = []model.ServicePort{{Name: "http", Port: 443}}
	services = append(services, db, db2, web443, nil)
	ls := SidecarListeners(services)
	var names, routes []string
	for _, l := range ls {
		validateDeep(t, l)
		names = append(names, l.GetName())
		f := l.GetFilterChains()[0].GetFilters()[0]
		if f.GetName() == wellknown.TCPProxy {
			var tp tcpproxyv3.TcpProxy
			if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
				t.Fatal(err)
			}
			routes = append(routes, "tcp:"+tp.GetCluster())
			continue
		}
		hcm := unpackHCM(t, f)
		routes = append(routes, hcm.GetRds().GetRouteConfigName())
		if got := l.GetAddress().GetSocketAddress().GetPortValue(); OutboundListenerName(got) != l.GetName() {
			t.Errorf("listener %s binds port %d", l.GetName(), got)
		}
	}
	wantNames := []string{"0.0.0.0_53", "0.0.0.0_80", "0.0.0.0_443", "0.0.0.0_5432", "0.0.0.0_8080", "0.0.0.0_15012", "0.0.0.0_15443"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	// TCP-only ports get tcp_proxy (53: an unnamed port on a well-known TCP
	// port; 5432: two TCP services, the first host wins); a port where one
	// service is HTTP (443) or unknown (p<port>) an HTTP connection manager.
	want := []string{
		"tcp:outbound|53||dns.kube-system.svc.cluster.local", "80", "443",
		"tcp:outbound|5432||a-db.data.svc.cluster.local", "8080", "15012", "15443",
	}
	if diff := cmp.Diff(want, routes); diff != "" {
		t.Errorf("RDS names (-want +got):\n%s", diff)
	}
	if got := SidecarListeners(nil); len(got) != 0 {
		t.Errorf("SidecarListeners(nil) = %d listeners", len(got))
	}
}

func unpackHCM(t *testing.T, f *listenerv3.Filter) *hcmv3.HttpConnectionManager {
	t.Helper()
	hcm := new(hcmv3.HttpConnectionManager)
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatalf("filter %s: %v", f.GetName(), err)
	}
	return hcm
}
