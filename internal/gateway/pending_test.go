package gateway

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/causeway-mesh/causeway/internal/model"
)

// halfHello opens a connection to addr and sends the first bytes of a TLS
// record header, then stalls: a client stuck mid-ClientHello.
func halfHello(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte{recordTypeHandshake, 3, 1}); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByPeer reports whether c was closed by the gateway: a read ends
// with EOF or a reset, not with the safety deadline.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// Before the cap, connections stalled mid-ClientHello were held for
// HelloTimeout each, without a bound. Now at most MaxPendingHellos wait;
// each one more closes the oldest, and a real client still gets through.
func TestPendingHellosCap(t *testing.T) {
	const max = 4
	h := newHarnessWith(t, time.Second, testHelloTimeout, func(c *Config) { c.MaxPendingHellos = max })
	backend := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
	h.cp.service("helloworld", helloPort)
	h.cp.endpoint("helloworld", "helloworld-a", helloPort, backend.addr())
	v := h.cp.push(nil)
	h.waitReady()
	h.waitPushed(v)
	before := h.errorCounts(t)
	addr := h.gw.Addr().String()

	var stalled []net.Conn
	for range max {
		stalled = append(stalled, halfHello(t, addr))
	}
	eventually(t, func() bool { return h.gw.hellos.len() == max }, "%d connections to be waiting for their hello", max)
	// Twice the cap more: each closes the oldest waiting one.
	for range 2 * max {
		stalled = append(stalled, halfHello(t, addr))
	}
	h.waitErrorCounts(t, before, map[reason]float64{reasonHelloLimit: 2 * max})
	if n := h.gw.hellos.len(); n != max {
		t.Errorf("%d connections waiting, want the cap %d", n, max)
	}
	for i, c := range stalled[:2*max] {
		if !closedByPeer(c) {
			t.Errorf("stalled connection %d (of the oldest) is still open", i)
		}
	}

	// During the attack (the cap is full of stalled clients), a real one
	// gets through.
	conn, name, err := h.dial(model.SNI(helloHost, helloPort, ""))
	if err != nil {
		t.Fatalf("a real client during the attack: %v", err)
	}
	defer func() { _ = conn.Close() }()
	if name != "helloworld-a" {
		t.Errorf("the real client reached %q", name)
	}
	if err := echo(conn, "through"); err != nil {
		t.Errorf("echo: %v", err)
	}
	if n := h.gw.hellos.len(); n > max {
		t.Errorf("%d connections waiting, over the cap %d", n, max)
	}
}

// /ready said 200 while the control plane's LDS no longer had the
// gateway's listener, so no connection could be routed.
func TestReadyNeedsListener(t *testing.T) {
	h := newHarness(t, time.Second, testHelloTimeout)
	h.cp.service("helloworld", helloPort)
	v := h.cp.push(nil)
	h.waitReady()
	h.waitPushed(v)
	if code, body := h.get("/ready"); code != http.StatusOK {
		t.Fatalf("/ready with the listener: %d %q, want 200", code, body)
	}
	h.cp.push(func(res map[resourcev3.Type][]cachetypes.Resource) { delete(res, resourcev3.ListenerType) })
	eventually(t, func() bool { return h.gw.Table().Listener == "" }, "the gateway to apply LDS without its listener")
	code, body := h.get("/ready")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "0.0.0.0_15443") {
		t.Errorf("/ready without the listener: %d %q, want 503 naming the listener", code, body)
	}
	h.waitPushed(h.cp.push(nil))
	if code, body := h.get("/ready"); code != http.StatusOK {
		t.Errorf("/ready with the listener back: %d %q, want 200", code, body)
	}
}
