package envoy

import (
	"testing"

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
	eps := map[uint32][]model.EndpointAddr{
		5432: {{Address: "10.1.0.60", Port: 5432}, {Address: "10.2.0.60", Port: 15432}, {Address: "10.1.0.60", Port: 5432}},
		8080: {{Address: "10.1.0.60", Port: 8080}},
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
