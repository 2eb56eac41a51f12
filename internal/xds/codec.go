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

// Limits of requests, and of the shared name lists of requestCodec.
const (
	// minSharedNames is the size (bytes on the wire) from which a request's
	// resource_names are shared: below it, decoding them is cheap.
	minSharedNames = 1 << 10
	// DefaultMaxRequestBytes bounds one request message (Config). A real
	// proxy's largest request is an Envoy's SotW EDS request, which names
	// every EDS cluster of the mesh: a name such as
	// outbound|5000||helloworld.sample.svc.cluster.local takes 53 bytes
	// with its tag and length, so 10,000 services of 2 ports send about
	// 1.1 MB; 4 MiB (gRPC's own default) leaves room for some 75,000 such
	// names. The server used to accept 16 MiB.
	DefaultMaxRequestBytes = 4 << 20
	// DefaultMaxRequestNames bounds the resource names of one request
	// (Config): 100,000 is above what 4 MiB of real names holds (75,000),
	// so it refuses only short or empty names, which a proxy never sends
	// and which cost the most (a 16-byte string header for each 2 wire
	// bytes: 4 MiB of empty names would be 2 million names, 32 MB).
	DefaultMaxRequestNames = 100_000
	// DefaultNamesCacheBytes bounds the memory of the shared name lists
	// (Config): what 20 distinct lists of 10,000 services' EDS names use.
	DefaultNamesCacheBytes = 64 << 20
	// listOverhead is the memory of one list beyond its key and names: the
	// slice header and the map entry (hash bucket share, key header).
	listOverhead = 24 + 48
	// nameOverhead is the memory of one name beyond its bytes: its string
	// header in the list.
	nameOverhead = 16
)

// codecLimits are the bounds a requestCodec enforces.
type codecLimits struct {
	// maxNames bounds the resource names of one request; zero means
	// DefaultMaxRequestNames.
	maxNames int
	// cacheBytes bounds the memory of the shared lists; zero means
	// DefaultNamesCacheBytes.
	cacheBytes int64
	// m receives the cache's size; nil: no metrics.
	m *metrics
}

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
//
// The lists kept are bounded by the memory they use (their keys, string
// headers and bytes: listCost), not their wire bytes: a list of empty names
// costs eight times its wire size. A request naming more than
// limits.maxNames resources is not decoded: its names are left out and it
// is marked (tooManyNames), and the server refuses it (ResourceExhausted)
// before anything reads it.
type requestCodec struct {
	base   encoding.CodecV2
	limits codecLimits
	mu     sync.Mutex
	// lists maps a list's wire bytes to the names; bytes is their memory
	// (listCost).
	lists map[string][]string
	bytes int64
}

var _ encoding.CodecV2 = (*requestCodec)(nil)

func newRequestCodec(l codecLimits) *requestCodec {
	if l.maxNames <= 0 {
		l.maxNames = DefaultMaxRequestNames
	}
	if l.cacheBytes <= 0 {
		l.cacheBytes = DefaultNamesCacheBytes
	}
	return &requestCodec{base: encoding.GetCodecV2("proto"), limits: l, lists: make(map[string][]string)}
}

// listCost is the memory a shared list of names, keyed by its wire bytes
// span, holds.
func listCost(span []byte, names []string) int64 {
	n := int64(len(span)) + listOverhead + int64(nameOverhead*len(names))
	for _, name := range names {
		n += int64(len(name))
	}
	return n
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
	start, end, count, ok := namesSpan(b)
	if count > c.limits.maxNames {
		return c.refuse(b, m, count)
	}
	if !ok || end-start < minSharedNames {
		return proto.Unmarshal(b, m)
	}
	span := b[start:end]
	c.mu.Lock()
	names, found := c.lists[string(span)]
	c.mu.Unlock()
	if !found {
		var err error
		if names, err = decodeNames(span, count); err != nil {
			return err
		}
		c.keep(span, names)
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

// keep adds a decoded list to the shared lists, unless another stream did
// meanwhile. When the lists would pass their memory bound, they start over;
// a list larger than a quarter of the bound is not kept (it is decoded
// for each request that carries it).
func (c *requestCodec) keep(span []byte, names []string) {
	cost := listCost(span, names)
	if cost > c.limits.cacheBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.lists[string(span)]; dup {
		return
	}
	before := c.bytes
	if c.bytes+cost > c.limits.cacheBytes {
		clear(c.lists)
		c.bytes = 0
	}
	c.lists[string(span)] = names
	c.bytes += cost
	if c.limits.m != nil {
		c.limits.m.namesCacheBytes.Add(float64(c.bytes - before))
	}
}

// tooManyNamesField is the field number of the mark tooManyNames reads:
// the highest proto allows, which no xDS message uses. Its value is the
// number of names the request carried.
const tooManyNamesField protowire.Number = protowire.MaxValidNumber

// refuse decodes b without its resource names (not one of them is
// allocated) and marks m as carrying count names, too many: the stream's
// request callback refuses it with a status the client sees
// (ResourceExhausted). The codec cannot refuse it itself: gRPC reports a
// codec's error as Internal, "failed to unmarshal".
func (c *requestCodec) refuse(b []byte, m proto.Message, count int) error {
	rest := make([]byte, 0, 64)
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return proto.Unmarshal(b, m) // says why b does not parse
		}
		k := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if k < 0 {
			return proto.Unmarshal(b, m)
		}
		if num != resourceNamesField && num != tooManyNamesField {
			rest = append(rest, b[i:i+n+k]...)
		}
		i += n + k
	}
	rest = protowire.AppendTag(rest, tooManyNamesField, protowire.VarintType)
	rest = protowire.AppendVarint(rest, uint64(count))
	return proto.Unmarshal(rest, m)
}

// tooManyNames returns the number of names of a request the codec refused
// to decode (refuse), or 0.
func tooManyNames(m proto.Message) int {
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == tooManyNamesField && typ == protowire.VarintType {
			v, k := protowire.ConsumeVarint(b)
			if k < 0 {
				return 0
			}
			return int(min(v, 1<<31))
		}
		k := protowire.ConsumeFieldValue(num, typ, b)
		if k < 0 {
			return 0
		}
		b = b[k:]
	}
	return 0
}

// namesSpan finds the resource_names entries of an encoded
// DiscoveryRequest: [start, end) holds all of them and nothing else, and
// count is how many there are (contiguous or not). ok is false when there
// are none, they are not contiguous, or b does not parse (proto.Unmarshal
// then says why).
func namesSpan(b []byte) (start, end, count int, ok bool) {
	start, ok = -1, true
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return 0, 0, count, false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return 0, 0, count, false
		}
		if num == resourceNamesField {
			count++
			if typ != protowire.BytesType || (start >= 0 && end != i) {
				ok = false
			}
			if start < 0 {
				start = i
			}
			end = i + n + m
		}
		i += n + m
	}
	if !ok || start < 0 {
		return 0, 0, count, false
	}
	return start, end, count, true
}

// errNamesUTF8 is proto's rule for string fields.
var errNamesUTF8 = errors.New("proto: resource_names holds invalid UTF-8")

// decodeNames decodes a span of resource_names entries (see namesSpan),
// checking UTF-8 as proto.Unmarshal does for a proto3 string; count is
// how many there are. The slice's capacity is its length, and so is its
// array's (what listCost counts).
func decodeNames(span []byte, count int) ([]string, error) {
	names := make([]string, 0, count)
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
