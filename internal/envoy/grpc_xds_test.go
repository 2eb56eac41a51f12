package envoy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// xdsRecorder remembers what the xDS client told the server: its node, as
// ParseNode reads it, and every NACK.
type xdsRecorder struct {
	mu    sync.Mutex
	node  *Proxy
	nodeE error
	nacks []string
}

func (r *xdsRecorder) onRequest(_ int64, req *discoverygrpc.DiscoveryRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.GetNode() != nil && r.node == nil && r.nodeE == nil {
		p, err := ParseNode(req.GetNode())
		r.node, r.nodeE = &p, err
	}
	if d := req.GetErrorDetail(); d != nil {
		r.nacks = append(r.nacks, req.GetTypeUrl()+": "+d.GetMessage())
	}
	return nil
}

func (r *xdsRecorder) nacked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.nacks...)
}

// serveXDS serves the resources over ADS with go-control-plane's own server
// and returns its address.
func serveXDS(t *testing.T, nodeID string, rec *xdsRecorder, res map[resource.Type][]types.Resource) string {
	t.Helper()
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		t.Fatal(err)
	}
	// No snap.Consistent(): go-control-plane looks for RDS references in
	// filter chains only, not in an api_listener, so it fails gRPC
	// snapshots that are fine.
	c := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	if err := c.SetSnapshot(t.Context(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, c, serverv3.CallbackFuncs{StreamRequestFunc: rec.onRequest})
	gs := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	return serveGRPC(t, gs, cancel)
}

func serveGRPC(t *testing.T, gs *grpc.Server, stop func()) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis) // returns when stopped
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
		if stop != nil {
			stop()
		}
	})
	return lis.Addr().String()
}

// TestGRPCClientAcceptsResources hands the gRPC resources for helloworld to
// grpc-go's own xDS resolver (a client nobody here wrote) and calls a real
// backend through them. It also shows why GRPCClusterLoadAssignment
// exists: the same view as ClusterLoadAssignment, with one address in two
// localities, is NACKed.
func TestGRPCClientAcceptsResources(t *testing.T) {
	testreq.NotShort(t, "starts gRPC servers on loopback")
	backend := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(backend, hs)
	backendAddr := serveGRPC(t, backend, nil)
	host, portStr, err := net.SplitHostPort(backendAddr)
	if err != nil {
		t.Fatal(err)
	}
	bport, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		t.Fatal(err)
	}

	svc := helloworld()
	port := svc.Ports[0]
	// The backend stands for an endpoint of two localities, as a gateway
	// does for endpoints of several zones behind it.
	view := model.View{Cluster: model.ClusterName(svc.Host, port.Port, ""), Network: "network1", Endpoints: []model.ViewEndpoint{
		{Address: host, Port: uint32(bport), Weight: 1, TLSMode: model.TLSModeIstio, Loc: model.Locality{Region: "r1", Zone: "z1"}},
		{Address: host, Port: uint32(bport), Weight: 2, TLSMode: model.TLSModeIstio, Loc: model.Locality{Region: "r1", Zone: "z2"}},
	}}

	tests := []struct {
		name     string
		cla      *endpointv3.ClusterLoadAssignment
		wantNACK string // "" means the call must succeed with no NACK
	}{
		{name: "gRPC resources", cla: GRPCClusterLoadAssignment(view)},
		{name: "Envoy's EDS with a duplicate address", cla: ClusterLoadAssignment(view), wantNACK: "duplicate endpoint"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodeID := fmt.Sprintf("sidecar~10.0.0.%d~client.sample~sample.svc.cluster.local", i+1)
			rec := &xdsRecorder{}
			xdsAddr := serveXDS(t, nodeID, rec, map[resource.Type][]types.Resource{
				resource.ListenerType: {GRPCListener(svc, port)},
				resource.RouteType:    {GRPCRoute(svc, port)},
				resource.ClusterType:  {GRPCCluster(svc, port, ClusterOptions{})},
				resource.EndpointType: {tt.cla},
			})
			bootstrap := fmt.Sprintf(`{
				"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
				"node": {"id": %q, "metadata": {"GENERATOR": "grpc", "NETWORK": "network1", "CLUSTER_ID": "cluster1"}}
			}`, xdsAddr, nodeID)
			rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient("xds:///"+GRPCResourceName(svc.Host, port.Port),
				grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })

			timeout := 20 * time.Second
			if tt.wantNACK != "" {
				timeout = 3 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			resp, callErr := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))

			nacks := rec.nacked()
			if tt.wantNACK == "" {
				if callErr != nil {
					t.Fatalf("call through the xDS resources failed: %v (NACKs: %q)", callErr, nacks)
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("health %v, want SERVING", resp.GetStatus())
				}
				if len(nacks) != 0 {
					t.Errorf("grpc-go NACKed: %q", nacks)
				}
			} else {
				if callErr == nil {
					t.Error("the call succeeded, though the endpoints should have been rejected")
				}
				if !slicesContainSubstring(nacks, tt.wantNACK) {
					t.Errorf("NACKs %q, want one with %q", nacks, tt.wantNACK)
				}
			}

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.nodeE != nil || rec.node == nil {
				t.Fatalf("ParseNode of grpc-go's node: %v (node %v)", rec.nodeE, rec.node)
			}
			if rec.node.Role != RoleGRPC || rec.node.Network != "network1" || rec.node.Cluster != "cluster1" || rec.node.Namespace != "sample" {
				t.Errorf("ParseNode of grpc-go's node = %+v", *rec.node)
			}
		})
	}
}

func slicesContainSubstring(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
