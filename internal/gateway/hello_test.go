package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const helloSNI = "outbound_.5000_._.helloworld.sample.svc.cluster.local"

// captureConn is the client side of a connection that records what the
// client writes and answers nothing: a crypto/tls client writes its
// ClientHello, then fails to read the ServerHello.
type captureConn struct {
	net.Conn // nil: only the methods below are called
	buf      bytes.Buffer
}

func (c *captureConn) Write(b []byte) (int, error)      { return c.buf.Write(b) }
func (c *captureConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *captureConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// realHello returns the bytes a crypto/tls client sends first with cfg.
func realHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c := &captureConn{}
	if err := tls.Client(c, cfg).HandshakeContext(t.Context()); err == nil {
		t.Fatal("handshake against a silent peer succeeded")
	}
	if c.buf.Len() == 0 {
		t.Fatal("the TLS client wrote nothing")
	}
	return c.buf.Bytes()
}

// refragment re-encodes the handshake records of hello as records of at
// most size bytes of payload each: valid TLS that splits the ClientHello
// over many records.
func refragment(t testing.TB, hello []byte, size int) []byte {
	t.Helper()
	var payload []byte
	for rest := hello; len(rest) > 0; {
		if len(rest) < recordHeaderLen || rest[0] != recordTypeHandshake {
			t.Fatalf("not a handshake record: % x", rest[:min(len(rest), 8)])
		}
		n := int(rest[3])<<8 | int(rest[4])
		payload = append(payload, rest[recordHeaderLen:recordHeaderLen+n]...)
		rest = rest[recordHeaderLen+n:]
	}
	var out []byte
	for len(payload) > 0 {
		n := min(size, len(payload))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, payload[:n]...)
		payload = payload[n:]
	}
	return out
}

// handshakeRecord wraps a handshake message of type typ and body in one
// record.
func handshakeRecord(typ byte, body []byte) []byte {
	msg := append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordTypeHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

// manyALPN is a list of ALPN protocols long enough to push a ClientHello
// above one record (16 KiB).
func manyALPN() []string {
	protos := make([]string, 100)
	for i := range protos {
		protos[i] = strings.Repeat(string(rune('a'+i%26)), 200)
	}
	return protos
}

func TestParseHello(t *testing.T) {
	tls13 := realHello(t, &tls.Config{ServerName: helloSNI, NextProtos: []string{"istio-peer-exchange", "istio"}, MinVersion: tls.VersionTLS13})
	tls12 := realHello(t, &tls.Config{ServerName: "api.team-a.svc.cluster.local", NextProtos: []string{"h2", "http/1.1"},
		MaxVersion: tls.VersionTLS12})
	tls10 := realHello(t, &tls.Config{ServerName: "legacy.example", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10})
	large := realHello(t, &tls.Config{ServerName: helloSNI, NextProtos: manyALPN()})

	tests := []struct {
		name    string
		data    []byte
		want    clientHello
		wantErr error
	}{
		{name: "TLS 1.3 with SNI and Istio's ALPN", data: tls13, want: clientHello{helloSNI, []string{"istio-peer-exchange", "istio"}}},
		{name: "TLS 1.2 with h2", data: tls12, want: clientHello{"api.team-a.svc.cluster.local", []string{"h2", "http/1.1"}}},
		{name: "TLS 1.0 without ALPN", data: tls10, want: clientHello{serverName: "legacy.example"}},
		{
			name: "upper case SNI is lowercased",
			data: realHello(t, &tls.Config{ServerName: "HelloWorld.Sample.SVC.cluster.local"}),
			want: clientHello{serverName: "helloworld.sample.svc.cluster.local"},
		},
		{name: "no SNI", data: realHello(t, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio"}}), want: clientHello{alpn: []string{"istio"}}},
		{name: "an IP address is never sent as SNI", data: realHello(t, &tls.Config{ServerName: "10.1.2.3"}), want: clientHello{}},
		{name: "a hello over several records (crypto/tls fragments above 16 KiB)", data: large, want: clientHello{helloSNI, manyALPN()}},
		{name: "a hello cut into 1-byte records", data: refragment(t, tls13, 1), want: clientHello{helloSNI, []string{"istio-peer-exchange", "istio"}}},
		{name: "a hello cut into 100-byte records", data: refragment(t, tls12, 100), want: clientHello{"api.team-a.svc.cluster.local", []string{"h2", "http/1.1"}}},
		{name: "bytes after the hello are not looked at", data: append(bytes.Clone(tls13), "early data, or the next record"...), want: clientHello{helloSNI, []string{"istio-peer-exchange", "istio"}}},
		{name: "plaintext HTTP", data: []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n"), wantErr: errNotHello},
		{name: "SSLv2-compatible hello", data: []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0x15, 0, 0, 0, 0x10}, wantErr: errNotHello},
		{name: "an alert record", data: []byte{21, 3, 3, 0, 2, 2, 40}, wantErr: errNotHello},
		{name: "record version 2.0", data: []byte{22, 2, 0, 0, 4, 1, 0, 0, 0}, wantErr: errNotHello},
		{name: "an empty record", data: []byte{22, 3, 1, 0, 0}, wantErr: errNotHello},
		{name: "a record above 16 KiB", data: []byte{22, 3, 1, 0x40, 0x01}, wantErr: errNotHello},
		{name: "a ServerHello", data: handshakeRecord(2, make([]byte, 40)), wantErr: errNotHello},
		{name: "a hello above 64 KiB", data: []byte{22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01}, wantErr: errHelloTooLarge},
		{name: "a hello whose body is cut short", data: handshakeRecord(1, tls13[9:50]), wantErr: errNotHello},
		{name: "a hello with a session id over 32 bytes", data: handshakeRecord(1, append(append(make([]byte, 34), 33), make([]byte, 40)...)), wantErr: errNotHello},
		{name: "trailing bytes after the extensions", data: handshakeRecord(1, append(bytes.Clone(tls13[9:]), 0)), wantErr: errNotHello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, need, err := parseHello(tt.data)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || need != 0 {
				t.Fatalf("need %d, error %v; want the hello", need, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(clientHello{})); diff != "" {
				t.Errorf("hello (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseHelloPrefixes feeds every prefix of real hellos: each must ask
// for more bytes (need beyond the prefix), never fail and never claim a
// hello.
func TestParseHelloPrefixes(t *testing.T) {
	for name, hello := range map[string][]byte{
		"one record":    realHello(t, &tls.Config{ServerName: helloSNI, NextProtos: []string{"istio"}}),
		"3-byte pieces": refragment(t, realHello(t, &tls.Config{ServerName: helloSNI}), 3),
	} {
		t.Run(name, func(t *testing.T) {
			for i := range len(hello) {
				_, need, err := parseHello(hello[:i])
				if err != nil || need <= i || need > len(hello) {
					t.Fatalf("prefix of %d of %d bytes: need %d, error %v; want need in (%d, %d]", i, len(hello), need, err, i, len(hello))
				}
			}
		})
	}
}

func TestReadHello(t *testing.T) {
	hello := realHello(t, &tls.Config{ServerName: helloSNI, NextProtos: []string{"istio"}})
	want := clientHello{helloSNI, []string{"istio"}}
	large := realHello(t, &tls.Config{ServerName: helloSNI, NextProtos: manyALPN()})

	oneByOne := func(c net.Conn) error {
		for i := range hello {
			if _, err := c.Write(hello[i : i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	tests := []struct {
		name string
		// write sends the client's bytes; the client end is closed after
		// it returns unless hold is set.
		write func(c net.Conn) error
		hold  bool
		// pipe: a synchronous net.Pipe, where each read returns exactly
		// one write, instead of loopback TCP.
		pipe    bool
		timeout time.Duration
		want    clientHello
		sent    []byte // every byte the client sent, all kept for the replay
		wantErr error
	}{
		{
			name:  "one write",
			write: func(c net.Conn) error { _, err := c.Write(hello); return err },
			hold:  true,
			want:  want,
			sent:  hello,
		},
		{
			name:  "1-byte writes over TCP",
			write: oneByOne,
			hold:  true,
			want:  want,
			sent:  hello,
		},
		{
			name:  "1-byte writes over a pipe: every read returns one byte",
			write: oneByOne,
			pipe:  true,
			hold:  true,
			want:  want,
			sent:  hello,
		},
		{
			name:  "a hello larger than the pooled buffer, in several records",
			write: func(c net.Conn) error { _, err := c.Write(large); return err },
			hold:  true,
			want:  clientHello{helloSNI, manyALPN()},
			sent:  large,
		},
		{
			name:    "garbage",
			write:   func(c net.Conn) error { _, err := c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); return err },
			wantErr: errNotHello,
		},
		{
			name:    "closed before any byte",
			write:   func(net.Conn) error { return nil },
			wantErr: errHelloTruncated,
		},
		{
			name:    "closed in the middle of the hello",
			write:   func(c net.Conn) error { _, err := c.Write(hello[:len(hello)/2]); return err },
			wantErr: errHelloTruncated,
		},
		{
			name:    "a slow client: half a hello, then nothing",
			write:   func(c net.Conn) error { _, err := c.Write(hello[:len(hello)/2]); return err },
			hold:    true,
			timeout: 50 * time.Millisecond,
			wantErr: os.ErrDeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var client, server net.Conn
			if tt.pipe {
				client, server = net.Pipe()
				t.Cleanup(func() {
					_ = client.Close()
					_ = server.Close()
				})
			} else {
				client, server = tcpPair(t)
			}
			errc := make(chan error, 1)
			go func() {
				err := tt.write(client)
				if !tt.hold {
					_ = client.Close()
				}
				errc <- err
			}()
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			if err := server.SetReadDeadline(time.Now().Add(timeout)); err != nil {
				t.Fatal(err)
			}
			var bufs helloBuffers
			buf := bufs.get()
			got, err := readHello(server, buf)
			if werr := <-errc; werr != nil {
				t.Fatalf("client: %v", werr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(clientHello{})); diff != "" {
				t.Errorf("hello (-want +got):\n%s", diff)
			}
			if !bytes.Equal(*buf, tt.sent) {
				t.Errorf("kept %d bytes, want the %d the client sent, unchanged, for the replay", len(*buf), len(tt.sent))
			}
		})
	}
}

// tcpPair is a connected loopback TCP pair, closed at the end of the test.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	return client, server
}

// FuzzParseHello checks that parseHello never panics, and that a verdict on
// complete input is the same when the input arrives byte by byte.
func FuzzParseHello(f *testing.F) {
	hello := realHello(f, &tls.Config{ServerName: helloSNI, NextProtos: []string{"istio"}})
	f.Add(hello)
	f.Add(refragment(f, hello, 5))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, need, err := parseHello(data)
		if err == nil && need == 0 {
			// Every shorter prefix must be incomplete or the same hello.
			for i := range len(data) {
				ph, pneed, perr := parseHello(data[:i])
				if perr != nil {
					t.Fatalf("prefix %d fails (%v) where the whole parses", i, perr)
				}
				if pneed == 0 && !cmp.Equal(ph, h, cmp.AllowUnexported(clientHello{})) {
					t.Fatalf("prefix %d parses to %+v, the whole to %+v", i, ph, h)
				}
			}
		}
		if err == nil && need != 0 && need <= len(data) {
			t.Fatalf("need %d with %d bytes in hand", need, len(data))
		}
	})
}
