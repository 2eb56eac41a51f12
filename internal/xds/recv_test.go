package xds

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// recvStream is a server stream whose RecvMsg takes its requests from
// reqs and, like gRPC's, fails once the stream has ended (its context);
// entered tells each time a RecvMsg starts waiting.
type recvStream struct {
	grpc.ServerStream
	ctx     context.Context
	reqs    chan *discoverygrpc.DeltaDiscoveryRequest
	entered chan struct{}
}

func (s *recvStream) Context() context.Context { return s.ctx }
func (s *recvStream) RecvMsg(m any) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case r := <-s.reqs:
		proto.Merge(m.(proto.Message), r)
		return nil
	case <-s.ctx.Done():
		return status.FromContextError(s.ctx.Err()).Err()
	}
}

// receivers counts the running receive goroutines of stream wrappers.
func receivers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "xds.(*timedStream).receive(")
}

// A stream with a drain channel receives on one goroutine of its own, for
// all its requests, which ends with the stream: after the handler has
// returned and gRPC has ended the stream, whether a drain failed the
// receive in flight or the stream ended otherwise.
func TestReceiveGoroutineEndsWithTheStream(t *testing.T) {
	for _, drained := range []bool{false, true} {
		t.Run(fmt.Sprintf("drained=%t", drained), func(t *testing.T) {
			testkit.Eventually(t, wait, "receive goroutines of earlier tests still running", func() string {
				if n := receivers(); n != 0 {
					return fmt.Sprintf("%d running", n)
				}
				return ""
			})
			ctx, end := context.WithCancel(t.Context())
			defer end()
			st := &recvStream{ctx: ctx, reqs: make(chan *discoverygrpc.DeltaDiscoveryRequest, 3), entered: make(chan struct{}, 1)}
			ts := New(Config{}).newTimedStream(st)
			drain := make(chan struct{})
			ts.drain = drain
			for i := range 3 {
				st.reqs <- &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: fmt.Sprint(i)}
				req := &discoverygrpc.DeltaDiscoveryRequest{}
				if err := ts.RecvMsg(req); err != nil {
					t.Fatalf("receive %d: %v", i, err)
				}
				if req.GetResponseNonce() != fmt.Sprint(i) {
					t.Fatalf("receive %d got nonce %q, want %q", i, req.GetResponseNonce(), fmt.Sprint(i))
				}
			}
			if n := receivers(); n != 1 {
				t.Errorf("%d receive goroutines after 3 receives, want 1 for the stream", n)
			}
			if drained {
				<-st.entered // the signal left by the receives above
				errc := make(chan error, 1)
				go func() { errc <- ts.RecvMsg(&discoverygrpc.DeltaDiscoveryRequest{}) }()
				<-st.entered // the receive the drain fails
				close(drain)
				wantDrained(t, "the receive in flight", <-errc)
				wantDrained(t, "a receive after the drain", ts.RecvMsg(&discoverygrpc.DeltaDiscoveryRequest{}))
			}
			// The handler returns, then gRPC ends the stream.
			ts.stop()
			end()
			testkit.Eventually(t, wait, "the receive goroutine outlived its stream", func() string {
				if n := receivers(); n != 0 {
					return fmt.Sprintf("%d running", n)
				}
				return ""
			})
		})
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
// without a drain channel; `causeway serve` always sets one.
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
