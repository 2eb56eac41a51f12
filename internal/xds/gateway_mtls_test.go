package xds

import (
	"fmt"
	"strconv"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// eastWestNode is network2's east-west gateway (ROUTER_MODE sni-dnat).
func eastWestNode() map[string]string {
	return map[string]string{"NETWORK": string(network2), "CLUSTER_ID": string(cluster2), "ROUTER_MODE": "sni-dnat"}
}

// plainEndpoint stores an endpoint of ns/name port svcPort in cluster c
// that does not speak mesh mTLS: with pod, a pod without the tlsMode
// label; without, an address with no pod (as an API server's).
func (m *mesh) plainEndpoint(c model.ClusterID, ns, name string, svcPort uint32, pod, ip string, port uint32) {
	if pod != "" {
		m.store.UpsertPod(&model.Pod{Cluster: c, Namespace: ns, Name: pod, IPs: []string{ip}, ServiceAccount: name})
	}
	m.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: c, Namespace: ns, Name: name + "-plain-" + ip, ServiceName: name,
		Ports:     []model.EndpointPort{{Name: "p" + strconv.Itoa(int(svcPort)), Port: port}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{ip}, Ready: true, Pod: pod}},
	})
}

// TestGatewayForwardsOnlyToMeshMTLS: through the xDS server, an east-west
// gateway's outbound_.PORT_._.HOST clusters list only the endpoints of its
// network that speak mesh mTLS; kubernetes.default's API server and a pod
// without a sidecar are left out, while a sidecar of the same network
// still sees them. On Causeway's own gateway the control plane's secure
// port keeps its endpoints (it exposes it on purpose, --expose-control-plane);
// Istio's Envoy gets none there, as from istiod (a Gateway exposes the
// control plane through a PASSTHROUGH listener instead).
func TestGatewayForwardsOnlyToMeshMTLS(t *testing.T) {
	m := rawMesh(t, Config{})
	m.service(cluster2, "default", "kubernetes", "10.2.0.1", 443)
	m.plainEndpoint(cluster2, "default", "kubernetes", 443, "", "172.18.0.2", 6443)
	m.plainEndpoint(cluster2, "sample", "helloworld", helloPort, "hello-plain", "10.2.0.11", 8080)
	m.service(cluster2, "istio-system", "istiod", "10.2.0.2", 15012)
	m.plainEndpoint(cluster2, "istio-system", "istiod", 15012, "istiod-1", "10.2.0.30", 15012)
	m.publish()
	cc := dial(t, serve(t, m.srv))

	kubeSNI := model.SNI("kubernetes.default.svc.cluster.local", 443, "")
	helloSNI := model.SNI(helloHost, helloPort, "")
	istiodSNI := model.SNI("istiod.istio-system.svc.cluster.local", 15012, "")
	kubeCluster := model.ClusterName("kubernetes.default.svc.cluster.local", 443, "")
	tests := []struct {
		name      string
		node      map[string]string
		userAgent string
		id        string // with %s for the stream kind
		names     []string
		want      map[string][]lbEndpoint
	}{{
		name:      "Causeway's east-west gateway",
		node:      eastWestNode(),
		userAgent: "causeway-gateway",
		id:        "router~10.2.0.50~istio-eastwestgateway-%s.istio-system~istio-system.svc.cluster.local",
		names:     []string{kubeSNI, helloSNI, istiodSNI},
		want: map[string][]lbEndpoint{
			kubeSNI:   nil,
			helloSNI:  {{"10.2.0.10:8080", 1, true}},
			istiodSNI: {{"10.2.0.30:15012", 1, false}},
		},
	}, {
		name:      "Istio's Envoy east-west gateway",
		node:      eastWestNode(),
		userAgent: "envoy",
		id:        "router~10.2.0.51~istio-eastwestgateway-%s.istio-system~istio-system.svc.cluster.local",
		names:     []string{kubeSNI, helloSNI, istiodSNI},
		want: map[string][]lbEndpoint{
			kubeSNI:   nil,
			helloSNI:  {{"10.2.0.10:8080", 1, true}},
			istiodSNI: nil,
		},
	}, {
		name:  "sidecar of the same network: every endpoint",
		node:  map[string]string{"NETWORK": string(network2), "CLUSTER_ID": string(cluster2)},
		id:    "sidecar~10.2.0.9~sleep-%s.sample~sample.svc.cluster.local",
		names: []string{kubeCluster, helloCluster},
		want: map[string][]lbEndpoint{
			kubeCluster:  {{"172.18.0.2:6443", 1, false}},
			helloCluster: {{"10.2.0.10:8080", 1, true}, {"10.2.0.11:8080", 1, false}},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name+" (sotw)", func(t *testing.T) {
			n := node(fmt.Sprintf(tc.id, "sotw"), tc.node)
			n.UserAgentName = tc.userAgent
			c := newSotW(t, cc, n)
			c.request(edsType, tc.names, "", "", "")
			got := claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, c.recvType(edsType).GetResources()))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
		t.Run(tc.name+" (delta)", func(t *testing.T) {
			n := node(fmt.Sprintf(tc.id, "delta"), tc.node)
			n.UserAgentName = tc.userAgent
			c := newDelta(t, cc, n)
			c.subscribe(edsType, tc.names, nil)
			got := claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, deltaAnys(c.recvType(edsType))))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}
