package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// testAnys returns n marshaled ClusterLoadAssignments of distinct sizes.
func testAnys(t testing.TB, n int) []*anypb.Any {
	t.Helper()
	out := make([]*anypb.Any, n)
	for i := range out {
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: fmt.Sprintf("outbound|5000||svc-%d.ns.svc.cluster.local", i)}
		for j := range i%5 + 1 {
			cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
				Locality: &corev3.Locality{Region: "r", Zone: fmt.Sprint(j)}})
		}
		a, err := anypb.New(cla)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	if n > 3 {
		out[3] = &anypb.Any{TypeUrl: out[3].TypeUrl} // an empty value
	}
	return out
}

func materialize(bs mem.BufferSlice) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b.ReadOnlyData()...)
	}
	return out
}

// TestEncodeSameAsProto encodes responses by reference and wants proto to
// decode them into the same messages, every field set; and the values to be
// referenced, not copied.
func TestEncodeSameAsProto(t *testing.T) {
	anys := testAnys(t, 200)
	cp := &corev3.ControlPlane{Identifier: "causeway"}
	var resources []*discoverygrpc.Resource
	for i, a := range anys {
		r := &discoverygrpc.Resource{Name: fmt.Sprintf("outbound|5000||svc-%d.ns.svc.cluster.local", i), Version: fmt.Sprintf("%032x", i), Resource: a}
		if i == 7 {
			r.Version = "" // fields left empty are left out
		}
		if i == 8 {
			r.Resource = nil
		}
		resources = append(resources, r)
	}
	for _, tc := range []struct {
		name string
		msg  proto.Message
		new  func() proto.Message
	}{
		{"sotw", &discoverygrpc.DiscoveryResponse{VersionInfo: "v.3", Resources: anys, Canary: true, TypeUrl: edsType, Nonce: "17", ControlPlane: cp},
			func() proto.Message { return &discoverygrpc.DiscoveryResponse{} }},
		{"delta", &discoverygrpc.DeltaDiscoveryResponse{SystemVersionInfo: "v.3", Resources: resources, TypeUrl: edsType,
			RemovedResources: []string{"gone-1", "gone-2"}, Nonce: "18", ControlPlane: cp,
			ResourceErrors: []*discoverygrpc.ResourceError{{ErrorDetail: &status.Status{Code: 3, Message: "x"}}}},
			func() proto.Message { return &discoverygrpc.DeltaDiscoveryResponse{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, ok := encodeResponse(tc.msg)
			if !ok {
				t.Fatal("a response of 200 resources was not encoded by reference")
			}
			b := materialize(bs)
			if len(b) != proto.Size(tc.msg) {
				t.Errorf("encoded %d bytes, proto.Size says %d", len(b), proto.Size(tc.msg))
			}
			got := tc.new()
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.msg, got, protocmp.Transform()); diff != "" {
				t.Errorf("decoded (-want +got)\n%s", diff)
			}
			// Every non-empty value is a piece of its own, the Any's bytes.
			values := map[*byte]bool{}
			for _, a := range anys {
				if len(a.GetValue()) > 0 {
					values[unsafe.SliceData(a.GetValue())] = true
				}
			}
			referenced, copied, valueBytes := 0, 0, 0
			for _, piece := range bs {
				if d := piece.ReadOnlyData(); values[unsafe.SliceData(d)] {
					referenced++
					valueBytes += len(d)
				} else {
					copied += len(d)
				}
			}
			if want := len(values); tc.name == "delta" {
				want-- // resource 8 has no Any
				if referenced != want {
					t.Errorf("%d values referenced, want %d", referenced, want)
				}
			} else if referenced != want {
				t.Errorf("%d values referenced, want %d", referenced, want)
			}
			if copied+valueBytes != len(b) || valueBytes == 0 {
				t.Errorf("%d bytes copied and %d referenced, of %d", copied, valueBytes, len(b))
			}
		})
	}
}

// TestEncodeFallsBack leaves to proto what the encoder does not write.
func TestEncodeFallsBack(t *testing.T) {
	anys := testAnys(t, 100)
	delta := func(edit func(r *discoverygrpc.Resource)) *discoverygrpc.DeltaDiscoveryResponse {
		var rs []*discoverygrpc.Resource
		for i, a := range anys {
			rs = append(rs, &discoverygrpc.Resource{Name: fmt.Sprint(i), Version: "1", Resource: a})
		}
		edit(rs[50])
		return &discoverygrpc.DeltaDiscoveryResponse{TypeUrl: edsType, Resources: rs}
	}
	withUnknown := proto.Clone(anys[10]).(*anypb.Any)
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendTag(nil, 9, protowire.VarintType))
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(withUnknown.ProtoReflect().GetUnknown(), 1))
	sotwWith := func(a *anypb.Any) *discoverygrpc.DiscoveryResponse {
		rs := slices.Clone(anys)
		rs[10] = a
		return &discoverygrpc.DiscoveryResponse{TypeUrl: edsType, Resources: rs}
	}
	for _, tc := range []struct {
		name string
		msg  any
	}{
		{"small sotw", &discoverygrpc.DiscoveryResponse{TypeUrl: edsType, Resources: anys[:minReferenced-1]}},
		{"small delta", &discoverygrpc.DeltaDiscoveryResponse{TypeUrl: edsType}},
		{"an Any with unknown fields", sotwWith(withUnknown)},
		{"a nil Any", sotwWith(nil)},
		{"a resource with a TTL", delta(func(r *discoverygrpc.Resource) { r.Ttl = durationpb.New(5) })},
		{"a resource with aliases", delta(func(r *discoverygrpc.Resource) { r.Aliases = []string{"a"} })},
		{"a resource's Any with unknown fields", delta(func(r *discoverygrpc.Resource) { r.Resource = withUnknown })},
		{"another message", &discoverygrpc.DiscoveryRequest{ResourceNames: make([]string, 100)}},
	} {
		if _, ok := encodeResponse(tc.msg); ok {
			t.Errorf("%s: encoded by reference", tc.name)
		}
	}
	// The codec still encodes them, through proto.
	c := newRequestCodec(codecLimits{})
	msg := delta(func(r *discoverygrpc.Resource) { r.Ttl = durationpb.New(5) })
	bs, err := c.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var got discoverygrpc.DeltaDiscoveryResponse
	if err := proto.Unmarshal(materialize(bs), &got); err != nil || !proto.Equal(msg, &got) {
		t.Errorf("codec fallback: %v, equal %t", err, proto.Equal(msg, &got))
	}
}

// TestEncodeFieldNumbers checks the encoder's field numbers against the
// descriptors.
func TestEncodeFieldNumbers(t *testing.T) {
	for _, tc := range []struct {
		m    proto.Message
		num  protowire.Number
		name protoreflect.Name
	}{
		{&discoverygrpc.DiscoveryResponse{}, responseResourcesField, "resources"},
		{&discoverygrpc.DeltaDiscoveryResponse{}, responseResourcesField, "resources"},
		{&discoverygrpc.Resource{}, resourceVersionField, "version"},
		{&discoverygrpc.Resource{}, resourceAnyField, "resource"},
		{&discoverygrpc.Resource{}, resourceNameField, "name"},
		{&anypb.Any{}, anyTypeURLField, "type_url"},
		{&anypb.Any{}, anyValueField, "value"},
	} {
		fd := tc.m.ProtoReflect().Descriptor().Fields().ByNumber(tc.num)
		if fd == nil || fd.Name() != tc.name {
			t.Errorf("%s field %d: %v, want %s", tc.m.ProtoReflect().Descriptor().FullName(), tc.num, fd, tc.name)
		}
	}
	if n := (&anypb.Any{}).ProtoReflect().Descriptor().Fields().Len(); n != 2 {
		t.Errorf("Any has %d fields; the encoder writes 2", n)
	}
}

// TestLargeResponsesOverGRPC sends responses large enough to be encoded by
// reference through the real server and gRPC, to a SotW and a delta client,
// and wants both to decode the same valid resources.
func TestLargeResponsesOverGRPC(t *testing.T) {
	m := newMesh(t, Config{})
	const services = 3 * minReferenced
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		m.service(cluster1, "sample", name, fmt.Sprintf("10.1.%d.%d", 100+i/200, i%200+1), 5000)
		m.endpoints(cluster1, "sample", name, 5000, backend{pod: name + "-0", ip: fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), port: 5000})
	}
	m.publish()
	cc := dial(t, serve(t, m.srv))

	s := newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))
	s.request(cdsType, nil, "", "", "")
	cds := s.recvType(cdsType)
	names := slices.Sorted(maps.Keys(decode[proto.Message](t, cds.GetResources())))
	if len(names) < services {
		t.Fatalf("SotW CDS: %d clusters, want at least %d", len(names), services)
	}
	s.ack(cds, nil)
	s.request(edsType, names, "", "", "")
	sotwEDS := decode[*endpointv3.ClusterLoadAssignment](t, s.recvType(edsType).GetResources())

	d := newDelta(t, cc, sidecarNode("sleep-2", network1, cluster1))
	d.subscribe(cdsType, nil, nil)
	dcds := d.recvType(cdsType)
	if got := deltaNames(dcds); !slices.Equal(got, names) {
		t.Errorf("delta CDS names differ from SotW's: %d vs %d", len(got), len(names))
	}
	d.ack(dcds)
	d.subscribe(edsType, names, nil)
	deltaEDS := decode[*endpointv3.ClusterLoadAssignment](t, deltaAnys(d.recvType(edsType)))

	if len(sotwEDS) != len(names) {
		t.Errorf("SotW EDS: %d assignments, want %d", len(sotwEDS), len(names))
	}
	if diff := cmp.Diff(sotwEDS, deltaEDS, protocmp.Transform()); diff != "" {
		t.Errorf("SotW and delta EDS differ (-sotw +delta)\n%s", diff)
	}
	cla := sotwEDS[string(model.ClusterName("svc-7.sample.svc.cluster.local", 5000, ""))]
	if eps := cla.GetEndpoints(); len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 ||
		eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "10.1.0.8" {
		t.Errorf("svc-7's endpoints: %v", eps)
	}
}
