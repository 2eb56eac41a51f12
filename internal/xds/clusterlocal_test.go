package xds

import (
	"fmt"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// TestClusterLocalEndpoints: kubernetes.default (cluster-local by
// Istio's defaults) is served per cluster: a sidecar of cluster1 gets
// cluster1's API server only, even where another cluster's shares its
// network, and a sidecar of a cluster without it gets none; a global
// service stays merged across the clusters of a network.
func TestClusterLocalEndpoints(t *testing.T) {
	m := rawMesh(t, Config{})
	const cluster3 = model.ClusterID("cluster3") // in network1 with cluster1
	m.store.UpsertNamespace(&model.Namespace{Cluster: cluster3, Name: "istio-system", Network: network1})
	for _, c := range []struct {
		id model.ClusterID
		ip string
	}{{cluster1, "172.18.0.1"}, {cluster2, "172.18.0.2"}, {cluster3, "172.18.0.3"}} {
		m.service(c.id, "default", "kubernetes", "10.0.0.1", 443)
		m.plainEndpoint(c.id, "default", "kubernetes", 443, "", c.ip, 6443)
	}
	m.service(cluster3, "sample", "helloworld", "10.3.100.1", helloPort)
	m.endpoints(cluster3, "sample", "helloworld", helloPort, backend{"hello-c", "10.3.0.10", 8080})
	m.publish()
	cc := dial(t, serve(t, m.srv))

	kube := model.ClusterName("kubernetes.default.svc.cluster.local", 443, "")
	names := []string{kube, helloCluster}
	tests := []struct {
		cluster model.ClusterID
		want    map[string][]lbEndpoint
	}{{
		cluster: cluster1,
		want: map[string][]lbEndpoint{
			kube:         {{"172.18.0.1:6443", 1, false}},
			helloCluster: {{"10.1.0.10:8080", 1, true}, {"10.3.0.10:8080", 1, true}, {"192.0.2.20:15443", 1, true}},
		},
	}, {
		cluster: cluster3,
		want: map[string][]lbEndpoint{
			kube:         {{"172.18.0.3:6443", 1, false}},
			helloCluster: {{"10.1.0.10:8080", 1, true}, {"10.3.0.10:8080", 1, true}, {"192.0.2.20:15443", 1, true}},
		},
	}, {
		cluster: "cluster9",
		want: map[string][]lbEndpoint{
			kube:         nil,
			helloCluster: {{"10.1.0.10:8080", 1, true}, {"10.3.0.10:8080", 1, true}, {"192.0.2.20:15443", 1, true}},
		},
	}}
	for _, tc := range tests {
		t.Run(string(tc.cluster), func(t *testing.T) {
			c := newDelta(t, cc, sidecarNode(fmt.Sprintf("sleep-%s", tc.cluster), network1, tc.cluster))
			c.subscribe(edsType, names, nil)
			got := claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, deltaAnys(c.recvType(edsType))))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints of a sidecar of %s (-want +got):\n%s", tc.cluster, diff)
			}
		})
	}
}
