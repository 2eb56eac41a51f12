package xds

import (
	"fmt"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"
)

func edsNames(n int, prefix string) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|5000||%s-%d.bench.svc.cluster.local", prefix, i)
	}
	return names
}

func marshalRequest(t testing.TB, req *discoverygrpc.DiscoveryRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRequestCodecSameAsProto decodes requests with the codec and with
// proto.Unmarshal and wants the same messages, shared lists or not.
func TestRequestCodecSameAsProto(t *testing.T) {
	big := edsNames(500, "svc")
	for _, tc := range []struct {
		name string
		req  *discoverygrpc.DiscoveryRequest
	}{
		{"first request with node", &discoverygrpc.DiscoveryRequest{Node: &corev3.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"}, TypeUrl: edsType, ResourceNames: big}},
		{"ack", &discoverygrpc.DiscoveryRequest{VersionInfo: "v.7", TypeUrl: edsType, ResponseNonce: "12", ResourceNames: big}},
		{"nack", &discoverygrpc.DiscoveryRequest{VersionInfo: "v.6", TypeUrl: edsType, ResponseNonce: "13", ResourceNames: big,
			ErrorDetail: &status.Status{Code: 3, Message: "bad cluster"}}},
		{"small list", &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType, ResourceNames: []string{"a", "b"}}},
		{"no names", &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType, VersionInfo: "1"}},
		{"another list", &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: edsNames(300, "other")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newRequestCodec(codecLimits{})
			b := marshalRequest(t, tc.req)
			for i := range 2 { // a miss, then a hit
				got := &discoverygrpc.DiscoveryRequest{ResourceNames: []string{"stale"}, VersionInfo: "stale"}
				if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.req, got, protocmp.Transform()); diff != "" {
					t.Errorf("decode %d: (-want +got)\n%s", i, diff)
				}
			}
		})
	}
}

func TestRequestCodecShares(t *testing.T) {
	c := newRequestCodec(codecLimits{})
	names := edsNames(200, "svc")
	one := marshalRequest(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResponseNonce: "1", ResourceNames: names})
	two := marshalRequest(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResponseNonce: "2", VersionInfo: "x", ResourceNames: names})
	var a, b discoverygrpc.DiscoveryRequest
	if err := c.unmarshalShared(one, &a); err != nil {
		t.Fatal(err)
	}
	if err := c.unmarshalShared(two, &b); err != nil {
		t.Fatal(err)
	}
	if &a.ResourceNames[0] != &b.ResourceNames[0] {
		t.Error("two requests with the same list did not share it")
	}
	if cap(a.ResourceNames) != len(a.ResourceNames) {
		t.Errorf("shared list: cap %d, len %d: an append would write into it", cap(a.ResourceNames), len(a.ResourceNames))
	}
	if b.GetResponseNonce() != "2" || b.GetVersionInfo() != "x" {
		t.Errorf("second request's own fields: %v", &b)
	}
	allocs := testing.AllocsPerRun(50, func() {
		var r discoverygrpc.DiscoveryRequest
		if err := c.unmarshalShared(two, &r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 10 {
		t.Errorf("decoding a known list of 200 names: %v allocations, want a handful", allocs)
	}
}

func TestRequestCodecRefuses(t *testing.T) {
	c := newRequestCodec(codecLimits{})
	names := edsNames(100, "svc")
	// Only names, so that the last bytes are those of the last name.
	bad := marshalRequest(t, &discoverygrpc.DiscoveryRequest{ResourceNames: names})
	// Make one name invalid UTF-8 in place (same length).
	i := len(bad) - 3
	bad[i] = 0xff
	var r discoverygrpc.DiscoveryRequest
	if err := c.unmarshalShared(bad, &r); err == nil {
		t.Error("a name with invalid UTF-8 was accepted")
	}
	if err := proto.Unmarshal(bad, &r); err == nil {
		t.Error("proto.Unmarshal accepts it too: the test does not test the codec")
	}
	// Truncated input: the same error proto gives.
	good := marshalRequest(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: names})
	if err := c.unmarshalShared(good[:len(good)-5], &r); err == nil {
		t.Error("a truncated request was accepted")
	}
}

// TestRequestCodecSplitNames: names not contiguous on the wire (legal,
// though no encoder writes them so) are decoded the ordinary way, in order.
func TestRequestCodecSplitNames(t *testing.T) {
	names := edsNames(100, "svc")
	var b []byte
	for _, n := range names[:50] {
		b = protowire.AppendTag(b, resourceNamesField, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, edsType)
	for _, n := range names[50:] {
		b = protowire.AppendTag(b, resourceNamesField, protowire.BytesType)
		b = protowire.AppendString(b, n)
	}
	c := newRequestCodec(codecLimits{})
	var r discoverygrpc.DiscoveryRequest
	if err := c.unmarshalShared(b, &r); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(names, r.GetResourceNames()); diff != "" || r.GetTypeUrl() != edsType {
		t.Errorf("split names: type %q, (-want +got)\n%s", r.GetTypeUrl(), diff)
	}
}

func FuzzRequestCodec(f *testing.F) {
	f.Add(marshalRequest(f, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResponseNonce: "1", ResourceNames: edsNames(60, "svc")}))
	f.Add([]byte{0x1a, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := newRequestCodec(codecLimits{})
		var got, want discoverygrpc.DiscoveryRequest
		errGot := c.unmarshalShared(b, &got)
		errWant := proto.Unmarshal(b, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("codec error %v, proto error %v", errGot, errWant)
		}
		if errGot == nil && !proto.Equal(&got, &want) {
			t.Fatalf("codec %v, proto %v", &got, &want)
		}
	})
}

func BenchmarkRequestDecode(b *testing.B) {
	req := marshalRequest(b, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, VersionInfo: "v.12", ResponseNonce: "33", ResourceNames: edsNames(2000, "svc")})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r discoverygrpc.DiscoveryRequest
			if err := proto.Unmarshal(req, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("shared", func(b *testing.B) {
		c := newRequestCodec(codecLimits{})
		b.ReportAllocs()
		for b.Loop() {
			var r discoverygrpc.DiscoveryRequest
			if err := c.unmarshalShared(req, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRequestCodecDelta decodes delta requests with the codec and with
// proto.Unmarshal and wants the same messages, and two subscriptions to the
// same names to share them.
func TestRequestCodecDelta(t *testing.T) {
	big := edsNames(500, "svc")
	c := newRequestCodec(codecLimits{})
	for _, req := range []*discoverygrpc.DeltaDiscoveryRequest{
		{Node: &corev3.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"}, TypeUrl: edsType, ResourceNamesSubscribe: big,
			InitialResourceVersions: map[string]string{big[0]: "v1"}},
		{TypeUrl: edsType, ResourceNamesSubscribe: big, ResourceNamesUnsubscribe: []string{"gone"}, ResponseNonce: "3"},
		{TypeUrl: edsType, ResponseNonce: "4", ErrorDetail: &status.Status{Code: 3, Message: "bad cluster"}},
		{TypeUrl: cdsType, ResourceNamesSubscribe: []string{"*"}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got := &discoverygrpc.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"stale"}, TypeUrl: "stale"}
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(req, got, protocmp.Transform()); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
	}
	var subs [2]discoverygrpc.DeltaDiscoveryRequest
	for i := range subs {
		b, err := proto.Marshal(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResourceNamesSubscribe: big, ResponseNonce: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &subs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if &subs[0].ResourceNamesSubscribe[0] != &subs[1].ResourceNamesSubscribe[0] {
		t.Error("two subscriptions to the same names did not share them")
	}
}

// TestResourceNamesField checks that field 3, which the codec shares, is the
// names list of both request types.
func TestResourceNamesField(t *testing.T) {
	for _, tc := range []struct {
		m    proto.Message
		want string
	}{
		{&discoverygrpc.DiscoveryRequest{}, "resource_names"},
		{&discoverygrpc.DeltaDiscoveryRequest{}, "resource_names_subscribe"},
	} {
		fd := tc.m.ProtoReflect().Descriptor().Fields().ByNumber(resourceNamesField)
		if fd == nil || string(fd.Name()) != tc.want || !fd.IsList() || fd.Kind().String() != "string" {
			t.Errorf("%s field %d: %v, want repeated string %s", tc.m.ProtoReflect().Descriptor().FullName(), resourceNamesField, fd, tc.want)
		}
	}
}

// splitPieces splits b into n parts, as gRPC hands over a request larger than a
// frame.
func splitPieces(b []byte, n int) mem.BufferSlice {
	var out mem.BufferSlice
	step := len(b)/n + 1
	for len(b) > 0 {
		k := min(step, len(b))
		out = append(out, mem.SliceBuffer(slices.Clone(b[:k])))
		b = b[k:]
	}
	return out
}

// TestRequestCodecPieces decodes requests that arrive in pieces, one after
// the other through the codec's reused buffer, and wants each to stay what
// it was when the next is decoded (nothing of the buffer is kept).
func TestRequestCodecPieces(t *testing.T) {
	c := newRequestCodec(codecLimits{})
	var reqs []proto.Message
	var got []proto.Message
	for i := range 6 {
		var want, into proto.Message
		names := edsNames(300+i, fmt.Sprintf("set%d", i%3))
		if i%2 == 0 {
			want = &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, VersionInfo: fmt.Sprint(i), ResponseNonce: fmt.Sprint(i), ResourceNames: names}
			into = &discoverygrpc.DiscoveryRequest{}
		} else {
			want = &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: fmt.Sprint(i), ResourceNamesSubscribe: names,
				ResourceNamesUnsubscribe: []string{fmt.Sprint("gone-", i)}}
			into = &discoverygrpc.DeltaDiscoveryRequest{}
		}
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Unmarshal(splitPieces(b, 4), into); err != nil {
			t.Fatal(err)
		}
		reqs, got = append(reqs, want), append(got, into)
	}
	for i := range reqs {
		if diff := cmp.Diff(reqs[i], got[i], protocmp.Transform()); diff != "" {
			t.Errorf("request %d after all were decoded (-want +got)\n%s", i, diff)
		}
	}
}
