package xds

import (
	"testing"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// FuzzRequestCodecUnmarshal feeds arbitrary bytes to the request codec's
// gRPC entry point, as a state-of-the-world and as a delta request, in one
// piece and split in two (a request larger than an HTTP/2 frame), through
// one codec whose names cache is shared by every decode of an input. Each
// must decode exactly as proto.Unmarshal does, and a second decode of the
// same bytes (a hit of the names cache) must give the same result.
func FuzzRequestCodecUnmarshal(f *testing.F) {
	sotw := func(names ...string) []byte {
		b, err := proto.Marshal(&discoverygrpc.DiscoveryRequest{
			TypeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", VersionInfo: "3", ResponseNonce: "7", ResourceNames: names})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	delta, err := proto.Marshal(&discoverygrpc.DeltaDiscoveryRequest{
		TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", ResourceNamesSubscribe: []string{"outbound|80||a.b.svc.cluster.local", "*"},
		ResourceNamesUnsubscribe: []string{"x"}, ResponseNonce: "1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sotw("outbound|5000||helloworld.sample.svc.cluster.local", "outbound|80||web.app.svc.cluster.local"), 10)
	f.Add(sotw(), 0)
	f.Add(sotw("", "", ""), 3)
	f.Add(delta, 20)
	f.Add([]byte{0x1a, 0x01}, 1)             // a names entry cut short
	f.Add([]byte{0x1a, 0x02, 0xff, 0xfe}, 2) // a name that is not UTF-8
	f.Add([]byte{0x1a, 0x00, 0x1a, 0x00, 0x12, 0x00}, 4)

	f.Fuzz(func(t *testing.T, b []byte, split int) {
		c := newRequestCodec(codecLimits{})
		pieces := func() mem.BufferSlice {
			if split <= 0 || split >= len(b) {
				return mem.BufferSlice{mem.SliceBuffer(b)}
			}
			return mem.BufferSlice{mem.SliceBuffer(b[:split]), mem.SliceBuffer(b[split:])}
		}
		for _, kind := range []struct {
			fresh func() proto.Message
		}{
			{func() proto.Message { return new(discoverygrpc.DiscoveryRequest) }},
			{func() proto.Message { return new(discoverygrpc.DeltaDiscoveryRequest) }},
		} {
			want := kind.fresh()
			errWant := proto.Unmarshal(b, want)
			for range 2 { // the second decode hits the names cache
				got := kind.fresh()
				errGot := c.Unmarshal(pieces(), got)
				if (errGot == nil) != (errWant == nil) {
					t.Fatalf("%T: codec error %v, proto error %v", got, errGot, errWant)
				}
				if errGot == nil && !proto.Equal(got, want) {
					t.Fatalf("%T: codec %v, proto %v", got, got, want)
				}
			}
		}
	})
}
