package gateway

import (
	"crypto/tls"
	"errors"
	"io"
	"testing"
)

// chunkConn is a connection whose client sends data in pieces of at most
// size bytes, then closes; it counts what the gateway read.
type chunkConn struct {
	captureConn
	data []byte
	size int
	read int
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), c.size)], c.data)
	c.data = c.data[n:]
	c.read += n
	return n, nil
}

// FuzzReadHello is the peeker as the gateway runs it: readHello on a
// connection that delivers the bytes in pieces of any size. It must agree
// with parseHello on the whole input, never read past maxHelloRead, and keep
// every byte it read for the replay.
func FuzzReadHello(f *testing.F) {
	hello := realHello(f, &tls.Config{ServerName: helloSNI, NextProtos: []string{"istio"}})
	f.Add(hello, uint16(1))
	f.Add(hello, uint16(7))
	f.Add(refragment(f, hello, 3), uint16(100))
	f.Add(hello[:len(hello)/2], uint16(16))                          // a half hello, then EOF
	f.Add([]byte{22, 3, 1, 0x40, 0, 1, 0xff, 0xff, 0xff}, uint16(9)) // a hello that claims 16 MiB
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint16(4))
	f.Fuzz(func(t *testing.T, data []byte, size uint16) {
		c := &chunkConn{data: data, size: max(1, int(size))}
		buf := make([]byte, 0, helloBufSize)
		h, err := readHello(c, &buf)
		if c.read > maxHelloRead {
			t.Fatalf("read %d bytes, more than %d", c.read, maxHelloRead)
		}
		if len(buf) != c.read {
			t.Fatalf("kept %d of the %d bytes read for the replay", len(buf), c.read)
		}
		ph, need, perr := parseHello(data)
		switch {
		case err == nil:
			if perr != nil || need != 0 || ph.serverName != h.serverName {
				t.Fatalf("readHello found %+v; parseHello of the whole: %+v, need %d, %v", h, ph, need, perr)
			}
		case errors.Is(err, errHelloTruncated):
			if perr != nil || need == 0 {
				t.Fatalf("readHello says truncated (%v); parseHello of the whole: need %d, %v", err, need, perr)
			}
		case errors.Is(err, errNotHello), errors.Is(err, errHelloTooLarge):
		default:
			t.Fatalf("readHello: unexpected error %v", err)
		}
	})
}
