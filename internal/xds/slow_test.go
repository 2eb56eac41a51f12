package xds

import (
	"context"
	"fmt"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// bigSlice is an EndpointSlice of service big with n endpoints, the last
// one at 10.9.255.last: its EDS resource is far larger than gRPC's 64 KiB
// flow-control window.
func bigSlice(n int, last int) *model.EndpointSlice {
	es := &model.EndpointSlice{Cluster: cluster1, Namespace: "sample", Name: "big-1", ServiceName: "big",
		Ports: []model.EndpointPort{{Name: "p7000", Port: 7000}}}
	for i := range n - 1 {
		es.Endpoints = append(es.Endpoints, model.SliceEndpoint{Addresses: []string{fmt.Sprintf("10.9.%d.%d", i/250, i%250+1)}, Ready: true})
	}
	es.Endpoints = append(es.Endpoints, model.SliceEndpoint{Addresses: []string{fmt.Sprintf("10.9.255.%d", last)}, Ready: true})
	return es
}

// TestSlowConsumer: a stream whose client stops reading neither delays
// the other streams' updates nor the publisher, and is closed after the
// send timeout.
//
// gRPC lets a send through while the stream's write quota (64 KiB) is
// positive, however large the message, and the quota comes back only as
// the client's flow-control window lets data out. So a server send blocks
// only once the stream already holds more than quota plus window: the slow
// client watches two large resources (CDS of 500 services, EDS of 8000
// endpoints) that both change, and the second send blocks.
func TestSlowConsumer(t *testing.T) {
	const sendTimeout = 3 * time.Second
	reg := prometheus.NewRegistry()
	m := newMesh(t, Config{Registerer: reg, SendTimeout: sendTimeout})
	m.service(cluster1, "sample", "big", "10.1.100.9", 7000)
	m.store.UpsertEndpointSlice(bigSlice(8000, 1))
	for i := range 500 {
		m.service(cluster1, "fill", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.1.%d.%d", 110+i/250, i%250+1), 80)
	}
	m.publish()
	addr := serve(t, m.srv)
	bigCluster := model.ClusterName("big.sample.svc.cluster.local", 7000, "")
	names := []string{bigCluster}

	// The slow client has a fixed 64 KiB window (no BDP growth), and reads
	// by hand: after its first responses it stops.
	slowCC := dial(t, addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	slow := testkit.OpenADS(context.Background(), t, slowCC, sidecarNode("slow", network1, cluster1))
	sizes := map[string]int{}
	for i, req := range []*discoverygrpc.DiscoveryRequest{
		{TypeUrl: cdsType}, // the node goes with the first
		{TypeUrl: edsType, ResourceNames: names},
	} {
		if err := slow.Send(req); err != nil {
			t.Fatal(err)
		}
		r, err := slow.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sizes[shortType(r.GetTypeUrl())] = proto.Size(r)
		ack := &discoverygrpc.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
		if i == 1 {
			ack.ResourceNames = names
		}
		if err := slow.Send(ack); err != nil {
			t.Fatal(err)
		}
	}
	if sizes["cds"] < 200<<10 || sizes["eds"] < 200<<10 {
		t.Fatalf("responses of %v bytes: too small to fill the slow stream", sizes)
	}

	fast := newSotW(t, dial(t, addr), sidecarNode("fast", network1, cluster1))
	fast.request(cdsType, nil, "", "", "")
	fast.ack(fast.recvType(cdsType), nil)
	fast.request(edsType, names, "", "", "")
	fast.ack(fast.recvType(edsType), names)
	const slowID = "sidecar~10.1.0.9~slow.sample~sample.svc.cluster.local"
	proxyStatus(t, m.srv, slowID, func(p ProxyStatus) bool { return typeStatus(p, "eds").LastAck != nil })

	// Two changes in a row, each to CDS and EDS: the fast stream gets them
	// while the slow one is still stuck.
	for i := range 2 {
		m.store.UpsertEndpointSlice(bigSlice(8000, i+2))
		m.service(cluster1, "fill", fmt.Sprintf("extra-%d", i), fmt.Sprintf("10.1.120.%d", i+1), 80)
		start := time.Now()
		m.publish()
		// Publish must not wait for the stuck stream: had it waited, it
		// would have returned only once the send timeout closed that
		// stream. (Its own duration is a benchmark's business, not a test's.)
		if d := time.Since(start); d >= sendTimeout {
			t.Errorf("Publish took %s with a stuck stream: it waited for the send timeout", d)
		}
		if n := counterValue(t, reg, "causeway_xds_send_timeouts_total"); n != 0 {
			t.Fatalf("push %d: Publish returned only after the stuck stream timed out", i)
		}
		got := map[string]bool{}
		for range 2 {
			r := fast.recv()
			got[shortType(r.GetTypeUrl())] = true
			if r.GetTypeUrl() == edsType {
				fast.ack(r, names)
			} else {
				fast.ack(r, nil)
			}
		}
		if !got["cds"] || !got["eds"] {
			t.Errorf("push %d: got %v, want cds and eds", i, got)
		}
		if n := counterValue(t, reg, "causeway_xds_send_timeouts_total"); n != 0 {
			t.Fatalf("push %d reached the fast stream only after the slow one timed out (%s after publishing)", i, time.Since(start))
		}
	}

	// The slow stream is closed once a send has blocked for the timeout.
	testkit.Eventually(t, sendTimeout+wait, "the stuck stream was never closed", func() string {
		if n := counterValue(t, reg, "causeway_xds_send_timeouts_total"); n != 1 {
			return fmt.Sprintf("causeway_xds_send_timeouts_total is %v, want 1", n)
		}
		return ""
	})
	for {
		_, err := slow.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("the slow stream ended with %v, want DeadlineExceeded", err)
		}
		break
	}
	proxyStatus(t, m.srv, "sidecar~10.1.0.9~fast.sample~sample.svc.cluster.local", func(ProxyStatus) bool {
		for _, p := range m.srv.Proxies() {
			if p.ID == slowID {
				return false
			}
		}
		return true
	})
}
