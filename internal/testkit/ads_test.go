package testkit

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// adsServer serves one cluster "c1" to node "n" on a loopback port and
// records the error detail of every request it gets.
type adsServer struct {
	mu      sync.Mutex
	details []string
}

func startADS(t *testing.T) (string, *adsServer) {
	t.Helper()
	snaps := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	snap, err := cache.NewSnapshot("v1", map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType: {&clusterv3.Cluster{Name: "c1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.SetSnapshot(context.Background(), "n", snap); err != nil {
		t.Fatal(err)
	}
	rec := &adsServer{}
	note := func(msg string) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.details = append(rec.details, msg)
	}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			note(r.GetErrorDetail().GetMessage())
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			note(r.GetErrorDetail().GetMessage())
			return nil
		},
	}
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(context.Background(), snaps, cb))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return ln.Addr().String(), rec
}

func (s *adsServer) sawDetail(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.details, msg) {
		return ""
	}
	return fmt.Sprintf("error details seen: %q", s.details)
}

const waitADS = 10 * time.Second

func TestADSRequestACKNACK(t *testing.T) {
	addr, srv := startADS(t)
	ads := DialADS(t.Context(), t, addr, &corev3.Node{Id: "n"})
	if err := ads.Request(resourcev3.ClusterType, "c1"); err != nil {
		t.Fatal(err)
	}
	resp, err := ads.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersionInfo() != "v1" || len(resp.GetResources()) != 1 {
		t.Fatalf("response version %q with %d resources, want v1 with 1", resp.GetVersionInfo(), len(resp.GetResources()))
	}
	if err := ads.ACK(resp, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := ads.NACK(resp, "bad cluster", "c1"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, waitADS, "the server got the NACK", func() string { return srv.sawDetail("bad cluster") })
}

func TestDeltaADSSubscribeACKNACK(t *testing.T) {
	addr, srv := startADS(t)
	ads := DialDeltaADS(t.Context(), t, addr, &corev3.Node{Id: "n"})
	if err := ads.Subscribe(resourcev3.ClusterType, "c1"); err != nil {
		t.Fatal(err)
	}
	resp, err := ads.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 || resp.GetResources()[0].GetName() != "c1" {
		t.Fatalf("delta response with %v, want c1", resp.GetResources())
	}
	if err := ads.ACK(resp); err != nil {
		t.Fatal(err)
	}
	if err := ads.NACK(resp, "bad delta cluster"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, waitADS, "the server got the NACK", func() string { return srv.sawDetail("bad delta cluster") })
}
