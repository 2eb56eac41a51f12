package xds

import (
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// TestCapturedViews: a captured sidecar's listeners and clusters are
// built on first use, and a publish keeps them up to date: a TCP service
// gets its VIP_PORT listener with tcp_proxy (not an HTTP connection
// manager), an HTTP service its 0.0.0.0_PORT listener; the virtual
// listeners and passthrough clusters are there from the start.
func TestCapturedViews(t *testing.T) {
	m := newMesh(t, Config{OutboundTrafficPolicy: envoy.RegistryOnly})
	m.store.UpsertService(&model.Service{
		Cluster: cluster1, Namespace: "sample", Name: "helloworld", Type: model.ServiceTypeClusterIP, ClusterIP: "10.1.100.1",
		Ports: []model.ServicePort{{Name: "http", Port: helloPort}},
	})
	m.publish()
	p := envoy.Proxy{
		Role: envoy.RoleSidecar, Network: network1, Cluster: cluster1, Namespace: "sample",
		Interception: envoy.InterceptionRedirect, PodPorts: []envoy.PodPort{{Name: "http", Port: 8080}},
	}
	ldsKey, _ := keyFor(p, ldsType)
	cdsKey, _ := keyFor(p, cdsType)
	rdsKey, _ := keyFor(p, rdsType)
	lds, cds, rds := m.srv.viewFor(ldsKey), m.srv.viewFor(cdsKey), m.srv.viewFor(rdsKey)
	names := func(v *view) []string {
		var out []string
		for n, r := range v.cache.GetResources() {
			if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s: %v", n, err)
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	check := func(what string, v *view, want []string) {
		t.Helper()
		if diff := cmp.Diff(want, names(v)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	check("listeners", lds, []string{"0.0.0.0_5000", "virtualInbound", "virtualOutbound"})
	check("clusters", cds, []string{"BlackHoleCluster", "InboundPassthroughCluster", "PassthroughCluster", "inbound|8080||", helloCluster})

	// A TCP database and a service with an unnamed port.
	m.store.UpsertService(&model.Service{
		Cluster: cluster1, Namespace: "data", Name: "db", Type: model.ServiceTypeClusterIP, ClusterIP: "10.1.100.2",
		Ports: []model.ServicePort{{Name: "tcp-mysql", Port: 3306}, {Name: "https", Port: 443}},
	})
	m.store.UpsertService(&model.Service{
		Cluster: cluster1, Namespace: "web", Name: "web", Type: model.ServiceTypeClusterIP, ClusterIP: "10.1.100.3",
		Ports: []model.ServicePort{{Port: 8000}},
	})
	m.publish()
	check("listeners after two services", lds, []string{
		"0.0.0.0_5000", "10.1.100.2_3306", "10.1.100.2_443", "10.1.100.3_8000", "virtualInbound", "virtualOutbound",
	})
	check("routes after two services", rds, []string{"3306", "443", "5000", "8000", "web.web.svc.cluster.local:8000"})
	// TCP and TLS ports are proxied as TCP, not as HTTP.
	for _, name := range []string{"10.1.100.2_3306", "10.1.100.2_443"} {
		l := lds.entries[name].res.(*listenerv3.Listener)
		f := l.GetFilterChains()[0].GetFilters()[0]
		var tp tcpproxyv3.TcpProxy
		if f.GetName() != wellknown.TCPProxy || f.GetTypedConfig().UnmarshalTo(&tp) != nil {
			t.Fatalf("%s: filter %s, want tcp_proxy", name, f.GetName())
		}
		if want := model.ClusterName("db.data.svc.cluster.local", l.GetAddress().GetSocketAddress().GetPortValue(), ""); tp.GetCluster() != want {
			t.Errorf("%s: tcp_proxy to %s, want %s", name, tp.GetCluster(), want)
		}
	}
	// REGISTRY_ONLY: the catch-all drops.
	vo := lds.entries[envoy.VirtualOutboundListenerName].res.(*listenerv3.Listener)
	var tp tcpproxyv3.TcpProxy
	if err := vo.GetFilterChains()[1].GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil || tp.GetCluster() != envoy.BlackHoleCluster {
		t.Errorf("virtualOutbound catch-all goes to %q (%v), want BlackHoleCluster", tp.GetCluster(), err)
	}

	// The port renamed to http: sniffing gives way to HTTP on 0.0.0.0_8000.
	m.store.UpsertService(&model.Service{
		Cluster: cluster1, Namespace: "web", Name: "web", Type: model.ServiceTypeClusterIP, ClusterIP: "10.1.100.3",
		Ports: []model.ServicePort{{Name: "http", Port: 8000}},
	})
	m.publish()
	check("listeners after the rename", lds, []string{
		"0.0.0.0_5000", "0.0.0.0_8000", "10.1.100.2_3306", "10.1.100.2_443", "virtualInbound", "virtualOutbound",
	})
	check("routes after the rename", rds, []string{"3306", "443", "5000", "8000"})
}

// TestCapturedInboundFollowsPeerAuthentication: a PeerAuthentication of
// the proxy's cluster changes its virtualInbound listener (and nothing
// else) on the next publish; one of another cluster does not.
func TestCapturedInboundFollowsPeerAuthentication(t *testing.T) {
	m := newMesh(t, Config{})
	m.publish()
	p := envoy.Proxy{
		Role: envoy.RoleSidecar, Network: network1, Cluster: cluster1, Namespace: "sample",
		Labels: map[string]string{"app": "helloworld"}, Interception: envoy.InterceptionRedirect,
		PodPorts: []envoy.PodPort{{Name: "http", Port: 5000}},
	}
	ldsKey, _ := keyFor(p, ldsType)
	lds := m.srv.viewFor(ldsKey)
	// transports lists the transport protocols of the chains of port 5000.
	transports := func() []string {
		t.Helper()
		l := lds.cache.GetResources()[envoy.VirtualInboundListenerName].(*listenerv3.Listener)
		var out []string
		for _, fc := range l.GetFilterChains() {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 5000 {
				out = append(out, fc.GetFilterChainMatch().GetTransportProtocol())
			}
		}
		return out
	}
	step := func(what string, change func(), wantChanged bool, want []string) {
		t.Helper()
		before := lds.cache.GetResources()
		change()
		m.publish()
		after := lds.cache.GetResources()
		changed := changedNames(before, after)
		if wantChanged && !slices.Equal(changed, []string{envoy.VirtualInboundListenerName}) ||
			!wantChanged && len(changed) > 0 {
			t.Errorf("%s: listeners handed to the cache %v", what, changed)
		}
		if diff := cmp.Diff(want, transports()); diff != "" {
			t.Errorf("%s: port 5000's chains (-want +got):\n%s", what, diff)
		}
	}
	if diff := cmp.Diff([]string{"tls", "raw_buffer"}, transports()); diff != "" {
		t.Errorf("default PERMISSIVE (-want +got):\n%s", diff)
	}
	step("mesh-wide STRICT", func() {
		m.store.UpsertPeerAuthentication(&model.PeerAuthentication{
			Cluster: cluster1, Namespace: "istio-system", Name: "default", Mode: model.MTLSStrict,
		})
	}, true, []string{"tls"})
	step("another cluster's DISABLE", func() {
		m.store.UpsertPeerAuthentication(&model.PeerAuthentication{
			Cluster: cluster2, Namespace: "istio-system", Name: "default", Mode: model.MTLSDisable,
		})
	}, false, []string{"tls"})
	step("a workload DISABLE on port 5000", func() {
		m.store.UpsertPeerAuthentication(&model.PeerAuthentication{
			Cluster: cluster1, Namespace: "sample", Name: "hw", Selector: map[string]string{"app": "helloworld"},
			PortLevel: map[uint32]model.MTLSMode{5000: model.MTLSDisable},
		})
	}, true, []string{"raw_buffer"})
	step("the workload policy removed", func() {
		m.store.DeletePeerAuthentication(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "sample", Name: "hw"}})
	}, true, []string{"tls"})
}

func TestLabelsKey(t *testing.T) {
	for _, labels := range []map[string]string{nil, {"app": "a"}, {"app": "a", "version": "v=1", "x": ""}} {
		got := parseLabelsKey(labelsKey(labels))
		if diff := cmp.Diff(labels, got); diff != "" {
			t.Errorf("round trip of %v (-want +got):\n%s", labels, diff)
		}
	}
	if labelsKey(map[string]string{"a": "b", "c": "d"}) != labelsKey(map[string]string{"c": "d", "a": "b"}) {
		t.Error("labelsKey depends on map order")
	}
}

// TestSotWCapturedSidecar: over a real ADS stream, a node with the
// metadata pilot-agent sends (INTERCEPTION_MODE, POD_PORTS) gets the
// captured shape: virtual listeners, VIP_PORT listeners for its services'
// ports (sniffed: unnamed p<port> names), the passthrough clusters and
// its workload's inbound cluster, and the sniffed ports' HOST:PORT routes.
func TestSotWCapturedSidecar(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))
	n := node("sidecar~10.1.0.9~sleep-1.sample~sample.svc.cluster.local", map[string]string{
		"NETWORK": string(network1), "CLUSTER_ID": string(cluster1), "INTERCEPTION_MODE": "REDIRECT",
		"POD_PORTS": `[{"name":"http","containerPort":8080,"protocol":"TCP"}]`,
	})
	c := newSotW(t, cc, n)

	c.request(cdsType, nil, "", "", "")
	cds := c.recvType(cdsType)
	want := append([]string{"BlackHoleCluster", "InboundPassthroughCluster", "PassthroughCluster", "inbound|8080||"}, allClusters...)
	slices.Sort(want)
	if diff := cmp.Diff(want, slices.Sorted(maps.Keys(decode[*clusterv3.Cluster](t, cds.GetResources())))); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	c.ack(cds, nil)

	c.request(ldsType, nil, "", "", "")
	lds := c.recvType(ldsType)
	listeners := decode[*listenerv3.Listener](t, lds.GetResources())
	// helloworld and other in cluster1 at their VIPs; the gateway Service
	// (tls: TCP) only in cluster2, at its VIP there.
	wantL := []string{"10.1.100.1_5000", "10.1.100.2_9000", "10.2.255.1_15443", "virtualInbound", "virtualOutbound"}
	if diff := cmp.Diff(wantL, slices.Sorted(maps.Keys(listeners))); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	for name, l := range listeners {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if name != envoy.VirtualInboundListenerName && name != envoy.VirtualOutboundListenerName && l.GetBindToPort().GetValue() {
			t.Errorf("%s binds its port; a captured sidecar's outbound listeners must not", name)
		}
	}
	c.ack(lds, nil)

	routeNames := []string{"helloworld.sample.svc.cluster.local:5000"}
	c.request(rdsType, routeNames, "", "", "")
	rds := c.recvType(rdsType)
	routes := decode[*routev3.RouteConfiguration](t, rds.GetResources())
	if diff := cmp.Diff(routeNames, slices.Sorted(maps.Keys(routes))); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}
