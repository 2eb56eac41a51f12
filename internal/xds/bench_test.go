package xds

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/model"
)

// BenchmarkPush measures the push path: one Publish until every connected
// stream has received its response and its ACK has been processed. The
// streams are in-process (no sockets) but otherwise real: go-control-plane's
// server behind our ADS service and send-timeout wrapper, each response
// serialized as gRPC would, and a client that ACKs each response as Envoy
// does. Every stream is a sidecar watching all clusters (CDS) and all
// their endpoints (EDS), the streams spread evenly over the network views,
// over SotW or delta.
//
//   - endpoint: one endpoint of one service changes; every stream gets an
//     EDS response holding that one resource.
//   - full: a network gains (or loses) its second gateway, which changes
//     the weight scale and so every service's endpoints in every view;
//     every stream gets an EDS response holding all of them.
//
// ns/op is the whole cycle, ACK processing included. deliver-ms is from
// Publish until the last stream has the response (mean, and p99 over the
// ops); publish-ms is the publisher's own time (Publish returning).
func BenchmarkPush(b *testing.B) {
	for _, sc := range []struct{ services, endpoints, views, streams int }{
		{100, 10, 2, 20},
		{2000, 10, 2, 200},
		{2000, 10, 4, 200},
	} {
		for _, delta := range []bool{false, true} {
			proto := "sotw"
			if delta {
				proto = "delta"
			}
			b.Run(fmt.Sprintf("services=%d/endpoints=%d/views=%d/streams=%d/%s", sc.services, sc.endpoints, sc.views, sc.streams, proto), func(b *testing.B) {
				bm := newBenchMesh(b, sc.services, sc.endpoints, sc.views)
				bm.connect(b, sc.streams, delta)
				b.Run("endpoint", func(b *testing.B) {
					bm.run(b, bm.base, bm.endpointChanged, model.Changes{Services: map[model.Host]struct{}{bm.changedHost: {}}}, 1)
				})
				b.Run("full", func(b *testing.B) {
					bm.run(b, bm.base, bm.gatewayAdded, model.Changes{Full: true}, sc.services)
				})
			})
		}
	}
}

type benchMesh struct {
	srv         *Server
	networks    int
	changedHost model.Host
	names       []string
	// Snapshots the benchmark alternates between: base and one changed
	// endpoint; base and a second gateway for network n0.
	base, endpointChanged, gatewayAdded *model.Snapshot

	eds     chan int // resources of each EDS response
	streams []*benchStream
	wg      sync.WaitGroup
}

func newBenchMesh(b *testing.B, services, endpoints, networks int) *benchMesh {
	b.Helper()
	st := model.NewStore(model.Config{})
	gateway := func(k int, ips ...string) {
		st.UpsertService(&model.Service{
			Cluster: model.ClusterID(fmt.Sprintf("c%d", k)), Namespace: "istio-system", Name: "istio-eastwestgateway",
			Type: model.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.%d.255.1", k), ExternalIPs: ips,
			Network: model.NetworkID(fmt.Sprintf("n%d", k)), GatewayPort: 15443,
			Ports: []model.ServicePort{{Name: "tls", Port: 15443}},
		})
	}
	for k := range networks {
		c := model.ClusterID(fmt.Sprintf("c%d", k))
		st.UpsertNamespace(&model.Namespace{Cluster: c, Name: "istio-system", Network: model.NetworkID(fmt.Sprintf("n%d", k))})
		gateway(k, fmt.Sprintf("192.0.%d.1", k))
	}
	slice := func(i, k int, extra bool) *model.EndpointSlice {
		c := model.ClusterID(fmt.Sprintf("c%d", k))
		name := fmt.Sprintf("svc-%d", i)
		es := &model.EndpointSlice{Cluster: c, Namespace: "bench", Name: name + "-1", ServiceName: name,
			Ports: []model.EndpointPort{{Name: "http", Port: 8080}}}
		for j := k; j < endpoints; j += networks {
			ip := fmt.Sprintf("10.%d.%d.%d", 64+k, i/200, (i%200)+j)
			es.Endpoints = append(es.Endpoints, model.SliceEndpoint{Addresses: []string{ip}, Ready: true, Pod: fmt.Sprintf("%s-%d", name, j)})
		}
		if extra {
			es.Endpoints = append(es.Endpoints, model.SliceEndpoint{Addresses: []string{"10.250.0.1"}, Ready: true, Pod: "svc-0-extra"})
		}
		return es
	}
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		for k := range networks {
			c := model.ClusterID(fmt.Sprintf("c%d", k))
			st.UpsertService(&model.Service{Cluster: c, Namespace: "bench", Name: name, Type: model.ServiceTypeClusterIP,
				ClusterIP: fmt.Sprintf("10.%d.%d.%d", 100+k, i/250, i%250+1), Ports: []model.ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}})
			for j := k; j < endpoints; j += networks {
				st.UpsertPod(&model.Pod{Cluster: c, Namespace: "bench", Name: fmt.Sprintf("%s-%d", name, j),
					IPs: []string{fmt.Sprintf("10.%d.%d.%d", 64+k, i/200, (i%200)+j)}, TLSMode: model.TLSModeIstio, ServiceAccount: name})
			}
			st.UpsertEndpointSlice(slice(i, k, false))
		}
	}
	// The endpoint the "endpoint" change adds: mesh mTLS capable, so that
	// every view sees it (directly, or as more weight on its gateway).
	st.UpsertPod(&model.Pod{Cluster: "c0", Namespace: "bench", Name: "svc-0-extra", IPs: []string{"10.250.0.1"},
		TLSMode: model.TLSModeIstio, ServiceAccount: "svc-0"})
	st.TakeChanges()
	bm := &benchMesh{srv: New(Config{}), networks: networks, eds: make(chan int, 1<<16)}
	bm.base = st.Snapshot()
	for _, svc := range bm.base.Services() {
		for _, p := range svc.Ports {
			bm.names = append(bm.names, model.ClusterName(svc.Host, p.Port, ""))
		}
	}
	bm.changedHost = model.ServiceHost("bench", "svc-0", "")
	st.UpsertEndpointSlice(slice(0, 0, true))
	st.TakeChanges()
	bm.endpointChanged = st.Snapshot()
	st.UpsertEndpointSlice(slice(0, 0, false))
	gateway(0, "192.0.0.1", "192.0.0.2")
	st.TakeChanges()
	bm.gatewayAdded = st.Snapshot()
	bm.srv.Publish(bm.base, model.Changes{Full: true})
	return bm
}

// connect opens n streams, spread over the networks, and waits for their
// initial state.
func (bm *benchMesh) connect(b *testing.B, n int, delta bool) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() {
		cancel()
		bm.wg.Wait()
	})
	for i := range n {
		network := model.NetworkID(fmt.Sprintf("n%d", i%bm.networks))
		cluster := model.ClusterID(fmt.Sprintf("c%d", i%bm.networks))
		s := &benchStream{ctx: ctx, reqs: make(chan proto.Message, 16), names: bm.names, eds: bm.eds}
		bm.streams = append(bm.streams, s)
		bm.wg.Add(1)
		n := sidecarNode(fmt.Sprintf("p%d", i), network, cluster)
		if delta {
			go func() {
				defer bm.wg.Done()
				_ = adsService{s: bm.srv}.DeltaAggregatedResources(&grpc.GenericServerStream[discoverygrpc.DeltaDiscoveryRequest, discoverygrpc.DeltaDiscoveryResponse]{ServerStream: s})
			}()
			s.reqs <- &discoverygrpc.DeltaDiscoveryRequest{Node: n, TypeUrl: cdsType}
			s.reqs <- &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResourceNamesSubscribe: bm.names}
			continue
		}
		go func() {
			defer bm.wg.Done()
			_ = adsService{s: bm.srv}.StreamAggregatedResources(&grpc.GenericServerStream[discoverygrpc.DiscoveryRequest, discoverygrpc.DiscoveryResponse]{ServerStream: s})
		}()
		s.reqs <- &discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: cdsType}
		s.reqs <- &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: bm.names}
	}
	for range n {
		if got := <-bm.eds; got != len(bm.names) {
			b.Fatalf("initial EDS response with %d resources, want %d", got, len(bm.names))
		}
	}
}

// run alternates between two snapshots, publishing each with changes,
// and waits for every stream's EDS response of `resources` resources and
// for every stream to watch again (its ACK processed).
func (bm *benchMesh) run(b *testing.B, a, c *model.Snapshot, changes model.Changes, resources int) {
	bm.srv.Publish(a, model.Changes{Full: true})
	bm.drain()
	bm.settle(b)
	var publish time.Duration
	deliver := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		snap := c
		if i%2 == 1 {
			snap = a
		}
		start := time.Now()
		bm.srv.Publish(snap, changes)
		publish += time.Since(start)
		for range bm.streams {
			if got := <-bm.eds; got != resources {
				b.Fatalf("EDS response with %d resources, want %d", got, resources)
			}
		}
		deliver = append(deliver, time.Since(start))
		bm.settle(b)
	}
	b.StopTimer()
	slices.Sort(deliver)
	var sum time.Duration
	for _, d := range deliver {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(publish)/float64(b.N), "publish-ms/op")
	b.ReportMetric(ms(sum)/float64(b.N), "deliver-ms/op")
	b.ReportMetric(ms(deliver[(len(deliver)*99)/100]), "deliver-p99-ms")
	bm.drain()
}

// settle waits until every stream watches EDS again.
func (bm *benchMesh) settle(b *testing.B) {
	deadline := time.Now().Add(time.Minute)
	for {
		n := 0
		bm.srv.mu.Lock()
		for k, v := range bm.srv.views {
			if k.typeURL == edsType {
				v.cache.mu.Lock()
				n += len(v.cache.sotw) + len(v.cache.delta)
				v.cache.mu.Unlock()
			}
		}
		bm.srv.mu.Unlock()
		if n == len(bm.streams) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d streams watch EDS after a minute", n, len(bm.streams))
		}
		// Pacing inside the benchmark loop: a back-off (as
		// testkit.Eventually's) would add to every iteration.
		time.Sleep(20 * time.Microsecond)
	}
}

// drain waits until no stream receives anything more.
func (bm *benchMesh) drain() {
	for {
		select {
		case <-bm.eds:
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

// benchStream is an in-process ADS stream (SotW or delta) with an
// Envoy-like client that ACKs every response.
type benchStream struct {
	ctx   context.Context
	reqs  chan proto.Message
	names []string
	eds   chan int
}

func (s *benchStream) SetHeader(metadata.MD) error  { return nil }
func (s *benchStream) SendHeader(metadata.MD) error { return nil }
func (s *benchStream) SetTrailer(metadata.MD)       {}
func (s *benchStream) Context() context.Context     { return s.ctx }

// SendMsg serializes the response, as gRPC would, and has the client ACK
// it.
func (s *benchStream) SendMsg(m any) error {
	if _, err := proto.Marshal(m.(proto.Message)); err != nil {
		return err
	}
	var ack proto.Message
	switch resp := m.(type) {
	case *discoverygrpc.DiscoveryResponse:
		req := &discoverygrpc.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if resp.GetTypeUrl() == edsType {
			req.ResourceNames = s.names
			s.eds <- len(resp.GetResources())
		}
		ack = req
	case *discoverygrpc.DeltaDiscoveryResponse:
		if resp.GetTypeUrl() == edsType {
			s.eds <- len(resp.GetResources())
		}
		ack = &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
	}
	select {
	case s.reqs <- ack:
	case <-s.ctx.Done():
	}
	return nil
}

// RecvMsg hands the server the client's next request, copied as gRPC's
// decoding would.
func (s *benchStream) RecvMsg(m any) error {
	select {
	case req := <-s.reqs:
		proto.Merge(m.(proto.Message), req)
		return nil
	case <-s.ctx.Done():
		return io.EOF
	}
}
