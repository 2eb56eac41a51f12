package server

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// faultProxy is a TCP proxy in front of an API server that a test can cut
// (every connection closed, the port refusing new ones: what a client sees
// of a killed API server) and restore on the same port. The API server's
// certificate names 127.0.0.1, so TLS through the proxy verifies.
type faultProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

// URL is the https URL of the API server through the proxy.
func (p *faultProxy) URL() string { return "https://" + p.addr }

func (p *faultProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.pipe(c) })
		}
	})
}

func (p *faultProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut while dialing
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	copyClose := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	wg.Go(func() { copyClose(up, c) })
	wg.Go(func() { copyClose(c, up) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// down closes the listener and every connection.
func (p *faultProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
}

// up listens again on the same port.
func (p *faultProxy) up() {
	p.t.Helper()
	// The port was just released; retry briefly.
	testkit.Eventually(p.t, 5*time.Second, "proxy: listen again on "+p.addr, func() string {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return err.Error()
		}
		p.serve(ln)
		return ""
	})
}
