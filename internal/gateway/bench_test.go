package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/model"
)

// The benchmarks compare a client talking to a backend directly with the
// same client going through the gateway, everything on loopback (client,
// gateway, backend and control plane share the machine's cores):
//
//	go test -run '^$' -bench 'BenchmarkGateway' ./internal/gateway/

// startAnswerBackend is a plain TCP server that reads n bytes (a
// ClientHello), answers one byte and closes: the least a connection can
// cost.
func startAnswerBackend(b *testing.B, ip string, n int) netip.AddrPort {
	b.Helper()
	return startServer(b, ip, func(c net.Conn) {
		if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
			return
		}
		_, _ = c.Write([]byte{'k'})
	})
}

// startCountBackend is a plain TCP server that reads to EOF and answers
// the number of bytes it read.
func startCountBackend(b *testing.B, ip string) netip.AddrPort {
	b.Helper()
	return startServer(b, ip, func(c net.Conn) {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return
		}
		_, _ = fmt.Fprintf(c, "%d\n", n)
	})
}

func startServer(b *testing.B, ip string, handle func(net.Conn)) netip.AddrPort {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				handle(c)
			})
		}
	})
	b.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// benchHarness is a configured gateway in front of an answer backend
// (echo:7000), a count backend (count:7100) and an mTLS backend
// (helloworld:5000).
type benchHarness struct {
	*harness
	answer, count, mtls netip.AddrPort
}

const countPort = 7100

func newBenchHarness(b *testing.B, helloLen int) *benchHarness {
	h := &benchHarness{harness: newHarness(b, time.Second, testHelloTimeout)}
	h.answer = startAnswerBackend(b, "127.0.0.2", helloLen)
	h.count = startCountBackend(b, "127.0.0.3")
	h.mtls = startTLSBackend(b, h.pki, "127.0.0.4", "helloworld-a").addr()
	h.cp.service("echo", echoPort)
	h.cp.endpoint("echo", "echo-0", echoPort, h.answer)
	h.cp.service("count", countPort)
	h.cp.endpoint("count", "count-0", countPort, h.count)
	h.cp.service("helloworld", helloPort)
	h.cp.endpoint("helloworld", "helloworld-0", helloPort, h.mtls)
	h.cp.push(nil)
	h.waitReady()
	return h
}

// BenchmarkGatewayConnect measures connections per second. "hello": the
// client sends a real ClientHello and waits for a one-byte answer (the
// gateway's own cost per connection: accept, hello, route, dial, replay,
// two closes). "mtls": a full mutual TLS 1.3 handshake with the backend
// (ECDSA P-256), through the gateway or not.
func BenchmarkGatewayConnect(b *testing.B) {
	hello := realHello(b, &tls.Config{ServerName: model.SNI(echoHost, echoPort, ""), NextProtos: []string{"istio"}})
	h := newBenchHarness(b, len(hello))
	gw := h.gw.Addr().String()
	for _, tc := range []struct{ name, addr string }{{"direct", h.answer.String()}, {"gateway", gw}} {
		b.Run("hello/"+tc.name, func(b *testing.B) {
			answer := make([]byte, 1)
			for b.Loop() {
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(hello); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, answer); err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
	cfg := h.pki.clientTLS(b, model.SNI(helloHost, helloPort, ""))
	cfg.ClientSessionCache = nil // a full handshake every time
	for _, tc := range []struct{ name, addr string }{{"direct", h.mtls.String()}, {"gateway", gw}} {
		b.Run("mtls/"+tc.name, func(b *testing.B) {
			name := make([]byte, len("helloworld-a\n"))
			for b.Loop() {
				c, err := tls.Dial("tcp", tc.addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, name); err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}

// BenchmarkGatewayThroughput measures one connection's throughput (MB/s):
// 64 KiB writes to a backend that discards them, through the gateway or
// not.
func BenchmarkGatewayThroughput(b *testing.B) {
	hello := realHello(b, &tls.Config{ServerName: model.SNI("count.sample.svc.cluster.local", countPort, ""), NextProtos: []string{"istio"}})
	h := newBenchHarness(b, 0)
	chunk := make([]byte, 64<<10)
	for _, tc := range []struct{ name, addr string }{{"direct", h.count.String()}, {"gateway", h.gw.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tc.addr)))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			if _, err := c.Write(hello); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.CloseWrite(); err != nil {
				b.Fatal(err)
			}
			var n int
			if _, err := fmt.Fscanln(c, &n); err != nil {
				b.Fatal(err)
			}
			if want := len(hello) + b.N*len(chunk); n != want {
				b.Fatalf("the backend read %d bytes, want %d", n, want)
			}
		})
	}
}
