package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/causeway-mesh/causeway/test/e2e/capture"
)

// Istio's names in a captured sidecar's inbound configuration: the
// listener iptables sends inbound connections to, and the SDS secrets
// pilot-agent serves (the workload certificate and the mesh root).
const (
	virtualInboundPort = 15006
	sdsWorkloadCert    = "default"
	sdsRootCA          = "ROOTCA"
	// inspectTimeout bounds how long the listener filters wait for a
	// client's first bytes.
	inspectTimeout = 5 * time.Second
	// maxInspectBytes bounds what the HTTP inspector reads to find the
	// request line.
	maxInspectBytes = 4096
)

// captureInbound is a workload's sidecar inbound as Envoy runs it after
// iptables capture: every connection to the workload goes through the
// virtual inbound listener the control plane sent last, whose filter chain
// for the connection (by destination port and what the TLS and HTTP
// inspectors saw) decides whether it is accepted, and with which TLS.
type captureInbound struct {
	cert     *workloadCert
	listener atomic.Pointer[listenerv3.Listener]
	log      *slog.Logger
}

// update takes the virtual inbound listener out of LDS, reporting whether
// there was one.
func (in *captureInbound) update(ls []*listenerv3.Listener) (bool, error) {
	l, err := capture.ListenerAt(ls, netip.AddrPortFrom(netip.IPv4Unspecified(), virtualInboundPort))
	if err != nil || l == nil {
		return false, err
	}
	if prev := in.listener.Swap(l); prev == nil || prev.String() != l.String() {
		in.log.Info("virtual inbound listener", "name", l.GetName(), "chains", len(l.GetFilterChains()))
	}
	return true, nil
}

// secrets maps SDS secret names to what pilot-agent would serve for them.
func (in *captureInbound) serverConfig(st *capture.ServerTLS, clientALPN []string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: st.MinVersion, MaxVersion: st.MaxVersion}
	for _, name := range st.CertSDS {
		if name != sdsWorkloadCert {
			return nil, fmt.Errorf("SDS certificate %q: pilot-agent serves only %q", name, sdsWorkloadCert)
		}
		cfg.Certificates = append(cfg.Certificates, in.cert.cert)
	}
	if len(cfg.Certificates) == 0 {
		return nil, errors.New("the chain's TLS names no certificate")
	}
	switch st.ValidationSDS {
	case sdsRootCA:
		cfg.ClientCAs = in.cert.roots
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if st.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		// Envoy checks the validated client certificate's SANs against
		// the chain's matchers (the mesh's trust domain).
		sans := st.ClientSANs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			var uris []string
			for _, u := range cs.PeerCertificates[0].URIs {
				uris = append(uris, u.String())
			}
			if !capture.MatchAnySAN(sans, uris) {
				return fmt.Errorf("client certificate SANs %v match none of the chain's %v", uris, sans)
			}
			return nil
		}
	case "":
		if st.RequireClientCert {
			return nil, errors.New("a client certificate is required but nothing validates it")
		}
	default:
		return nil, fmt.Errorf("SDS validation context %q: pilot-agent serves only %q", st.ValidationSDS, sdsRootCA)
	}
	// Envoy negotiates the first of its protocols the client offers and
	// goes on without ALPN when there is none.
	if p := capture.SelectALPN(st.ALPN, clientALPN); p != "" {
		cfg.NextProtos = []string{p}
	}
	return cfg, nil
}

// inboundListener hands net/http the connections of a captured inbound.
type inboundListener struct {
	net.Listener
	in *captureInbound
}

// Accept wraps the next connection; the listener filters and the chain
// decision run on its first read or write, in the connection's goroutine.
func (l *inboundListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &inboundConn{Conn: c, in: l.in}, nil
}

// inboundConn is one inbound connection: after the decision, TLS holds the
// terminated mTLS session (nil for an accepted plaintext one) and Chain
// the filter chain that took it.
type inboundConn struct {
	net.Conn
	in *captureInbound

	once  sync.Once
	err   error
	rw    io.ReadWriter
	TLS   *tls.Conn
	Chain string
	// Terminal is the chain's last filter: where Envoy would send the
	// bytes (it must be the workload's inbound cluster).
	Terminal capture.Terminal
}

func (c *inboundConn) Read(b []byte) (int, error) {
	c.once.Do(c.decide)
	if c.err != nil {
		return 0, c.err
	}
	return c.rw.Read(b)
}

func (c *inboundConn) Write(b []byte) (int, error) {
	c.once.Do(c.decide)
	if c.err != nil {
		return 0, c.err
	}
	return c.rw.Write(b)
}

// peekedConn reads first what the inspectors peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// decide runs the TLS and HTTP inspectors and picks the filter chain as
// Envoy would; a connection without a chain is closed (refused).
func (c *inboundConn) decide() {
	c.err = c.inspect()
	if c.err != nil {
		c.in.log.Info("inbound connection refused", "from", c.RemoteAddr().String(), "to", c.LocalAddr().String(), "error", c.err)
		_ = c.Close()
	}
}

func (c *inboundConn) inspect() error {
	l := c.in.listener.Load()
	if l == nil {
		return errors.New("no virtual inbound listener yet")
	}
	local, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return fmt.Errorf("local address: %w", err)
	}
	remote, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return fmt.Errorf("remote address: %w", err)
	}
	_ = c.SetDeadline(time.Now().Add(inspectTimeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	br := bufio.NewReaderSize(c.Conn, maxInspectBytes)
	first, err := br.Peek(1)
	if err != nil {
		return fmt.Errorf("inspect the first byte: %w", err)
	}
	pc := &peekedConn{Conn: c.Conn, r: br}
	conn := capture.Conn{Dst: local, Src: remote}
	if first[0] == 0x16 { // a TLS handshake record: what the TLS inspector looks for
		conn.Transport = capture.TransportTLS
		tc := tls.Server(pc, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				conn.ALPN, conn.SNI = hello.SupportedProtos, hello.ServerName
				fc, err := capture.MatchChain(l, conn)
				if err != nil {
					return nil, err
				}
				c.Chain = fc.GetName()
				if c.Terminal, err = capture.TerminalOf(fc); err != nil {
					return nil, err
				}
				st, err := capture.DownstreamTLSOf(fc)
				if err != nil {
					return nil, err
				}
				if st == nil {
					return nil, fmt.Errorf("chain %q passes TLS through to the application, which does not speak it", fc.GetName())
				}
				return c.in.serverConfig(st, hello.SupportedProtos)
			},
		})
		ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		c.TLS, c.rw = tc, tc
		c.in.log.Info("inbound mTLS", "chain", c.Chain, "alpn", tc.ConnectionState().NegotiatedProtocol, "peer", peerID(tc.ConnectionState().PeerCertificates))
		return nil
	}
	conn.Transport = capture.TransportRaw
	conn.ALPN = sniffHTTP(br)
	fc, err := capture.MatchChain(l, conn)
	if err != nil {
		return err
	}
	st, err := capture.DownstreamTLSOf(fc)
	if err != nil {
		return err
	}
	if st != nil {
		return fmt.Errorf("chain %q wants TLS of a plaintext connection", fc.GetName())
	}
	if c.Terminal, err = capture.TerminalOf(fc); err != nil {
		return err
	}
	c.Chain, c.rw = fc.GetName(), pc
	c.in.log.Info("inbound plaintext", "chain", c.Chain, "alpn", conn.ALPN)
	return nil
}

// sniffHTTP is what Envoy's HTTP inspector reports of a plaintext
// connection: h2c for the HTTP/2 preface, http/1.1 (or http/1.0) for an
// HTTP/1 request line, nothing otherwise. It reads at most
// maxInspectBytes.
func sniffHTTP(br *bufio.Reader) []string {
	for n := 1; n <= maxInspectBytes; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return nil
		}
		if bytes.HasPrefix(b, []byte("PRI * HTTP/2.0")) {
			return []string{"h2c"}
		}
		if b[n-1] != '\n' {
			continue
		}
		line := bytes.TrimRight(b, "\r\n")
		switch {
		case bytes.HasSuffix(line, []byte(" HTTP/1.1")):
			return []string{"http/1.1"}
		case bytes.HasSuffix(line, []byte(" HTTP/1.0")):
			return []string{"http/1.0"}
		}
		return nil
	}
	return nil
}

// deliver checks that the connection's chain sends a request for host
// and path to the workload's inbound cluster of its port, as Envoy's
// inbound|PORT|| would deliver it to the application.
func (c *inboundConn) deliver(host, path string) error {
	_, port, err := net.SplitHostPort(c.LocalAddr().String())
	if err != nil {
		return err
	}
	want := "inbound|" + port + "||"
	got := c.Terminal.Cluster
	if c.Terminal.HTTP {
		if c.Terminal.Routes == nil {
			return fmt.Errorf("chain %q routes by RDS %q; an inbound chain carries its routes inline", c.Chain, c.Terminal.RDS)
		}
		r, err := capture.RouteCluster(c.Terminal.Routes, host, path)
		if err != nil {
			return fmt.Errorf("chain %q: %w", c.Chain, err)
		}
		got = r.Cluster
	}
	if got != want {
		return fmt.Errorf("chain %q sends the request to %q, not to %s", c.Chain, got, want)
	}
	return nil
}

// plaintextHello is a client without a sidecar (or with mTLS disabled):
// GET /hello in plaintext to addr, dialed with dial (a network
// namespace's). It returns the version
// and the peer helloworld reports, or the error (a refused connection is
// closed before any answer).
func plaintextHello(ctx context.Context, dial func(context.Context, string) (net.Conn, error), addr string) (version, peer string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := dial(ctx, addr)
	if err != nil {
		return "", "", err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+fmt.Sprintf("helloworld.%s:%d", sampleNamespace, helloworldPort)+"/hello", nil)
	if err != nil {
		return "", "", err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return "", "", fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", "", fmt.Errorf("read: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	m := helloLine.FindStringSubmatch(strings.TrimSpace(string(body)))
	if m == nil {
		return "", "", fmt.Errorf("unexpected answer %q", body)
	}
	return m[1], m[3], nil
}
