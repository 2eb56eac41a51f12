package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/xds"
)

// TestGatewayHeadlessPodAcrossNetworks: a headless service's pod across
// networks, end to end through Causeway's own xDS server and this gateway.
// A captured sidecar of network2 is told (CDS) to reach db-1 of network1
// through network1's gateway, with mesh mTLS and a per-pod SNI; a client
// doing exactly what that cluster says reaches db-1, every time, and the
// same for db-0: the gateway, configured by the same server, passes each
// pod's SNI to that pod and no other.
func TestGatewayHeadlessPodAcrossNetworks(t *testing.T) {
	p := newMeshPKI(t)
	pods := map[string]*tlsBackend{
		"db-0": startTLSBackend(t, p, "127.0.0.2", "db-0"),
		"db-1": startTLSBackend(t, p, "127.0.0.3", "db-1"),
	}
	const (
		dbHost model.Host = "db.sample.svc.cluster.local"
		dbPort uint32     = 5432
	)
	store := model.NewStore(model.Config{})
	store.UpsertNamespace(&model.Namespace{Cluster: testCluster, Name: "istio-system", Network: testNetwork})
	store.UpsertNamespace(&model.Namespace{Cluster: "cluster2", Name: "istio-system", Network: "network2"})
	store.UpsertService(&model.Service{Cluster: testCluster, Namespace: "sample", Name: "db", Type: model.ServiceTypeClusterIP,
		ClusterIP: "None", Ports: []model.ServicePort{{Name: "tcp-db", Port: dbPort}}})
	for name, b := range pods {
		ap := b.addr()
		store.UpsertPod(&model.Pod{Cluster: testCluster, Namespace: "sample", Name: name, IPs: []string{ap.Addr().String()},
			TLSMode: model.TLSModeIstio, ServiceAccount: "db"})
		store.UpsertEndpointSlice(&model.EndpointSlice{
			Cluster: testCluster, Namespace: "sample", Name: "db-" + name, ServiceName: "db",
			Ports:     []model.EndpointPort{{Name: "tcp-db", Port: uint32(ap.Port())}},
			Endpoints: []model.SliceEndpoint{{Addresses: []string{ap.Addr().String()}, Ready: true, Pod: name}},
		})
	}

	srv := xds.New(xds.Config{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	srv.Publish(store.Snapshot(), store.TakeChanges())

	gw := runGateway(t, Config{XDS: lis.Addr().String()})
	waitGatewayReady(t, gw)
	// network1's gateway is this one: its address goes into the model as
	// a gateway Service's external IP and port.
	gwAddr := netip.MustParseAddrPort(gw.Addr().String())
	store.UpsertService(&model.Service{
		Cluster: testCluster, Namespace: "istio-system", Name: "istio-eastwestgateway",
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.20", ExternalIPs: []string{gwAddr.Addr().String()},
		Network: testNetwork, GatewayPort: uint32(gwAddr.Port()),
		Ports: []model.ServicePort{{Name: "tls", Port: uint32(gwAddr.Port())}},
	})
	srv.Publish(store.Snapshot(), store.TakeChanges())

	sidecar := capturedClusters(t, lis.Addr().String())
	for name, b := range pods {
		clusterName := envoy.PodClusterName(dbHost, dbPort, b.addr().Addr().String())
		c, ok := sidecar[clusterName]
		if !ok {
			t.Fatalf("the sidecar of network2 has no cluster %s for %s", clusterName, name)
		}
		target, sni := clusterTarget(t, c)
		if target != gwAddr.String() {
			t.Fatalf("%s: endpoint %s, want network1's gateway %s", clusterName, target, gwAddr)
		}
		cfg := p.clientTLS(t, sni)
		// The gateway applies its configuration on its own: wait for the
		// pod's chain, then every connection must reach that pod.
		testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for a connection with SNI %s to reach %s", sni, name), testkit.Holds(func() bool {
			c, got, err := dialVia(t, target, cfg)
			if err == nil {
				_ = c.Close()
			}
			return err == nil && got == name
		}))
		for range 4 {
			c, got, err := dialVia(t, target, cfg)
			if err != nil {
				t.Fatalf("SNI %s: %v", sni, err)
			}
			if got != name {
				t.Errorf("SNI %s reached %s, want %s alone", sni, got, name)
			}
			if err := echo(c, "through the gateway to "+name); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		}
	}
}

// capturedClusters fetches, over ADS from the server at addr, the
// clusters of a captured sidecar of network2 (cluster2).
func capturedClusters(t *testing.T, addr string) map[string]*clusterv3.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	md, err := structpb.NewStruct(map[string]any{"NETWORK": "network2", "CLUSTER_ID": "cluster2", "INTERCEPTION_MODE": "REDIRECT"})
	if err != nil {
		t.Fatal(err)
	}
	stream := testkit.DialADS(ctx, t, addr, &corev3.Node{Id: "sidecar~10.2.0.20~sleep-1.sample~sample.svc.cluster.local", Metadata: md})
	if err := stream.Request(resourcev3.ClusterType); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*clusterv3.Cluster{}
	for _, a := range resp.GetResources() {
		c := new(clusterv3.Cluster)
		if err := a.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		out[c.GetName()] = c
	}
	if err := stream.Stream.CloseSend(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return out
}

// clusterTarget is a STATIC cluster's one endpoint and its TLS SNI.
func clusterTarget(t *testing.T, c *clusterv3.Cluster) (addr, sni string) {
	t.Helper()
	if c.GetType() != clusterv3.Cluster_STATIC {
		t.Fatalf("%s: type %s, want STATIC", c.GetName(), c.GetType())
	}
	var eps []string
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			eps = append(eps, net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())))
		}
	}
	if len(eps) != 1 {
		t.Fatalf("%s: endpoints %v, want one gateway", c.GetName(), eps)
	}
	tc := new(tlsv3.UpstreamTlsContext)
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(tc); err != nil {
		t.Fatalf("%s: transport socket: %v", c.GetName(), err)
	}
	return eps[0], tc.GetSni()
}
