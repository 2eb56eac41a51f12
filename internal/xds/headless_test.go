package xds

import (
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// TestCapturedHeadless: a captured sidecar's views of a headless service
// follow istiod's shape and stay current: an IP_PORT listener per
// endpoint, added when an endpoint comes, and an ORIGINAL_DST cluster
// whose mTLS follows the namespace's PeerAuthentications.
func TestCapturedHeadless(t *testing.T) {
	m := newMesh(t, Config{})
	m.store.UpsertService(&model.Service{Cluster: cluster1, Namespace: "sample", Name: "db", Type: model.ServiceTypeClusterIP,
		ClusterIP: "None", Ports: []model.ServicePort{{Name: "tcp-postgres", Port: 5432}}})
	addPod := func(pod, ip string) {
		m.store.UpsertPod(&model.Pod{Cluster: cluster1, Namespace: "sample", Name: pod, IPs: []string{ip},
			TLSMode: model.TLSModeIstio, ServiceAccount: "db"})
		m.store.UpsertEndpointSlice(&model.EndpointSlice{
			Cluster: cluster1, Namespace: "sample", Name: "db-" + pod, ServiceName: "db",
			Ports:     []model.EndpointPort{{Name: "tcp-postgres", Port: 5432}},
			Endpoints: []model.SliceEndpoint{{Addresses: []string{ip}, Ready: true, Pod: pod}},
		})
	}
	addPod("db-0", "10.1.0.60")
	m.publish()
	p := envoy.Proxy{
		Role: envoy.RoleSidecar, Network: network1, Cluster: cluster1, Namespace: "sample",
		Labels: map[string]string{"app": "sleep"}, Interception: envoy.InterceptionRedirect,
	}
	ldsKey, _ := keyFor(p, ldsType)
	cdsKey, _ := keyFor(p, cdsType)
	lds, cds := m.srv.viewFor(ldsKey), m.srv.viewFor(cdsKey)
	podListeners := func() []string {
		var out []string
		for name := range lds.cache.GetResources() {
			if strings.HasSuffix(name, "_5432") {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	const name = "outbound|5432||db.sample.svc.cluster.local"
	dbCluster := func() (string, bool) {
		c, _ := cds.cache.GetResources()[name].(*clusterv3.Cluster)
		return c.GetType().String(), c.GetTransportSocket() != nil
	}

	if diff := cmp.Diff([]string{"10.1.0.60_5432"}, podListeners()); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if typ, tls := dbCluster(); typ != "ORIGINAL_DST" || tls {
		t.Errorf("cluster: %s, mTLS %t; want ORIGINAL_DST in plaintext (PERMISSIVE)", typ, tls)
	}

	addPod("db-1", "10.1.0.61")
	m.publish()
	if diff := cmp.Diff([]string{"10.1.0.60_5432", "10.1.0.61_5432"}, podListeners()); diff != "" {
		t.Errorf("after a new endpoint, listeners (-want +got):\n%s", diff)
	}

	m.store.UpsertPeerAuthentication(&model.PeerAuthentication{
		Cluster: cluster1, Namespace: "istio-system", Name: "default", Mode: model.MTLSStrict,
	})
	m.publish()
	if typ, tls := dbCluster(); typ != "ORIGINAL_DST" || !tls {
		t.Errorf("under STRICT, cluster: %s, mTLS %t; want ORIGINAL_DST with mTLS", typ, tls)
	}
}
