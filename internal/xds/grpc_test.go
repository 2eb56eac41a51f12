package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// echoServer is a backend that answers UnaryCall with its name.
type echoServer struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (e *echoServer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: e.name}, nil
}

// startBackend serves a named echo backend on ip (any 127/8 address is
// the loopback interface) and returns its port.
func startBackend(t *testing.T, name, ip string) uint32 {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &echoServer{name: name})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return uint32(lis.Addr().(*net.TCPAddr).Port)
}

// grpcClient dials target through grpc-go's own xDS resolver, with a
// bootstrap naming this node and our server.
func grpcClient(t *testing.T, xdsAddr, id string, network model.NetworkID, cluster model.ClusterID, target string) testgrpc.TestServiceClient {
	t.Helper()
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       id,
			"metadata": map[string]string{"NETWORK": string(network), "CLUSTER_ID": string(cluster), "GENERATOR": "grpc"},
			"locality": map[string]string{},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// reached makes n calls and returns how many each backend answered.
func reached(t *testing.T, c testgrpc.TestServiceClient, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("RPC: %v", err)
		}
		out[resp.GetHostname()]++
	}
	return out
}

// TestProxylessGRPC: grpc-go's xDS client, which no one here wrote, takes
// what the server sends (ACKs it all) and, per its network, reaches only
// the backends that network may reach directly, the other network's
// through its gateway.
func TestProxylessGRPC(t *testing.T) {
	m := newMesh(t, Config{})
	localA := startBackend(t, "local-a", "127.0.0.2")
	remoteB := startBackend(t, "remote-direct", "127.0.0.5")
	gwPort := startBackend(t, "via-gateway", "127.0.0.3")

	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.service(cluster2, "sample", "helloworld", "10.2.100.1", helloPort)
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-a", "127.0.0.2", localA})
	m.endpoints(cluster2, "sample", "helloworld", helloPort, backend{"hello-b", "127.0.0.5", remoteB})
	m.gateway("127.0.0.3", gwPort)
	m.publish()
	xdsAddr := serve(t, m.srv)

	target := "xds:///" + string(helloHost) + ":" + strconv.Itoa(helloPort)
	c1 := grpcClient(t, xdsAddr, "grpc-client-network1", network1, cluster1, target)
	c2 := grpcClient(t, xdsAddr, "grpc-client-network2", network2, cluster2, target)

	// network1 reaches its own backend directly and network2's only
	// through network2's gateway; network2 reaches its own, and not
	// network1's (network1 has no gateway, so those are left out).
	got1 := reached(t, c1, 40)
	if diff := cmp.Diff([]string{"local-a", "via-gateway"}, slices.Sorted(maps.Keys(got1))); diff != "" {
		t.Errorf("backends reached from network1 (-want +got):\n%s\ncounts: %v", diff, got1)
	}
	got2 := reached(t, c2, 20)
	if diff := cmp.Diff([]string{"remote-direct"}, slices.Sorted(maps.Keys(got2))); diff != "" {
		t.Errorf("backends reached from network2 (-want +got):\n%s\ncounts: %v", diff, got2)
	}

	// Everything was ACKed, nothing NACKed.
	for _, id := range []string{"grpc-client-network1", "grpc-client-network2"} {
		p := proxyStatus(t, m.srv, id, func(p ProxyStatus) bool {
			for _, typ := range []string{"cds", "eds", "lds", "rds"} {
				ts := typeStatus(p, typ)
				if ts.LastAck == nil || ts.LastSent == nil || ts.LastAck.Nonce != ts.LastSent.Nonce {
					return false
				}
			}
			return true
		})
		if p.Role != "grpc" {
			t.Errorf("%s: role %q, want grpc", id, p.Role)
		}
		for _, ts := range p.Types {
			if ts.LastNack != nil {
				t.Errorf("%s NACKed %s: %+v", id, ts.Type, ts.LastNack)
			}
		}
	}

	// A new backend in network1 is pushed, and reached, from network1
	// only.
	localC := startBackend(t, "local-c", "127.0.0.4")
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-c", "127.0.0.4", localC})
	m.publish()
	testkit.Eventually(t, wait, "network1's client never reached the new backend", func() string {
		if got := reached(t, c1, 10); got["local-c"] == 0 {
			return fmt.Sprintf("reached %v", got)
		}
		return ""
	})
	if got := reached(t, c2, 20); len(got) != 1 || got["remote-direct"] != 20 {
		t.Errorf("network2 after the change reached %v, want remote-direct only", got)
	}
	for _, p := range m.srv.Proxies() {
		for _, ts := range p.Types {
			if ts.LastNack != nil {
				t.Errorf("%s NACKed %s: %+v", p.ID, ts.Type, ts.LastNack)
			}
		}
	}
}
