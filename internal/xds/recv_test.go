package xds

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
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
// without a drain channel; `causeway serve` always sets one. The stream
// underneath answers at once, so ns/op and allocs/op are the wrapper's.
func BenchmarkRecvMsg(b *testing.B) {
	for _, drain := range []bool{false, true} {
		name := "no-drain"
		if drain {
			name = "drain"
		}
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			ack, err := proto.Marshal(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: "7"})
			if err != nil {
				b.Fatal(err)
			}
			st := &ackStream{ctx: ctx, ack: ack}
			ts := New(Config{}).newTimedStream(st)
			if drain {
				ts.drain = make(chan struct{})
			}
			b.Cleanup(func() {
				ts.stop()
				cancel()
			})
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				// A new message each time, as go-control-plane's Recv.
				if err := ts.RecvMsg(new(discoverygrpc.DeltaDiscoveryRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
