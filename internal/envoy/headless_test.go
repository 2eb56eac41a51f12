package envoy

import (
	"fmt"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// TestHeadlessCluster: a captured sidecar reaches a headless service's
// pods at their own address (ORIGINAL_DST), with mesh mTLS only where the
// destination is STRICT, as istiod's.
func TestHeadlessCluster(t *testing.T) {
	db := svcInfo("sample", "db", nil)
	db.Ports = []model.ServicePort{{Name: "tcp-postgres", Port: 5432}}
	db.ServiceAccounts = []model.NamespacedName{{Namespace: "sample", Name: "db"}}
	for _, strict := range []bool{true, false} {
		c := HeadlessCluster(db, db.Ports[0], ClusterOptions{}, strict)
		validateDeep(t, c)
		got := []string{c.GetName(), c.GetType().String(), c.GetLbPolicy().String()}
		want := []string{"outbound|5432||db.sample.svc.cluster.local", "ORIGINAL_DST", "CLUSTER_PROVIDED"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("strict=%t (-want +got):\n%s", strict, diff)
		}
		if c.GetEdsClusterConfig() != nil || len(c.GetTransportSocketMatches()) != 0 {
			t.Errorf("strict=%t: EDS config %v, socket matches %v; want neither (no endpoints, no metadata)", strict, c.GetEdsClusterConfig(), c.GetTransportSocketMatches())
		}
		if !strict {
			if c.GetTransportSocket() != nil {
				t.Errorf("not strict: transport socket %v, want plaintext", c.GetTransportSocket())
			}
			continue
		}
		var sni string
		var sans []string
		if ts := c.GetTransportSocket(); ts != nil {
			tc := new(tlsv3.UpstreamTlsContext)
			if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
				t.Fatal(err)
			}
			sni = tc.GetSni()
			for _, m := range tc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
				sans = append(sans, m.GetMatcher().GetExact())
			}
		}
		if sni != "outbound_.5432_._.db.sample.svc.cluster.local" || !cmp.Equal(sans, []string{"spiffe://cluster.local/ns/sample/sa/db"}) {
			t.Errorf("strict: SNI %q, SANs %v; want Istio's mTLS to the service", sni, sans)
		}
	}
}

// TestHeadlessListeners: one listener per endpoint of each TCP port, at
// the endpoint's address and target port, to the port's cluster; HTTP
// ports none; an endpoint listed twice once.
func TestHeadlessListeners(t *testing.T) {
	db := svcInfo("sample", "db", nil)
	db.Ports = []model.ServicePort{{Name: "tcp-postgres", Port: 5432}, {Name: "http-admin", Port: 8080}}
	ep := func(addr string, port uint32) HeadlessEndpoint {
		return HeadlessEndpoint{EndpointAddr: model.EndpointAddr{Address: addr, Port: port}}
	}
	eps := map[uint32][]HeadlessEndpoint{
		5432: {ep("10.1.0.60", 5432), ep("10.2.0.60", 15432), ep("10.1.0.60", 5432)},
		8080: {ep("10.1.0.60", 8080)},
	}
	ls := HeadlessListeners(db, eps)
	var got []listenerSummary
	for _, l := range ls {
		validateDeep(t, l)
		got = append(got, summarizeListener(t, l))
	}
	cluster := "tcp:outbound|5432||db.sample.svc.cluster.local"
	want := []listenerSummary{
		{Name: "10.1.0.60_5432", Address: "10.1.0.60:5432", Chains: []chainSummary{{Target: cluster}}},
		{Name: "10.2.0.60_15432", Address: "10.2.0.60:15432", Chains: []chainSummary{{Target: cluster}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestHeadlessListenersAcrossNetworks: an endpoint reached through its
// network's gateways gets its own per-pod cluster; the others keep the
// port's ORIGINAL_DST cluster (istiod's shape).
func TestHeadlessListenersAcrossNetworks(t *testing.T) {
	db := svcInfo("sample", "db", nil)
	db.Ports = []model.ServicePort{{Name: "tcp-postgres", Port: 5432}}
	gws := []model.Gateway{{Address: "192.0.2.2", Port: 15443, Network: "n2"}}
	eps := map[uint32][]HeadlessEndpoint{5432: {
		{EndpointAddr: model.EndpointAddr{Address: "10.1.0.60", Port: 5432, Network: "n1", MTLS: true}},
		{EndpointAddr: model.EndpointAddr{Address: "10.2.0.60", Port: 5432, Network: "n2", MTLS: true}, Gateways: gws},
	}}
	var got []listenerSummary
	for _, l := range HeadlessListeners(db, eps) {
		validateDeep(t, l)
		got = append(got, summarizeListener(t, l))
	}
	want := []listenerSummary{
		{Name: "10.1.0.60_5432", Address: "10.1.0.60:5432", Chains: []chainSummary{{Target: "tcp:outbound|5432||db.sample.svc.cluster.local"}}},
		{Name: "10.2.0.60_5432", Address: "10.2.0.60:5432", Chains: []chainSummary{{Target: "tcp:outbound|5432||10-2-0-60.db.sample.svc.cluster.local"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestPodCluster: a sidecar's per-pod cluster sends mesh mTLS, with the
// pod's SNI and the service's accounts, to the gateways of the pod's
// network; the gateway's per-pod cluster, named by that SNI, passes it to
// the pod alone.
func TestPodCluster(t *testing.T) {
	db := svcInfo("sample", "db", nil)
	db.Ports = []model.ServicePort{{Name: "tcp-postgres", Port: 5432}}
	db.ServiceAccounts = []model.NamespacedName{{Namespace: "sample", Name: "db"}}
	e := HeadlessEndpoint{
		EndpointAddr: model.EndpointAddr{Address: "10.2.0.60", Port: 15432, Network: "n2", MTLS: true},
		Gateways:     []model.Gateway{{Address: "192.0.2.2", Port: 15443}, {Address: "192.0.2.3", Port: 15443}},
	}
	const sni = "outbound_.5432_._.10-2-0-60.db.sample.svc.cluster.local"

	type summary struct {
		Name, Type, SNI string
		Endpoints       []string
		SANs            []string
		TLS             bool
	}
	summarize := func(c *clusterv3.Cluster) summary {
		t.Helper()
		validateDeep(t, c)
		s := summary{Name: c.GetName(), Type: c.GetType().String()}
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				a := lb.GetEndpoint().GetAddress().GetSocketAddress()
				s.Endpoints = append(s.Endpoints, fmt.Sprintf("%s:%d", a.GetAddress(), a.GetPortValue()))
			}
		}
		if ts := c.GetTransportSocket(); ts != nil {
			s.TLS = true
			tc := new(tlsv3.UpstreamTlsContext)
			if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
				t.Fatal(err)
			}
			s.SNI = tc.GetSni()
			for _, m := range tc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
				s.SANs = append(s.SANs, m.GetMatcher().GetExact())
			}
		}
		return s
	}

	got := summarize(PodCluster(db, db.Ports[0], e, ClusterOptions{}))
	want := summary{
		Name: "outbound|5432||10-2-0-60.db.sample.svc.cluster.local", Type: "STATIC", SNI: sni, TLS: true,
		Endpoints: []string{"192.0.2.2:15443", "192.0.2.3:15443"},
		SANs:      []string{"spiffe://cluster.local/ns/sample/sa/db"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PodCluster (-want +got):\n%s", diff)
	}

	got = summarize(GatewayPodCluster(db, db.Ports[0], e.EndpointAddr))
	want = summary{Name: sni, Type: "STATIC", Endpoints: []string{"10.2.0.60:15432"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GatewayPodCluster (-want +got):\n%s", diff)
	}
}

// TestGatewayListenerWithPods: per-pod server names get their own chains,
// after the services', sorted and once each, each to the cluster of its
// name; a gateway with only per-pod names still has a listener.
func TestGatewayListenerWithPods(t *testing.T) {
	pods := []string{
		"outbound_.5432_._.10-2-0-61.db.sample.svc.cluster.local",
		"outbound_.5432_._.10-2-0-60.db.sample.svc.cluster.local",
		"outbound_.5432_._.10-2-0-61.db.sample.svc.cluster.local",
	}
	chains := func(l *listenerv3.Listener) []string {
		t.Helper()
		validateDeep(t, l)
		var out []string
		for _, fc := range l.GetFilterChains() {
			tp := new(tcpproxyv3.TcpProxy)
			if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%v->%s", fc.GetFilterChainMatch().GetServerNames(), tp.GetCluster()))
		}
		return out
	}
	got := chains(GatewayListenerWithPods([]*model.ServiceInfo{helloworld()}, 15443, pods))
	want := []string{
		"[outbound_.5000_._.helloworld.sample.svc.cluster.local]->outbound_.5000_._.helloworld.sample.svc.cluster.local",
		"[outbound_.5432_._.10-2-0-60.db.sample.svc.cluster.local]->outbound_.5432_._.10-2-0-60.db.sample.svc.cluster.local",
		"[outbound_.5432_._.10-2-0-61.db.sample.svc.cluster.local]->outbound_.5432_._.10-2-0-61.db.sample.svc.cluster.local",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if l := GatewayListenerWithPods(nil, 15443, pods[:1]); len(l.GetFilterChains()) != 1 {
		t.Errorf("only a pod: %d chains, want 1", len(l.GetFilterChains()))
	}
	if l := GatewayListenerWithPods(nil, 15443, nil); l != nil {
		t.Errorf("nothing to pass: listener %v, want none", l.GetName())
	}
}
