package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// The benchmarks compare three ways for a client to reach a backend,
// everything on loopback (client, proxies, backends and control plane
// share the machine's cores):
//
//   - direct: the client dials the backend;
//   - gateway: through causeway gateway, configured over ADS;
//   - haproxy: through HAProxy in TCP mode routing by SNI, with the same
//     routes (haproxy_test.go); skipped when haproxy is not installed (go
//     test -v shows the skip and how to install it).
//
//	go test -run '^$' -bench 'BenchmarkGateway' -benchtime 3s ./internal/gateway/

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
	testkit.Serve(b, ln, handle)
	return netip.MustParseAddrPort(ln.Addr().String())
}

// benchHarness is a configured gateway and an HAProxy with the same
// routes, in front of an answer backend (echo:7000), a count backend
// (count:7100) and an mTLS backend (helloworld:5000).
type benchHarness struct {
	*harness
	answer, count, mtls netip.AddrPort
	// haproxy is HAProxy's address, or "" with haproxySkip saying why.
	haproxy, haproxySkip string
}

const countHost model.Host = "count.sample.svc.cluster.local"

const countPort = 7100

func benchEchoSNI() string  { return model.SNI(echoHost, echoPort, "") }
func benchCountSNI() string { return model.SNI(countHost, countPort, "") }
func benchHelloSNI() string { return model.SNI(helloHost, helloPort, "") }

// benchRoutes are the benchmarks' routes, server name to backend, as the
// control plane gives them to the gateway and as HAProxy is configured.
func benchRoutes(answer, count, mtls netip.AddrPort) map[string]netip.AddrPort {
	return map[string]netip.AddrPort{
		benchEchoSNI():  answer,
		benchCountSNI(): count,
		benchHelloSNI(): mtls,
	}
}

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
	if bin, err := lookHAProxy(); err != nil {
		h.haproxySkip = err.Error()
	} else {
		h.haproxy = startHAProxy(b, bin, benchRoutes(h.answer, h.count, h.mtls)).String()
	}
	return h
}

// contender is one way to reach the backend at direct.
type contender struct{ name, addr, skip string }

func (h *benchHarness) contenders(direct netip.AddrPort) []contender {
	return []contender{
		{name: "direct", addr: direct.String()},
		{name: "gateway", addr: h.gw.Addr().String()},
		{name: "haproxy", addr: h.haproxy, skip: h.haproxySkip},
	}
}

// run runs bench as a sub-benchmark named prefix+c.name, or skips it.
func (c contender) run(b *testing.B, prefix string, bench func(b *testing.B, addr string)) {
	b.Run(prefix+c.name, func(b *testing.B) {
		if c.addr == "" {
			b.Skip(c.skip)
		}
		bench(b, c.addr)
	})
}

// BenchmarkGatewayConnect measures connections per second. "hello": the
// client sends a real ClientHello and waits for a one-byte answer (the
// proxy's own cost per connection: accept, hello, route, dial, replay,
// two closes). "mtls": a full mutual TLS 1.3 handshake with the backend
// (ECDSA P-256), through a proxy or not.
func BenchmarkGatewayConnect(b *testing.B) {
	hello := realHello(b, &tls.Config{ServerName: benchEchoSNI(), NextProtos: []string{"istio"}})
	h := newBenchHarness(b, len(hello))
	for _, ct := range h.contenders(h.answer) {
		ct.run(b, "hello/", func(b *testing.B, addr string) {
			answer := make([]byte, 1)
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
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
	cfg := h.pki.clientTLS(b, benchHelloSNI())
	cfg.ClientSessionCache = nil // a full handshake every time
	for _, ct := range h.contenders(h.mtls) {
		ct.run(b, "mtls/", func(b *testing.B, addr string) {
			name := make([]byte, len("helloworld-a\n"))
			for b.Loop() {
				c, err := tls.Dial("tcp", addr, cfg)
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
// 64 KiB writes to a backend that discards them, through a proxy or not.
func BenchmarkGatewayThroughput(b *testing.B) {
	hello := realHello(b, &tls.Config{ServerName: benchCountSNI(), NextProtos: []string{"istio"}})
	h := newBenchHarness(b, 0)
	chunk := make([]byte, 64<<10)
	for _, ct := range h.contenders(h.count) {
		ct.run(b, "", func(b *testing.B, addr string) {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
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
