package xds

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

const (
	cdsType = resource.ClusterType
	edsType = resource.EndpointType
	ldsType = resource.ListenerType
	rdsType = resource.RouteType
)

var (
	otherHost    = model.Host("other.sample.svc.cluster.local")
	otherCluster = model.ClusterName(otherHost, 9000, "")
	gwHost       = model.Host("istio-eastwestgateway.istio-system.svc.cluster.local")
	gwCluster    = model.ClusterName(gwHost, 15443, "")
	allClusters  = []string{gwCluster, helloCluster, otherCluster}
)

// rawMesh is the mesh of the raw-client tests: helloworld in both clusters,
// other only in cluster1, and network2's gateway at 192.0.2.20:15443.
func rawMesh(t testing.TB, cfg Config) *mesh {
	m := newMesh(t, cfg)
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.service(cluster2, "sample", "helloworld", "10.2.100.1", helloPort)
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-a", "10.1.0.10", 8080})
	m.endpoints(cluster2, "sample", "helloworld", helloPort, backend{"hello-b", "10.2.0.10", 8080})
	m.service(cluster1, "sample", "other", "10.1.100.2", 9000)
	m.endpoints(cluster1, "sample", "other", 9000, backend{"other-a", "10.1.0.20", 9000})
	m.gateway("192.0.2.20", 15443)
	m.publish()
	return m
}

// What a sidecar of network1 sees: its own endpoint directly, network2's
// behind network2's gateway.
var network1Endpoints = map[string][]lbEndpoint{
	helloCluster: {{"10.1.0.10:8080", 1, true}, {"192.0.2.20:15443", 1, true}},
	otherCluster: {{"10.1.0.20:9000", 1, true}},
	gwCluster:    nil,
}

func claEndpoints(m map[string]*endpointv3.ClusterLoadAssignment) map[string][]lbEndpoint {
	out := make(map[string][]lbEndpoint, len(m))
	for name, cla := range m {
		if cla.GetClusterName() != name {
			out[name+" (cluster_name "+cla.GetClusterName()+")"] = nil
		}
		out[name] = endpointsOf(cla)
	}
	return out
}

func TestSotWSidecar(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := rawMesh(t, Config{Registerer: reg})
	cc := dial(t, serve(t, m.srv))
	const id = "sidecar~10.1.0.9~sleep-1.sample~sample.svc.cluster.local"
	c := newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))

	// Initial state, as Envoy asks for it: CDS, then EDS of the clusters,
	// LDS, then RDS of the listeners.
	c.request(cdsType, nil, "", "", "")
	cds := c.recvType(cdsType)
	clusters := decode[*clusterv3.Cluster](t, cds.GetResources())
	if diff := cmp.Diff(allClusters, slices.Sorted(maps.Keys(clusters))); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	c.ack(cds, nil)

	c.request(edsType, allClusters, "", "", "")
	eds := c.recvType(edsType)
	if diff := cmp.Diff(network1Endpoints, claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, eds.GetResources()))); diff != "" {
		t.Errorf("split-horizon endpoints of network1 (-want +got):\n%s", diff)
	}
	c.ack(eds, allClusters)

	c.request(ldsType, nil, "", "", "")
	lds := c.recvType(ldsType)
	listeners := decode[*listenerv3.Listener](t, lds.GetResources())
	if diff := cmp.Diff([]string{"0.0.0.0_15443", "0.0.0.0_5000", "0.0.0.0_9000"}, slices.Sorted(maps.Keys(listeners))); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	c.ack(lds, nil)

	routeNames := []string{"15443", "5000", "9000"}
	c.request(rdsType, routeNames, "", "", "")
	rds := c.recvType(rdsType)
	routes := decode[*routev3.RouteConfiguration](t, rds.GetResources())
	if diff := cmp.Diff(routeNames, slices.Sorted(maps.Keys(routes))); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	domains := routes["5000"].GetVirtualHosts()[0].GetDomains()
	if !slices.Contains(domains, "10.1.100.1") || slices.Contains(domains, "10.2.100.1") {
		t.Errorf("route 5000 domains %v: want cluster1's cluster IP 10.1.100.1 only", domains)
	}
	c.ack(rds, routeNames)

	p := proxyStatus(t, m.srv, id, func(p ProxyStatus) bool {
		return typeStatus(p, "rds").LastAck != nil
	})
	want := ProxyStatus{ID: id, Role: "sidecar", Network: network1, Cluster: cluster1, IP: "10.1.0.9", Pod: "sleep-1",
		Namespace: "sample", Protocol: ProtocolSotW}
	got := p
	got.Stream, got.ConnectedAt, got.Types = 0, time.Time{}, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registry (-want +got):\n%s", diff)
	}
	for _, ts := range p.Types {
		if ts.LastSent == nil || ts.LastAck == nil || ts.LastAck.Nonce != ts.LastSent.Nonce || ts.LastNack != nil {
			t.Errorf("%s: want the last response ACKed and no NACK, got %+v", ts.Type, ts)
		}
	}

	// An endpoint change pushes that service's EDS and nothing else.
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-c", "10.1.0.11", 8080})
	m.publish()
	eds2 := c.recvType(edsType)
	if diff := cmp.Diff([]string{helloCluster}, anyNames(eds2.GetResources())); diff != "" {
		t.Errorf("EDS push after an endpoint change (-want +got):\n%s", diff)
	}
	wantHello := []lbEndpoint{{"10.1.0.10:8080", 1, true}, {"10.1.0.11:8080", 1, true}, {"192.0.2.20:15443", 1, true}}
	if diff := cmp.Diff(wantHello, endpointsOf(decode[*endpointv3.ClusterLoadAssignment](t, eds2.GetResources())[helloCluster])); diff != "" {
		t.Errorf("helloworld after the change (-want +got):\n%s", diff)
	}
	c.quiet(300 * time.Millisecond)

	// NACK it: the registry records it, and the server goes on.
	c.request(edsType, allClusters, eds.GetVersionInfo(), eds2.GetNonce(), "endpoint 10.1.0.11 is not welcome")
	p = proxyStatus(t, m.srv, id, func(p ProxyStatus) bool { return typeStatus(p, "eds").LastNack != nil })
	wantNack := &Nack{Nonce: eds2.GetNonce(), Version: eds.GetVersionInfo(), Error: "endpoint 10.1.0.11 is not welcome"}
	gotNack := *typeStatus(p, "eds").LastNack
	gotNack.At = time.Time{}
	if diff := cmp.Diff(wantNack, &gotNack); diff != "" {
		t.Errorf("NACK in the registry (-want +got):\n%s", diff)
	}
	if got := counterValue(t, reg, "causeway_xds_nacks_total", "eds"); got != 1 {
		t.Errorf("causeway_xds_nacks_total{type=eds} = %v, want 1", got)
	}
	c.quiet(200 * time.Millisecond) // a NACK does not make the server resend

	m.store.DeleteEndpointSlice(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "sample", Name: "helloworld-hello-c"}})
	m.publish()
	eds3 := c.recvType(edsType)
	if diff := cmp.Diff(network1Endpoints[helloCluster], endpointsOf(decode[*endpointv3.ClusterLoadAssignment](t, eds3.GetResources())[helloCluster])); diff != "" {
		t.Errorf("helloworld after the NACK and another change (-want +got):\n%s", diff)
	}
	c.ack(eds3, allClusters)
	proxyStatus(t, m.srv, id, func(p ProxyStatus) bool {
		ack := typeStatus(p, "eds").LastAck
		return ack != nil && ack.Nonce == eds3.GetNonce()
	})

	// The debug handler shows what the proxy holds.
	h := httptest.NewServer(m.srv.DebugHandler())
	t.Cleanup(h.Close)
	var dump ConfigDump
	getJSON(t, h.URL+"/debug/config_dump?"+url.Values{"proxy": {id}, "type": {"eds"}}.Encode(), http.StatusOK, &dump)
	if len(dump.Resources) != 3 || !strings.Contains(string(dump.Resources[1]), `"10.1.0.10"`) || dump.LastSent.Nonce != eds3.GetNonce() {
		t.Errorf("config_dump eds: got %d resources, last sent %+v:\n%s", len(dump.Resources), dump.LastSent, dump.Resources)
	}
	var proxies []ProxyStatus
	getJSON(t, h.URL+"/debug/proxies", http.StatusOK, &proxies)
	if len(proxies) != 1 || proxies[0].ID != id {
		t.Errorf("/debug/proxies = %+v, want %s only", proxies, id)
	}
	var unknown UnknownProxy
	getJSON(t, h.URL+"/debug/config_dump?proxy=nobody&type=cds", http.StatusNotFound, &unknown)
	if diff := cmp.Diff(UnknownProxy{Error: `proxy "nobody" is not connected`, Known: []string{id}}, unknown); diff != "" {
		t.Errorf("unknown proxy (-want +got):\n%s", diff)
	}

	// A new stream gets the full state again.
	oldStream := p.Stream
	c.close()
	c = newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))
	c.request(cdsType, nil, "", "", "")
	if diff := cmp.Diff(allClusters, anyNames(c.recvType(cdsType).GetResources())); diff != "" {
		t.Errorf("clusters after reconnecting (-want +got):\n%s", diff)
	}
	c.request(edsType, allClusters, "", "", "")
	if diff := cmp.Diff(network1Endpoints, claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, c.recvType(edsType).GetResources()))); diff != "" {
		t.Errorf("endpoints after reconnecting (-want +got):\n%s", diff)
	}
	proxyStatus(t, m.srv, id, func(p ProxyStatus) bool { return p.Stream != oldStream && len(m.srv.Proxies()) == 1 })
}

func getJSON(t *testing.T, u string, code int, v any) {
	t.Helper()
	resp, err := http.Get(u) //nolint:noctx // a test against httptest
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %s, want %d", u, resp.Status, code)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestDeltaSidecar(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))
	const id = "sidecar~10.1.0.9~sleep-2.sample~sample.svc.cluster.local"
	c := newDelta(t, cc, sidecarNode("sleep-2", network1, cluster1))

	c.subscribe(cdsType, nil, nil)
	cds := c.recvType(cdsType)
	versions := map[string]string{}
	for _, r := range cds.GetResources() {
		versions[r.GetName()] = r.GetVersion()
	}
	if diff := cmp.Diff(allClusters, slices.Sorted(maps.Keys(decode[*clusterv3.Cluster](t, deltaAnys(cds))))); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	c.ack(cds)
	c.subscribe(edsType, allClusters, nil)
	eds := c.recvType(edsType)
	if diff := cmp.Diff(network1Endpoints, claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, deltaAnys(eds)))); diff != "" {
		t.Errorf("split-horizon endpoints of network1 (-want +got):\n%s", diff)
	}
	c.ack(eds)
	c.subscribe(ldsType, nil, nil)
	lds := c.recvType(ldsType)
	decode[*listenerv3.Listener](t, deltaAnys(lds))
	c.ack(lds)
	routeNames := []string{"15443", "5000", "9000"}
	c.subscribe(rdsType, routeNames, nil)
	rds := c.recvType(rdsType)
	if diff := cmp.Diff(routeNames, slices.Sorted(maps.Keys(decode[*routev3.RouteConfiguration](t, deltaAnys(rds))))); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	c.ack(rds)

	// An endpoint change sends that one resource and nothing else.
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-c", "10.1.0.11", 8080})
	m.publish()
	eds2 := c.recvType(edsType)
	if diff := cmp.Diff([]string{helloCluster}, deltaNames(eds2)); diff != "" || len(eds2.GetRemovedResources()) > 0 {
		t.Errorf("delta EDS after an endpoint change: removed %v, resources (-want +got):\n%s", eds2.GetRemovedResources(), diff)
	}
	c.ack(eds2)
	c.quiet(300 * time.Millisecond)

	// NACK handling in delta.
	c.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: eds2.GetNonce(), ErrorDetail: statusProto("no thanks")})
	proxyStatus(t, m.srv, id, func(p ProxyStatus) bool {
		n := typeStatus(p, "eds").LastNack
		return n != nil && n.Error == "no thanks" && n.Nonce == eds2.GetNonce()
	})

	// Removing a service removes its cluster, endpoints, and (its port
	// being the only 9000) listener and route.
	m.store.DeleteService(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "sample", Name: "other"}})
	m.publish()
	removed := map[string][]string{}
	for range 4 {
		r := c.recv()
		if len(r.GetResources()) > 0 {
			t.Errorf("%s: unexpected resources %v with a removal", shortType(r.GetTypeUrl()), deltaNames(r))
		}
		removed[shortType(r.GetTypeUrl())] = r.GetRemovedResources()
		c.ack(r)
	}
	wantRemoved := map[string][]string{"cds": {otherCluster}, "eds": {otherCluster}, "lds": {"0.0.0.0_9000"}, "rds": {"9000"}}
	if diff := cmp.Diff(wantRemoved, removed); diff != "" {
		t.Errorf("removed resources (-want +got):\n%s", diff)
	}
	c.quiet(200 * time.Millisecond)

	// A new stream that says what it knows gets only what differs; one
	// that says nothing gets everything.
	c.close()
	c = newDelta(t, cc, sidecarNode("sleep-2", network1, cluster1))
	c.subscribe(cdsType, nil, map[string]string{helloCluster: versions[helloCluster], gwCluster: "stale"})
	if diff := cmp.Diff([]string{gwCluster}, deltaNames(c.recvType(cdsType))); diff != "" {
		t.Errorf("clusters sent on reconnect with known versions (-want +got):\n%s", diff)
	}
	c2 := newDelta(t, cc, sidecarNode("sleep-3", network1, cluster1))
	c2.subscribe(cdsType, nil, nil)
	if diff := cmp.Diff([]string{gwCluster, helloCluster}, deltaNames(c2.recvType(cdsType))); diff != "" {
		t.Errorf("clusters sent to a new stream (-want +got):\n%s", diff)
	}
}

// TestViewsPerRole checks what each kind of proxy is served: names,
// split-horizon content, and Envoy's validation of every resource.
func TestViewsPerRole(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))

	helloSNI, otherSNI, gwSNI := model.SNI(helloHost, helloPort, ""), model.SNI(otherHost, 9000, ""), model.SNI(gwHost, 15443, "")
	helloGRPC, otherGRPC, gwGRPC := "helloworld.sample.svc.cluster.local:5000", "other.sample.svc.cluster.local:9000",
		"istio-eastwestgateway.istio-system.svc.cluster.local:15443"
	tests := []struct {
		name     string
		node     *corev3.Node
		clusters []string
		eds      map[string][]lbEndpoint
		lds      []string
		rds      []string
	}{{
		name:     "sidecar of network1",
		node:     sidecarNode("a", network1, cluster1),
		clusters: allClusters,
		eds:      network1Endpoints,
		lds:      []string{"0.0.0.0_15443", "0.0.0.0_5000", "0.0.0.0_9000"},
		rds:      []string{"15443", "5000", "9000"},
	}, {
		// network1 has no gateway: its endpoints are left out.
		name:     "sidecar of network2",
		node:     sidecarNode("b", network2, cluster2),
		clusters: allClusters,
		eds:      map[string][]lbEndpoint{helloCluster: {{"10.2.0.10:8080", 1, true}}, otherCluster: nil, gwCluster: nil},
		lds:      []string{"0.0.0.0_15443", "0.0.0.0_5000", "0.0.0.0_9000"},
		rds:      []string{"15443", "5000", "9000"},
	}, {
		name:     "router (no listeners or routes of its own)",
		node:     node("router~10.1.0.50~ingress-1.istio-system~istio-system.svc.cluster.local", map[string]string{"NETWORK": "network1", "CLUSTER_ID": "cluster1"}),
		clusters: allClusters,
		eds:      network1Endpoints,
	}, {
		name: "east-west gateway of network2",
		node: node("router~10.2.0.50~istio-eastwestgateway-1.istio-system~istio-system.svc.cluster.local",
			map[string]string{"NETWORK": "network2", "CLUSTER_ID": "cluster2", "ROUTER_MODE": "sni-dnat"}),
		clusters: []string{gwSNI, helloSNI, otherSNI},
		eds:      map[string][]lbEndpoint{helloSNI: {{"10.2.0.10:8080", 1, true}}, otherSNI: nil, gwSNI: nil},
		lds:      []string{"0.0.0.0_15443"},
	}, {
		name:     "proxyless gRPC of network1",
		node:     node("grpc-client-1", map[string]string{"NETWORK": "network1", "CLUSTER_ID": "cluster1", "GENERATOR": "grpc"}),
		clusters: allClusters,
		eds:      network1Endpoints,
		lds:      []string{helloGRPC, gwGRPC, otherGRPC},
		rds:      []string{helloGRPC, gwGRPC, otherGRPC},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newDelta(t, cc, tc.node)
			c.subscribe(cdsType, nil, nil)
			cds := c.recvType(cdsType)
			if diff := cmp.Diff(tc.clusters, slices.Sorted(maps.Keys(decode[*clusterv3.Cluster](t, deltaAnys(cds))))); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			c.ack(cds)
			c.subscribe(edsType, slices.Sorted(maps.Keys(tc.eds)), nil)
			eds := c.recvType(edsType)
			if diff := cmp.Diff(tc.eds, claEndpoints(decode[*endpointv3.ClusterLoadAssignment](t, deltaAnys(eds)))); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			c.ack(eds)
			c.subscribe(ldsType, nil, nil)
			lds := c.recvType(ldsType)
			if diff := cmp.Diff(tc.lds, slices.Sorted(maps.Keys(decode[*listenerv3.Listener](t, deltaAnys(lds))))); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
			c.ack(lds)
			if len(tc.rds) > 0 {
				c.subscribe(rdsType, tc.rds, nil)
				rds := c.recvType(rdsType)
				if diff := cmp.Diff(tc.rds, slices.Sorted(maps.Keys(decode[*routev3.RouteConfiguration](t, deltaAnys(rds))))); diff != "" {
					t.Errorf("routes (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestRefusedStreams(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))
	tests := []struct {
		name    string
		node    *corev3.Node
		typeURL string
		want    string
	}{{
		name:    "no node",
		typeURL: cdsType,
		want:    "must carry the node",
	}, {
		name:    "id not in Istio's form",
		node:    node("garbage", map[string]string{"NETWORK": "network1"}),
		typeURL: cdsType,
		want:    `node id "garbage" has 1 parts`,
	}, {
		name: "metadata of the wrong kind",
		node: &corev3.Node{Id: "sidecar~10.1.0.9~a.sample~sample.svc.cluster.local", Metadata: &structpb.Struct{
			Fields: map[string]*structpb.Value{"NETWORK": structpb.NewNumberValue(1)}}},
		typeURL: cdsType,
		want:    "node metadata NETWORK is a number",
	}}
	for _, tc := range tests {
		t.Run(tc.name+" (sotw)", func(t *testing.T) {
			c := newSotW(t, cc, tc.node)
			c.request(tc.typeURL, nil, "", "", "")
			checkRefused(t, streamErr(t, c.in), tc.want)
		})
		t.Run(tc.name+" (delta)", func(t *testing.T) {
			c := newDelta(t, cc, tc.node)
			c.subscribe(tc.typeURL, nil, nil)
			checkRefused(t, streamErr(t, c.in), tc.want)
		})
	}
	if n := len(m.srv.Proxies()); n != 0 {
		t.Errorf("registry has %d proxies after refused streams, want 0", n)
	}
}

// streamErr waits for the stream to end and returns its error.
func streamErr[T any](t *testing.T, ch <-chan testkit.Received[T]) error {
	t.Helper()
	select {
	case r := <-ch:
		if r.Err == nil {
			t.Fatalf("got a response, want the stream refused")
		}
		return r.Err
	case <-time.After(wait):
		t.Fatal("the stream was not refused")
	}
	return nil
}

func checkRefused(t *testing.T, err error, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) {
		t.Errorf("stream ended with %v; want InvalidArgument containing %q", err, want)
	}
}
