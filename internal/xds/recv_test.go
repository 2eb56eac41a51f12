package xds

import (
	"context"
	"testing"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// ackStream is a server stream whose RecvMsg hands out a delta ACK at
// once, copied as gRPC's decoding would, until its context ends.
type ackStream struct {
	grpc.ServerStream
	ctx context.Context
	ack *discoverygrpc.DeltaDiscoveryRequest
}

func (s *ackStream) Context() context.Context { return s.ctx }
func (s *ackStream) RecvMsg(m any) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	proto.Merge(m.(proto.Message), s.ack)
	return nil
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
			st := &ackStream{ctx: ctx, ack: &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: "7"}}
			ts := New(Config{}).newTimedStream(st)
			if drain {
				ts.drain = make(chan struct{})
			}
			b.Cleanup(func() {
				ts.stop()
				cancel()
			})
			req := &discoverygrpc.DeltaDiscoveryRequest{}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				proto.Reset(req)
				if err := ts.RecvMsg(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
