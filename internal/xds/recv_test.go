package xds

import (
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// RecvMsg receives on the caller's goroutine, drain or not: a drain ends
// an idle stream through its handler (drainwake.go), so no goroutine waits
// beside a receive. (One per receive, then one per stream, cost the load
// bench a tenth of the server's CPU.)
func TestRecvMsgStartsNoGoroutine(t *testing.T) {
	ack, err := proto.Marshal(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: "7"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ts := New(Config{}).newTimedStream(&ackStream{ctx: ctx, ack: ack})
	defer ts.stop()
	ts.drain = make(chan struct{})
	before := runtime.NumGoroutine()
	for range 100 {
		req := new(discoverygrpc.DeltaDiscoveryRequest)
		if err := ts.RecvMsg(req); err != nil {
			t.Fatal(err)
		}
		if req.GetResponseNonce() != "7" {
			t.Fatalf("received %v, want the ACK", req)
		}
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after 100 receives, %d before: a receive left a goroutine", after, before)
	}
}

// ackStream is a server stream whose RecvMsg hands out a delta ACK at
// once, decoded from its wire form as gRPC's codec would, until its
// context ends.
type ackStream struct {
	grpc.ServerStream
	ctx context.Context
	ack []byte
}

func (s *ackStream) Context() context.Context { return s.ctx }
func (s *ackStream) RecvMsg(m any) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return proto.Unmarshal(s.ack, m.(proto.Message))
}

// BenchmarkRecvMsg measures what the stream wrapper adds to each request
// it receives (an ACK, which gives back its type's send budget), with and
// without a drain channel (`causeway serve` always sets one); the two
// should not differ.
//
//   - fake: the stream underneath decodes a request at once, so ns/op and
//     allocs/op are the wrapper's and the decoding's.
//   - grpc: a real gRPC stream over an in-process connection (bufconn): a
//     client sends b.N ACKs, the server receives them through the wrapper;
//     the whole path per request, client and transport included.
//
// cpu-ns/op is the process's CPU time (user and system) per request,
// which a loaded machine inflates less than ns/op.
func BenchmarkRecvMsg(b *testing.B) {
	ack := &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: "7"}
	wire, err := proto.Marshal(ack)
	if err != nil {
		b.Fatal(err)
	}
	for _, stream := range []string{"fake", "grpc"} {
		for _, drain := range []bool{false, true} {
			name := stream + "/no-drain"
			if drain {
				name = stream + "/drain"
			}
			b.Run(name, func(b *testing.B) {
				wrap := func(st grpc.ServerStream) *timedStream {
					ts := New(Config{}).newTimedStream(st)
					if drain {
						ts.drain = make(chan struct{})
					}
					return ts
				}
				if stream == "fake" {
					benchRecvFake(b, wrap, wire)
				} else {
					benchRecvGRPC(b, wrap, ack)
				}
			})
		}
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs f (b.N requests) timed, and reports allocations and
// cpu-ns/op.
func measure(b *testing.B, f func()) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	f()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

func benchRecvFake(b *testing.B, wrap func(grpc.ServerStream) *timedStream, wire []byte) {
	ctx, cancel := context.WithCancel(context.Background())
	ts := wrap(&ackStream{ctx: ctx, ack: wire})
	b.Cleanup(func() {
		ts.stop()
		cancel()
	})
	measure(b, func() {
		for range b.N {
			// A new message each time, as go-control-plane's Recv.
			if err := ts.RecvMsg(new(discoverygrpc.DeltaDiscoveryRequest)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchRecvGRPC(b *testing.B, wrap func(grpc.ServerStream) *timedStream, ack *discoverygrpc.DeltaDiscoveryRequest) {
	received := make(chan int, 1)
	gs := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, st grpc.ServerStream) error {
		ts := wrap(st)
		defer ts.stop()
		n := 0
		for {
			if err := ts.RecvMsg(new(discoverygrpc.DeltaDiscoveryRequest)); err != nil {
				received <- n
				return nil
			}
			n++
		}
	}))
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	cc, err := grpc.NewClient("passthrough:///bufconn", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	st, err := cc.NewStream(b.Context(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/bench.Recv/Recv")
	if err != nil {
		b.Fatal(err)
	}
	measure(b, func() {
		for range b.N {
			if err := st.SendMsg(ack); err != nil {
				b.Fatal(err)
			}
		}
		if err := st.CloseSend(); err != nil {
			b.Fatal(err)
		}
		if n := <-received; n != b.N {
			b.Fatalf("the server received %d requests, want %d", n, b.N)
		}
	})
}
