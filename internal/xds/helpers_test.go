package xds

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The test mesh: service helloworld.sample on port 5000 in cluster1
// (network1) and cluster2 (network2); network2 has an east-west gateway,
// network1 none.
const (
	helloHost = model.Host("helloworld.sample.svc.cluster.local")
	helloPort = 5000
	network1  = model.NetworkID("network1")
	network2  = model.NetworkID("network2")
	cluster1  = model.ClusterID("cluster1")
	cluster2  = model.ClusterID("cluster2")
)

var helloCluster = model.ClusterName(helloHost, helloPort, "")

// mesh is a model store plus the server it publishes to.
type mesh struct {
	t     testing.TB
	store *model.Store
	srv   *Server
}

// newMesh returns a store with the two clusters' networks (system
// namespace labels) and a server fed from it.
func newMesh(t testing.TB, cfg Config) *mesh {
	t.Helper()
	m := &mesh{t: t, store: model.NewStore(model.Config{}), srv: New(cfg)}
	m.store.UpsertNamespace(&model.Namespace{Cluster: cluster1, Name: "istio-system", Network: network1})
	m.store.UpsertNamespace(&model.Namespace{Cluster: cluster2, Name: "istio-system", Network: network2})
	return m
}

// publish hands the store's changes to the server, as the publish loop does.
func (m *mesh) publish() {
	ch := m.store.TakeChanges()
	m.srv.Publish(m.store.Snapshot(), ch)
}

// service stores a ClusterIP Service with TCP ports named p<port>.
func (m *mesh) service(c model.ClusterID, ns, name, clusterIP string, ports ...uint32) {
	svc := &model.Service{Cluster: c, Namespace: ns, Name: name, Type: model.ServiceTypeClusterIP, ClusterIP: clusterIP}
	for _, p := range ports {
		svc.Ports = append(svc.Ports, model.ServicePort{Name: "p" + strconv.Itoa(int(p)), Port: p})
	}
	m.store.UpsertService(svc)
}

// backend is an endpoint of a service: a pod with an IP, serving on a
// target port, mesh mTLS capable.
type backend struct {
	pod  string
	ip   string
	port uint32 // target port
}

// endpoints stores one EndpointSlice per backend for Service port
// svcPort (named p<svcPort>) of ns/name in cluster c, and the pods.
func (m *mesh) endpoints(c model.ClusterID, ns, name string, svcPort uint32, bs ...backend) {
	for _, b := range bs {
		m.store.UpsertPod(&model.Pod{Cluster: c, Namespace: ns, Name: b.pod, IPs: []string{b.ip},
			TLSMode: model.TLSModeIstio, ServiceAccount: name})
		m.store.UpsertEndpointSlice(&model.EndpointSlice{
			Cluster: c, Namespace: ns, Name: name + "-" + b.pod, ServiceName: name,
			Ports:     []model.EndpointPort{{Name: "p" + strconv.Itoa(int(svcPort)), Port: b.port}},
			Endpoints: []model.SliceEndpoint{{Addresses: []string{b.ip}, Ready: true, Pod: b.pod}},
		})
	}
}

// gateway stores network2's east-west gateway Service in cluster2 at
// ip:port.
func (m *mesh) gateway(ip string, port uint32) {
	m.store.UpsertService(&model.Service{
		Cluster: cluster2, Namespace: "istio-system", Name: "istio-eastwestgateway",
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.2.255.1", ExternalIPs: []string{ip},
		Network: network2, GatewayPort: port,
		Ports: []model.ServicePort{{Name: "tls", Port: port}},
	})
}

// node returns an xDS node.
func node(id string, md map[string]string) *corev3.Node {
	fields := make(map[string]*structpb.Value, len(md))
	for k, v := range md {
		fields[k] = structpb.NewStringValue(v)
	}
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: fields}}
}

func sidecarNode(pod string, network model.NetworkID, cluster model.ClusterID) *corev3.Node {
	return node("sidecar~10.1.0.9~"+pod+".sample~sample.svc.cluster.local",
		map[string]string{"NETWORK": string(network), "CLUSTER_ID": string(cluster)})
}

// serve starts s on a loopback port until the test ends; it returns the
// address.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// dial connects a plain gRPC client to addr.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// wait is how long a test waits for something the server should do at
// once (generous: the race detector on two shared cores is slow).
const wait = 10 * time.Second

// sotwClient is a raw SotW ADS client, read on a goroutine.
type sotwClient struct {
	t   testing.TB
	ads *testkit.ADS
	in  <-chan testkit.Received[discoverygrpc.DiscoveryResponse]
}

// clientBuffer is how many responses a client's reader holds.
const clientBuffer = 64

func newSotW(t testing.TB, cc *grpc.ClientConn, n *corev3.Node) *sotwClient {
	t.Helper()
	ads := testkit.OpenADS(context.Background(), t, cc, n)
	return &sotwClient{t: t, ads: ads, in: ads.Read(clientBuffer).C}
}

func (c *sotwClient) close() { c.ads.Close() }

// request sends a request; the node goes with the first only, as Envoy
// does.
func (c *sotwClient) request(typeURL string, names []string, version, nonce string, nack string) {
	c.t.Helper()
	req := &discoverygrpc.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce}
	if nack != "" {
		req.ErrorDetail = statusProto(nack)
	}
	if err := c.ads.Send(req); err != nil {
		c.t.Fatalf("sending %s request: %v", shortType(typeURL), err)
	}
}

// ack acknowledges resp, asking for names.
func (c *sotwClient) ack(resp *discoverygrpc.DiscoveryResponse, names []string) {
	c.request(resp.GetTypeUrl(), names, resp.GetVersionInfo(), resp.GetNonce(), "")
}

// recv waits for the next response.
func (c *sotwClient) recv() *discoverygrpc.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.in:
		if r.Err != nil {
			c.t.Fatalf("receiving: %v", r.Err)
		}
		return r.Msg
	case <-time.After(wait):
		c.t.Fatal("no response")
	}
	return nil
}

// recvType waits for the next response, which must be of typeURL.
func (c *sotwClient) recvType(typeURL string) *discoverygrpc.DiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	if r.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a %s response, want %s", shortType(r.GetTypeUrl()), shortType(typeURL))
	}
	return r
}

// quiet asserts that nothing arrives for a while.
func (c *sotwClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.in:
		if r.Err != nil {
			c.t.Fatalf("stream ended: %v", r.Err)
		}
		c.t.Fatalf("unexpected %s response with %v", shortType(r.Msg.GetTypeUrl()), anyNames(r.Msg.GetResources()))
	case <-time.After(d):
	}
}

// deltaClient is a raw delta ADS client, read on a goroutine.
type deltaClient struct {
	t   testing.TB
	ads *testkit.DeltaADS
	in  <-chan testkit.Received[discoverygrpc.DeltaDiscoveryResponse]
}

func newDelta(t testing.TB, cc *grpc.ClientConn, n *corev3.Node) *deltaClient {
	t.Helper()
	ads := testkit.OpenDeltaADS(context.Background(), t, cc, n)
	return &deltaClient{t: t, ads: ads, in: ads.Read(clientBuffer).C}
}

func (c *deltaClient) close() { c.ads.Close() }

func (c *deltaClient) send(req *discoverygrpc.DeltaDiscoveryRequest) {
	c.t.Helper()
	if err := c.ads.Send(req); err != nil {
		c.t.Fatalf("sending %s request: %v", shortType(req.GetTypeUrl()), err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names []string, initial map[string]string) {
	c.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names, InitialResourceVersions: initial})
}

func (c *deltaClient) ack(resp *discoverygrpc.DeltaDiscoveryResponse) {
	c.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

func (c *deltaClient) recv() *discoverygrpc.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.in:
		if r.Err != nil {
			c.t.Fatalf("receiving: %v", r.Err)
		}
		return r.Msg
	case <-time.After(wait):
		c.t.Fatal("no response")
	}
	return nil
}

func (c *deltaClient) recvType(typeURL string) *discoverygrpc.DeltaDiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	if r.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a %s response, want %s", shortType(r.GetTypeUrl()), shortType(typeURL))
	}
	return r
}

func (c *deltaClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.in:
		if r.Err != nil {
			c.t.Fatalf("stream ended: %v", r.Err)
		}
		c.t.Fatalf("unexpected %s response with %v, removed %v", shortType(r.Msg.GetTypeUrl()),
			deltaNames(r.Msg), r.Msg.GetRemovedResources())
	case <-time.After(d):
	}
}

func deltaNames(r *discoverygrpc.DeltaDiscoveryResponse) []string {
	out := make([]string, len(r.GetResources()))
	for i, res := range r.GetResources() {
		out[i] = res.GetName()
	}
	sort.Strings(out)
	return out
}

func anyNames(as []*anypb.Any) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = resourceName(a)
	}
	sort.Strings(out)
	return out
}

// decode unmarshals every resource and checks it passes Envoy's own
// validation (the protoc-gen-validate rules).
func decode[T proto.Message](t testing.TB, as []*anypb.Any) map[string]T {
	t.Helper()
	out := make(map[string]T, len(as))
	for _, a := range as {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("decoding %s: %v", a.GetTypeUrl(), err)
		}
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s %s does not validate: %v", a.GetTypeUrl(), resourceName(a), err)
			}
		} else {
			t.Errorf("%T has no ValidateAll", m)
		}
		r, ok := m.(T)
		if !ok {
			t.Fatalf("resource is %T", m)
		}
		out[resourceName(a)] = r
	}
	return out
}

func deltaAnys(r *discoverygrpc.DeltaDiscoveryResponse) []*anypb.Any {
	out := make([]*anypb.Any, len(r.GetResources()))
	for i, res := range r.GetResources() {
		out[i] = res.GetResource()
	}
	return out
}

// lbEndpoint is an EDS endpoint as tests compare it.
type lbEndpoint struct {
	Addr   string
	Weight uint32
	TLS    bool
}

// endpointsOf flattens a ClusterLoadAssignment, sorted by address.
func endpointsOf(cla *endpointv3.ClusterLoadAssignment) []lbEndpoint {
	var out []lbEndpoint
	for _, loc := range cla.GetEndpoints() {
		for _, ep := range loc.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			_, tls := ep.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]
			out = append(out, lbEndpoint{
				Addr:   net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))),
				Weight: ep.GetLoadBalancingWeight().GetValue(),
				TLS:    tls,
			})
		}
	}
	slices.SortFunc(out, func(a, b lbEndpoint) int {
		if a.Addr < b.Addr {
			return -1
		}
		if a.Addr > b.Addr {
			return 1
		}
		return 0
	})
	return out
}

// proxyStatus waits until the registry shows proxy id in a state cond
// accepts, and returns it.
func proxyStatus(t testing.TB, s *Server, id string, cond func(ProxyStatus) bool) ProxyStatus {
	t.Helper()
	var got ProxyStatus
	testkit.Eventually(t, wait, "proxy "+id+" never reached the expected state", func() string {
		last := s.Proxies()
		for i := range last {
			if last[i].ID == id && cond(last[i]) {
				got = last[i]
				return ""
			}
		}
		return fmt.Sprintf("registry: %+v", last)
	})
	return got
}

func typeStatus(p ProxyStatus, short string) TypeStatus {
	for _, ts := range p.Types {
		if ts.Type == short {
			return ts
		}
	}
	return TypeStatus{}
}

// counterValue reads a counter (of one label value, if any) from reg.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) == 0 || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label[0]) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// statusProto is the error_detail of a NACK.
func statusProto(msg string) *rpcstatus.Status {
	return &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg}
}
