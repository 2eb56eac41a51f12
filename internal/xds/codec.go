package xds

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Bounds of the shared name lists of requestCodec.
const (
	// minSharedNames is the size (bytes on the wire) from which a request's
	// resource_names are shared: below it, decoding them is cheap.
	minSharedNames = 1 << 10
	// maxSharedNameBytes bounds the wire bytes of every list kept; when a
	// new list would pass it, the table starts over.
	maxSharedNameBytes = 64 << 20
)

// resourceNamesField is DiscoveryRequest.resource_names and
// DeltaDiscoveryRequest.resource_names_subscribe (a test checks both).
const resourceNamesField protowire.Number = 3

// requestCodec is gRPC's proto codec with one difference: a
// state-of-the-world DiscoveryRequest's resource_names (and a delta
// request's resource_names_subscribe) are decoded once per distinct list
// and shared. An Envoy sends its whole subscription (every
// EDS cluster of the mesh: 2,000 names) with every ACK, the same list each
// time, and the proxies of one view send the same list as each other;
// decoding each into 2,000 new strings was a quarter of the control plane's
// CPU under churn, and the garbage a seventh more. The list's wire bytes
// are the key: a request whose list is byte for byte one seen before gets
// that list's []string, which no one may modify (its capacity is its
// length, so an append copies). Large responses are encoded without
// copying their resources (encodeResponse). Every other message goes to
// gRPC's codec unchanged.
type requestCodec struct {
	base encoding.CodecV2
	mu   sync.Mutex
	// lists maps a list's wire bytes to the names; bytes counts the keys.
	lists map[string][]string
	bytes int
}

var _ encoding.CodecV2 = (*requestCodec)(nil)

func newRequestCodec() *requestCodec {
	return &requestCodec{base: encoding.GetCodecV2("proto"), lists: make(map[string][]string)}
}

// serverCodecOption makes every message of a gRPC server go through c.
func serverCodecOption(c *requestCodec) grpc.ServerOption { return grpc.ForceServerCodecV2(c) }

// Name is the codec's content subtype, gRPC's default.
func (c *requestCodec) Name() string { return c.base.Name() }

// Marshal encodes a large response by reference (encodeResponse), and
// anything else as gRPC's codec does.
func (c *requestCodec) Marshal(v any) (mem.BufferSlice, error) {
	if out, ok := encodeResponse(v); ok {
		return out, nil
	}
	return c.base.Marshal(v)
}

// Unmarshal decodes data into v.
func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var m proto.Message
	switch req := v.(type) {
	case *discoverygrpc.DiscoveryRequest:
		m = req
	case *discoverygrpc.DeltaDiscoveryRequest:
		m = req
	default:
		return c.base.Unmarshal(data, v)
	}
	if len(data) == 1 {
		return c.unmarshalShared(data[0].ReadOnlyData(), m)
	}
	// A request larger than an HTTP/2 frame arrives in pieces. gRPC's
	// MaterializeToBuffer would take a zeroed buffer from its pool for each
	// (9% of the server's CPU with SotW ACKs of 2,000 names); nothing of b
	// is kept after decoding (proto copies what it keeps), so one buffer
	// of the codec's own is reused as is.
	bp := requestBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for _, piece := range data {
		b = append(b, piece.ReadOnlyData()...)
	}
	err := c.unmarshalShared(b, m)
	if cap(b) <= maxPooledRequest {
		*bp = b[:0]
		requestBufs.Put(bp)
	}
	return err
}

// requestBufs are the buffers of requests that arrive in pieces, up to
// maxPooledRequest bytes.
var requestBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRequest = 1 << 20

// unmarshalShared decodes b into m, a DiscoveryRequest or a
// DeltaDiscoveryRequest, its names list of field 3 shared with the
// requests that carried the same list, when the list's entries are
// contiguous on the wire (they always are when the sender writes fields in
// order, as protobuf encoders do) and large enough. A delta stream
// subscribes to its EDS names once, not with every ACK, but every proxy of
// a view subscribes to the same 2,000: they share one list, and
// go-control-plane's subscription maps share its strings.
func (c *requestCodec) unmarshalShared(b []byte, m proto.Message) error {
	start, end, ok := namesSpan(b)
	if !ok || end-start < minSharedNames {
		return proto.Unmarshal(b, m)
	}
	span := b[start:end]
	c.mu.Lock()
	names, found := c.lists[string(span)]
	c.mu.Unlock()
	if !found {
		var err error
		if names, err = decodeNames(span); err != nil {
			return err
		}
		c.mu.Lock()
		if prev, dup := c.lists[string(span)]; dup {
			names = prev // decoded meanwhile by another stream
		} else {
			if c.bytes+len(span) > maxSharedNameBytes {
				clear(c.lists)
				c.bytes = 0
			}
			c.lists[string(span)] = names
			c.bytes += len(span)
		}
		c.mu.Unlock()
	}
	rest := make([]byte, 0, len(b)-len(span))
	rest = append(append(rest, b[:start]...), b[end:]...)
	if err := proto.Unmarshal(rest, m); err != nil {
		return err
	}
	switch r := m.(type) {
	case *discoverygrpc.DiscoveryRequest:
		r.ResourceNames = names
	case *discoverygrpc.DeltaDiscoveryRequest:
		r.ResourceNamesSubscribe = names
	}
	return nil
}

// namesSpan finds the resource_names entries of an encoded
// DiscoveryRequest: [start, end) holds all of them and nothing else. ok is
// false when there are none, they are not contiguous, or b does not parse
// (proto.Unmarshal then says why).
func namesSpan(b []byte) (start, end int, ok bool) {
	start = -1
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return 0, 0, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return 0, 0, false
		}
		if num == resourceNamesField {
			if typ != protowire.BytesType || (start >= 0 && end != i) {
				return 0, 0, false
			}
			if start < 0 {
				start = i
			}
			end = i + n + m
		}
		i += n + m
	}
	return start, end, start >= 0
}

// errNamesUTF8 is proto's rule for string fields.
var errNamesUTF8 = errors.New("proto: resource_names holds invalid UTF-8")

// decodeNames decodes a span of resource_names entries (see namesSpan),
// checking UTF-8 as proto.Unmarshal does for a proto3 string. The slice's
// capacity is its length.
func decodeNames(span []byte) ([]string, error) {
	var names []string
	for i := 0; i < len(span); {
		_, _, n := protowire.ConsumeTag(span[i:])
		if n < 0 {
			return nil, fmt.Errorf("proto: resource_names: %w", protowire.ParseError(n))
		}
		v, m := protowire.ConsumeBytes(span[i+n:])
		if m < 0 {
			return nil, fmt.Errorf("proto: resource_names: %w", protowire.ParseError(m))
		}
		if !utf8.Valid(v) {
			return nil, errNamesUTF8
		}
		names = append(names, string(v))
		i += n + m
	}
	return slices.Clip(names), nil
}
