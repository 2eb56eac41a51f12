package xds

import (
	"slices"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// minReferenced is the number of resources from which a response is
// encoded by reference (see encodeResponse): below it, a copy is cheaper
// than the pieces.
const minReferenced = 64

// Field numbers the encoder writes; TestEncodeFieldNumbers checks them
// against the descriptors.
const (
	responseResourcesField protowire.Number = 2 // DiscoveryResponse.resources, DeltaDiscoveryResponse.resources
	resourceVersionField   protowire.Number = 1 // Resource.version
	resourceAnyField       protowire.Number = 2 // Resource.resource
	resourceNameField      protowire.Number = 3 // Resource.name
	anyTypeURLField        protowire.Number = 1 // Any.type_url
	anyValueField          protowire.Number = 2 // Any.value
)

// resourceOthers are the fields of Resource other than name, version and
// resource: a resource with any of them set is encoded by proto.
var resourceOthers = func() []protoreflect.FieldDescriptor {
	var out []protoreflect.FieldDescriptor
	fields := (&discoverygrpc.Resource{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		switch fd := fields.Get(i); fd.Number() {
		case resourceVersionField, resourceAnyField, resourceNameField:
		default:
			out = append(out, fd)
		}
	}
	return out
}()

// encodeResponse encodes a large SotW or delta response without copying
// its resources' marshaled values: the encoding is a list of pieces, the
// response's other fields and each resource's field headers written into
// one small buffer, and each resource's value referenced where the view
// cache keeps it. A first full CDS or EDS of a mesh of 2,000 services is
// about 1 MB of values per proxy; gRPC used to copy them into a pooled
// buffer per stream, held until the last byte was written and then kept in
// its pool, which with 200 proxies connecting at once was a third of the
// heap. The values must not change while gRPC holds the pieces: the view
// cache never changes a marshaled resource (an update makes a new one).
//
// ok is false when v is not such a response, is small, or holds something
// this encoder does not write (unknown fields, a resource's TTL or
// metadata, a nil entry): gRPC's codec then encodes it as usual. Field
// order differs from proto.Marshal's (a resource's name comes first), which
// protobuf parsers accept by definition.
func encodeResponse(v any) (mem.BufferSlice, bool) {
	switch m := v.(type) {
	case *discoverygrpc.DiscoveryResponse:
		return encodeSotW(m)
	case *discoverygrpc.DeltaDiscoveryResponse:
		return encodeDelta(m)
	}
	return nil, false
}

func encodeSotW(m *discoverygrpc.DiscoveryResponse) (mem.BufferSlice, bool) {
	return encodeEntries(m, m.GetResources(), plainAny, anySize,
		func(a *anypb.Any) int { return len(a.GetValue()) }, (*pieces).appendAny)
}

func encodeDelta(m *discoverygrpc.DeltaDiscoveryResponse) (mem.BufferSlice, bool) {
	return encodeEntries(m, m.GetResources(), plainResource, resourceSize,
		func(r *discoverygrpc.Resource) int { return len(r.GetResource().GetValue()) }, (*pieces).appendResource)
}

// encodeEntries encodes m, whose resources (field 2) are rs, as pieces:
// m's other fields, then each resource as an entry whose body (bodySize
// bytes, valueLen of them referenced) appendBody writes. ok is false when m
// is small or a resource is not plain.
func encodeEntries[R any](m proto.Message, rs []R, plain func(R) bool, bodySize, valueLen func(R) int,
	appendBody func(*pieces, R)) (mem.BufferSlice, bool) {
	if len(rs) < minReferenced {
		return nil, false
	}
	headers := 0
	for _, r := range rs {
		if !plain(r) {
			return nil, false
		}
		n := bodySize(r)
		headers += entryHeaderSize(n) + n - valueLen(r)
	}
	head, ok := encodeWithout(m)
	if !ok {
		return nil, false
	}
	e := newPieces(len(head)+headers, len(rs))
	e.buf = append(e.buf, head...)
	for _, r := range rs {
		e.buf = protowire.AppendTag(e.buf, responseResourcesField, protowire.BytesType)
		e.buf = protowire.AppendVarint(e.buf, uint64(bodySize(r)))
		appendBody(e, r)
	}
	return e.finish(), true
}

// plainAny is an Any this encoder writes: no unknown fields.
func plainAny(a *anypb.Any) bool {
	return a != nil && len(a.ProtoReflect().GetUnknown()) == 0
}

// plainResource is a Resource this encoder writes: name, version and a
// plain Any, nothing else.
func plainResource(r *discoverygrpc.Resource) bool {
	if r == nil || len(r.ProtoReflect().GetUnknown()) != 0 {
		return false
	}
	pr := r.ProtoReflect()
	if slices.ContainsFunc(resourceOthers, pr.Has) {
		return false
	}
	return r.GetResource() == nil || plainAny(r.GetResource())
}

// encodeWithout encodes m without its resources (field 2), the pieces of
// which follow it.
func encodeWithout(m proto.Message) ([]byte, bool) {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != responseResourcesField {
			dst.Set(fd, v)
		}
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	b, err := proto.Marshal(dst.Interface())
	return b, err == nil
}

func bytesFieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func anySize(a *anypb.Any) int {
	n := 0
	if tu := a.GetTypeUrl(); tu != "" {
		n += bytesFieldSize(anyTypeURLField, len(tu))
	}
	if v := a.GetValue(); len(v) > 0 {
		n += bytesFieldSize(anyValueField, len(v))
	}
	return n
}

func resourceSize(r *discoverygrpc.Resource) int {
	n := 0
	if name := r.GetName(); name != "" {
		n += bytesFieldSize(resourceNameField, len(name))
	}
	if ver := r.GetVersion(); ver != "" {
		n += bytesFieldSize(resourceVersionField, len(ver))
	}
	if a := r.GetResource(); a != nil {
		n += bytesFieldSize(resourceAnyField, anySize(a))
	}
	return n
}

// entryHeaderSize is the tag and length of a repeated entry of n bytes.
func entryHeaderSize(n int) int {
	return protowire.SizeTag(responseResourcesField) + protowire.SizeVarint(uint64(n))
}

// pieces builds the encoding: header bytes written into buf, values
// referenced between them.
type pieces struct {
	buf   []byte
	out   mem.BufferSlice
	start int // where the header bytes not yet in out begin
}

func newPieces(headerBytes, resources int) *pieces {
	return &pieces{buf: make([]byte, 0, headerBytes), out: make(mem.BufferSlice, 0, 2*resources+1)}
}

// appendAny writes a's fields, its value by reference.
func (e *pieces) appendAny(a *anypb.Any) {
	if tu := a.GetTypeUrl(); tu != "" {
		e.buf = protowire.AppendTag(e.buf, anyTypeURLField, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, tu)
	}
	v := a.GetValue()
	if len(v) == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, anyValueField, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(len(v)))
	e.out = append(e.out, mem.SliceBuffer(e.buf[e.start:len(e.buf):len(e.buf)]), mem.SliceBuffer(v))
	e.start = len(e.buf)
}

// appendResource writes r's fields, its Any's value by reference.
func (e *pieces) appendResource(r *discoverygrpc.Resource) {
	if name := r.GetName(); name != "" {
		e.buf = protowire.AppendTag(e.buf, resourceNameField, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, name)
	}
	if ver := r.GetVersion(); ver != "" {
		e.buf = protowire.AppendTag(e.buf, resourceVersionField, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, ver)
	}
	if a := r.GetResource(); a != nil {
		e.buf = protowire.AppendTag(e.buf, resourceAnyField, protowire.BytesType)
		e.buf = protowire.AppendVarint(e.buf, uint64(anySize(a)))
		e.appendAny(a)
	}
}

// finish returns the pieces. buf never grows past its capacity (the sizes
// were computed first), so the slices taken of it stay valid.
func (e *pieces) finish() mem.BufferSlice {
	if e.start < len(e.buf) {
		e.out = append(e.out, mem.SliceBuffer(e.buf[e.start:]))
	}
	return e.out
}
