package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// halfHello opens a connection to addr and sends the first bytes of a TLS
// record header, then stalls: a client stuck mid-ClientHello. It returns
// nil when the gateway closed the connection before that (a reset can
// reach a loopback client before its connect returns).
func halfHello(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte{recordTypeHandshake, 3, 1}); err != nil {
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return nil
		}
		t.Fatal(err)
	}
	return c
}

// closedByPeer reports whether c (nil: closed before it was returned) was
// closed by the gateway: a read ends with EOF or a reset, not with the
// safety deadline.
func closedByPeer(c net.Conn) bool {
	if c == nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// Before the cap, connections stalled mid-ClientHello were held for
// HelloTimeout each, without a bound. Now at most MaxPendingHellos wait:
// while they are within HelloGrace a new connection is closed at once;
// past it, a new one closes the oldest, so a real client gets through.
func TestPendingHellosCap(t *testing.T) {
	const max = 4
	for _, tc := range []struct {
		name  string
		grace time.Duration
	}{
		{"the waiting are within their grace: new connections are closed", testHelloTimeout},
		{"the waiting are past their grace: the oldest are closed", time.Nanosecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evict := tc.grace < time.Millisecond
			h := newHarnessWith(t, time.Second, testHelloTimeout, func(c *Config) { c.MaxPendingHellos, c.HelloGrace = max, tc.grace })
			backend := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
			h.cp.service("helloworld", helloPort)
			h.cp.endpoint("helloworld", "helloworld-a", helloPort, backend.addr())
			v := h.cp.push(nil)
			h.waitReady()
			h.waitPushed(v)
			before := h.errorCounts(t)
			addr := h.gw.Addr().String()

			var first, more []net.Conn
			for range max {
				first = append(first, halfHello(t, addr))
			}
			testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for %d connections to be waiting for their hello", max), testkit.Holds(func() bool { return h.gw.hellos.len() == max }))
			for range 2 * max {
				more = append(more, halfHello(t, addr))
				// One at a time: each new one is accepted before the next.
				testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for connection %d beyond the cap to be refused or to make room", len(more)), testkit.Holds(func() bool {
					return testkit.MetricValue(t, h.gw.metrics.errors[reasonHelloLimit]) == before[reasonHelloLimit.String()]+float64(len(more))
				}))
			}
			h.waitErrorCounts(t, before, map[reason]float64{reasonHelloLimit: 2 * max})
			if n := h.gw.hellos.len(); n != max {
				t.Errorf("%d connections waiting, want the cap %d", n, max)
			}
			closed := more // within grace, the new ones are closed
			if evict {
				closed = slices.Concat(first, more[:max]) // past it, the oldest
			}
			for i, c := range closed {
				if !closedByPeer(c) {
					t.Errorf("connection %d, which should have been closed, is still open", i)
				}
			}
			if !evict {
				return
			}
			// The cap is full of stalled clients; a real one gets through.
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
		})
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
	testkit.Eventually(t, waitFor, "timed out waiting for the gateway to apply LDS without its listener", testkit.Holds(func() bool { return h.gw.Table().Listener == "" }))
	code, body := h.get("/ready")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "0.0.0.0_15443") {
		t.Errorf("/ready without the listener: %d %q, want 503 naming the listener", code, body)
	}
	h.waitPushed(h.cp.push(nil))
	if code, body := h.get("/ready"); code != http.StatusOK {
		t.Errorf("/ready with the listener back: %d %q, want 200", code, body)
	}
}
