package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// TLS wire constants (RFC 8446 and RFC 5246) the ClientHello parser needs.
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	// maxRecordLen is the largest plaintext record fragment TLS allows;
	// a ClientHello is always sent in plaintext records.
	maxRecordLen          = 1 << 14
	handshakeHeaderLen    = 4
	handshakeClientHello  = 1
	extensionServerName   = 0
	extensionALPN         = 16
	serverNameTypeHost    = 0
	maxSessionIDLen       = 32
	helloRandomLen        = 32
	helloLegacyVersionLen = 2
)

// Limits on what a client may send before it names its server.
const (
	// maxHelloLen bounds the ClientHello handshake message (Envoy's TLS
	// inspector allows 64 KiB too). Real ones are below 2 KiB, post-quantum
	// key shares included.
	maxHelloLen = 64 << 10
	// maxHelloRead bounds the bytes read while looking for the ClientHello,
	// record headers included (a hello cut into tiny records carries a
	// 5-byte header per fragment).
	maxHelloRead = 2 * maxHelloLen
	// helloBufSize is the size of the pooled read buffers: one read holds a
	// typical ClientHello.
	helloBufSize = 4 << 10
)

// Errors of reading a ClientHello. errHelloIncomplete is internal: it never
// leaves readHello.
var (
	// errNotHello: the bytes cannot be the start of a TLS ClientHello.
	errNotHello = errors.New("not a TLS ClientHello")
	// errHelloTooLarge: the hello exceeds maxHelloLen or maxHelloRead.
	errHelloTooLarge = errors.New("TLS ClientHello too large")
	// errHelloTruncated: the client stopped sending (EOF) mid-hello.
	errHelloTruncated = errors.New("connection closed before the end of the TLS ClientHello")
)

// clientHello is what the gateway reads from a ClientHello: the server name
// (lowercased; empty when the client sends none) and the ALPN protocols in
// the client's order of preference.
type clientHello struct {
	serverName string
	alpn       []string
}

// parseHello looks for a complete ClientHello at the start of data, which
// holds the bytes a client sent so far. It returns:
//   - the hello and need 0 when data holds all of it;
//   - need > len(data), the number of bytes data must reach before there
//     is any point in parsing again, when it is incomplete so far;
//   - an error wrapping errNotHello or errHelloTooLarge when the bytes
//     cannot be a valid ClientHello, whatever follows.
//
// The handshake message may be fragmented over several records, and a
// record may arrive in any number of pieces; bytes after the ClientHello
// are not looked at.
func parseHello(data []byte) (h clientHello, need int, err error) {
	var (
		pos   int
		msg   []byte // the handshake message so far
		owned bool   // msg is a copy (fragments appended), not a slice of data
	)
	for {
		if len(data)-pos < recordHeaderLen {
			return clientHello{}, pos + recordHeaderLen, nil
		}
		hdr := data[pos : pos+recordHeaderLen]
		if hdr[0] != recordTypeHandshake {
			return clientHello{}, 0, fmt.Errorf("%w: record type %d, want handshake (22)", errNotHello, hdr[0])
		}
		if hdr[1] != 3 {
			return clientHello{}, 0, fmt.Errorf("%w: record version %d.%d, want 3.x", errNotHello, hdr[1], hdr[2])
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > maxRecordLen {
			return clientHello{}, 0, fmt.Errorf("%w: handshake record of %d bytes", errNotHello, n)
		}
		end := pos + recordHeaderLen + n
		if len(data) < end {
			return clientHello{}, end, nil
		}
		frag := data[pos+recordHeaderLen : end]
		switch {
		case msg == nil:
			msg = frag
		case !owned:
			msg = append(append(make([]byte, 0, len(msg)+len(frag)), msg...), frag...)
			owned = true
		default:
			msg = append(msg, frag...)
		}
		pos = end

		if len(msg) < handshakeHeaderLen {
			continue
		}
		if msg[0] != handshakeClientHello {
			return clientHello{}, 0, fmt.Errorf("%w: handshake message type %d, want ClientHello (1)", errNotHello, msg[0])
		}
		mlen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if mlen > maxHelloLen {
			return clientHello{}, 0, fmt.Errorf("%w: %d bytes, at most %d accepted", errHelloTooLarge, mlen, maxHelloLen)
		}
		if len(msg) >= handshakeHeaderLen+mlen {
			h, err := parseHelloBody(msg[handshakeHeaderLen : handshakeHeaderLen+mlen])
			return h, 0, err
		}
	}
}

// parseHelloBody parses the body of a ClientHello handshake message (RFC
// 8446 section 4.1.2, which TLS 1.0 to 1.2 hellos share).
func parseHelloBody(body []byte) (clientHello, error) {
	bad := func(what string) (clientHello, error) {
		return clientHello{}, fmt.Errorf("%w: malformed %s", errNotHello, what)
	}
	r := wire(body)
	if !r.skip(helloLegacyVersionLen + helloRandomLen) {
		return bad("version or random")
	}
	if sid, ok := r.vec8(); !ok || len(sid) > maxSessionIDLen {
		return bad("session id")
	}
	if suites, ok := r.vec16(); !ok || len(suites) < 2 || len(suites)%2 != 0 {
		return bad("cipher suites")
	}
	if comp, ok := r.vec8(); !ok || len(comp) == 0 {
		return bad("compression methods")
	}
	var h clientHello
	if len(r) == 0 {
		return h, nil // a hello without extensions (TLS 1.0 style): no SNI
	}
	exts, ok := r.vec16()
	if !ok || len(r) != 0 {
		return bad("extensions")
	}
	var seenSNI, seenALPN bool
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return bad("extension")
		}
		switch typ {
		case extensionServerName:
			if seenSNI {
				return bad("server_name: sent twice")
			}
			seenSNI = true
			name, err := parseServerName(data)
			if err != nil {
				return clientHello{}, err
			}
			h.serverName = name
		case extensionALPN:
			if seenALPN {
				return bad("ALPN: sent twice")
			}
			seenALPN = true
			protos, err := parseALPN(data)
			if err != nil {
				return clientHello{}, err
			}
			h.alpn = protos
		}
	}
	return h, nil
}

// parseServerName reads the server_name extension (RFC 6066 section 3): the
// first host_name entry, lowercased, since DNS names compare without case.
func parseServerName(data wire) (string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return "", fmt.Errorf("%w: malformed server_name extension", errNotHello)
	}
	for len(list) > 0 {
		typ, ok1 := list.u8()
		name, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: malformed server_name entry", errNotHello)
		}
		if typ != serverNameTypeHost {
			continue
		}
		if len(name) == 0 {
			return "", fmt.Errorf("%w: empty server name", errNotHello)
		}
		return lowerHostname(name)
	}
	return "", nil
}

// lowerHostname returns name lowercased, refusing bytes that have no place
// in a DNS name (controls, spaces, non-ASCII): they are either a broken or a
// hostile client, and must not reach logs or metrics.
func lowerHostname(name []byte) (string, error) {
	upper := false
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("%w: server name holds byte 0x%02x", errNotHello, c)
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if !upper {
		return string(name), nil
	}
	b := make([]byte, len(name))
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b), nil
}

// parseALPN reads the application_layer_protocol_negotiation extension
// (RFC 7301 section 3.1).
func parseALPN(data wire) ([]string, error) {
	list, ok := data.vec16()
	if !ok || len(data) != 0 || len(list) == 0 {
		return nil, fmt.Errorf("%w: malformed ALPN extension", errNotHello)
	}
	var protos []string
	for len(list) > 0 {
		p, ok := list.vec8()
		if !ok || len(p) == 0 {
			return nil, fmt.Errorf("%w: malformed ALPN protocol", errNotHello)
		}
		protos = append(protos, string(p))
	}
	return protos, nil
}

// wire reads big-endian, length-prefixed TLS fields; each method consumes
// what it returns and reports false when the input is too short.
type wire []byte

func (w *wire) skip(n int) bool {
	if len(*w) < n {
		return false
	}
	*w = (*w)[n:]
	return true
}

func (w *wire) u8() (uint8, bool) {
	if len(*w) < 1 {
		return 0, false
	}
	v := (*w)[0]
	*w = (*w)[1:]
	return v, true
}

func (w *wire) u16() (uint16, bool) {
	if len(*w) < 2 {
		return 0, false
	}
	v := uint16((*w)[0])<<8 | uint16((*w)[1])
	*w = (*w)[2:]
	return v, true
}

func (w *wire) bytes(n int) (wire, bool) {
	if len(*w) < n {
		return nil, false
	}
	v := (*w)[:n:n]
	*w = (*w)[n:]
	return v, true
}

func (w *wire) vec8() (wire, bool) {
	n, ok := w.u8()
	if !ok {
		return nil, false
	}
	return w.bytes(int(n))
}

func (w *wire) vec16() (wire, bool) {
	n, ok := w.u16()
	if !ok {
		return nil, false
	}
	return w.bytes(int(n))
}

// helloBuffers pools the read buffers of readHello; they go back to the
// pool once their bytes are written to the upstream.
type helloBuffers struct{ pool sync.Pool }

func (p *helloBuffers) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, helloBufSize)
	return &b
}

func (p *helloBuffers) put(b *[]byte) {
	if cap(*b) != helloBufSize {
		return // grown for a large hello: let it go
	}
	*b = (*b)[:0]
	p.pool.Put(b)
}

// readHello reads from c until *buf holds a complete ClientHello, and
// returns it. Every byte read stays in *buf (which may be replaced by a
// larger slice), ClientHello and anything after it, to be replayed to the
// upstream: the gateway never answers the TLS handshake itself.
//
// A timeout set on c (SetReadDeadline) bounds the whole read. Errors wrap
// errNotHello, errHelloTooLarge, errHelloTruncated or c's read error.
func readHello(c net.Conn, buf *[]byte) (clientHello, error) {
	b := *buf
	defer func() { *buf = b }()
	need := recordHeaderLen
	for {
		var readErr error
		for len(b) < need && readErr == nil {
			if cap(b) < need {
				grown := make([]byte, len(b), min(max(need, 2*cap(b)), maxHelloRead))
				copy(grown, b)
				b = grown
			}
			var n int
			n, readErr = c.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
		}
		if len(b) >= need {
			h, next, err := parseHello(b)
			switch {
			case err != nil:
				return clientHello{}, err
			case next == 0:
				return h, nil
			case next > maxHelloRead:
				return clientHello{}, fmt.Errorf("%w: more than %d bytes before its end", errHelloTooLarge, maxHelloRead)
			}
			need = next
			if readErr == nil {
				continue
			}
		}
		if errors.Is(readErr, io.EOF) {
			return clientHello{}, fmt.Errorf("%w (%d bytes received)", errHelloTruncated, len(b))
		}
		return clientHello{}, fmt.Errorf("reading the TLS ClientHello: %w", readErr)
	}
}
