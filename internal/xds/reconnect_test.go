package xds

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// reconnectMesh is the mesh of the reconnect tests, built in the order
// of steps (a permutation of 0..4): replicas see the same objects in
// different orders, and must serve the same bytes, hence the same
// versions.
func reconnectMesh(t *testing.T, steps []int, withOther bool) *mesh {
	m := newMesh(t, Config{})
	for _, step := range steps {
		switch step {
		case 0:
			m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
		case 1:
			m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-a", "10.1.0.10", 8080})
		case 2:
			m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-c", "10.1.0.12", 8080})
		case 3:
			m.service(cluster2, "sample", "helloworld", "10.2.100.1", helloPort)
			m.endpoints(cluster2, "sample", "helloworld", helloPort, backend{"hello-b", "10.2.0.10", 8080})
			m.gateway("192.0.2.20", 15443)
		case 4:
			if withOther {
				m.service(cluster1, "sample", "other", "10.1.100.2", 9000)
				m.endpoints(cluster1, "sample", "other", 9000, backend{"other-a", "10.1.0.20", 9000})
			}
		}
	}
	m.publish()
	return m
}

// heldVersions subscribes a delta client to every type (EDS and RDS to
// the names CDS and LDS name) and returns the versions it was sent, by
// type.
func heldVersions(t *testing.T, c *deltaClient, eds, rds []string) map[string]map[string]string {
	t.Helper()
	held := map[string]map[string]string{}
	for _, typ := range []struct {
		url   string
		names []string
	}{{cdsType, nil}, {edsType, eds}, {ldsType, nil}, {rdsType, rds}} {
		c.subscribe(typ.url, typ.names, nil)
		r := c.recvType(typ.url)
		c.ack(r)
		v := map[string]string{}
		for _, res := range r.GetResources() {
			v[res.GetName()] = res.GetVersion()
		}
		held[typ.url] = v
	}
	return held
}

// A delta proxy that reconnects to another server (a replica) with
// initial_resource_versions is sent what differs only: a resource it holds
// in the same version is not resent, one that changed is, one it lacks
// is, and one that no longer exists is in removed_resources. The replicas
// built their models in different orders: versions are content hashes,
// equal for equal content.
func TestDeltaReconnectToAnotherServer(t *testing.T) {
	a := reconnectMesh(t, []int{0, 1, 2, 3, 4}, true)
	ca := newDelta(t, dial(t, serve(t, a.srv)), sidecarNode("sleep", network1, cluster1))
	eds := []string{gwCluster, helloCluster, otherCluster}
	rds := []string{"15443", "5000", "9000"}
	held := heldVersions(t, ca, eds, rds)

	t.Run("same model", func(t *testing.T) {
		b := reconnectMesh(t, []int{4, 3, 2, 1, 0}, true)
		cb := newDelta(t, dial(t, serve(t, b.srv)), sidecarNode("sleep", network1, cluster1))
		for _, typ := range []string{cdsType, ldsType} {
			cb.subscribe(typ, nil, held[typ])
			r := cb.recvType(typ)
			if len(r.GetResources()) > 0 || len(r.GetRemovedResources()) > 0 {
				t.Errorf("%s: resent %v, removed %v; want an empty answer", shortType(typ), deltaNames(r), r.GetRemovedResources())
			}
			cb.ack(r)
		}
		cb.subscribe(edsType, eds, held[edsType])
		cb.subscribe(rdsType, rds, held[rdsType])
		cb.quiet(200 * time.Millisecond)
	})

	t.Run("changed model", func(t *testing.T) {
		// b: hello-c gone from helloworld's endpoints (a changed
		// resource), other gone (removed), a new service (lacked).
		b := reconnectMesh(t, []int{3, 0, 1}, false)
		b.service(cluster1, "sample", "third", "10.1.100.3", 7000)
		b.publish()
		cb := newDelta(t, dial(t, serve(t, b.srv)), sidecarNode("sleep", network1, cluster1))
		thirdCluster := model.ClusterName("third.sample.svc.cluster.local", 7000, "")
		want := map[string][2][]string{ // sent, removed
			cdsType: {{thirdCluster}, {otherCluster}},
			edsType: {{helloCluster, thirdCluster}, {otherCluster}}, // third's is new (and empty)
			ldsType: {{"0.0.0.0_7000"}, {"0.0.0.0_9000"}},
			rdsType: {{"7000"}, {"9000"}},
		}
		for _, typ := range []string{cdsType, edsType, ldsType, rdsType} {
			var names []string
			switch typ {
			case edsType:
				names = append(slices.Clone(eds), thirdCluster)
			case rdsType:
				names = append(slices.Clone(rds), "7000")
			}
			cb.subscribe(typ, names, maps.Clone(held[typ]))
			r := cb.recvType(typ)
			got := [2][]string{deltaNames(r), slices.Sorted(slices.Values(r.GetRemovedResources()))}
			if diff := cmp.Diff(want[typ], got); diff != "" {
				t.Errorf("%s to a reconnecting proxy: [sent, removed] (-want +got):\n%s", shortType(typ), diff)
			}
			cb.ack(r)
		}
	})
}
