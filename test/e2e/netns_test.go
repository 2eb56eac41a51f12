package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testreq"
	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` keeps its namespaces' bind mounts.
const netnsDir = "/var/run/netns"

// netns is a network namespace the test made; it is deleted in t.Cleanup.
type netns struct {
	// name is the namespace's name for `ip netns`.
	name string
}

// requireNetns skips the test (or fails it in CI) unless the process is
// root and `ip netns` works.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testreq.SkipOrFail(t, "the end-to-end test needs root to create network namespaces (run go test as root, e.g. sudo -E)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testreq.SkipOrFail(t, "ip (iproute2) not found: install it with `apt-get install -y iproute2`")
	}
	probe := fmt.Sprintf("cw-e2e-probe-%d", os.Getpid())
	if out, err := exec.CommandContext(t.Context(), "ip", "netns", "add", probe).CombinedOutput(); err != nil {
		testreq.SkipOrFail(t, "`ip netns add` does not work here (%v: %s); the test needs network namespaces", err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("ip", "netns", "del", probe).CombinedOutput(); err != nil {
		t.Fatalf("delete probe namespace %s: %v: %s", probe, err, out)
	}
}

// newNetns creates the network namespace name with its loopback up and
// deletes it in t.Cleanup, even when the test fails.
func newNetns(t *testing.T, name string) *netns {
	t.Helper()
	runIP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete network namespace %s: %v: %s", name, err, out)
		}
	})
	n := &netns{name: name}
	n.ip(t, "link", "set", "lo", "up")
	return n
}

// runIP runs ip with args and fails the test if it fails.
func runIP(t *testing.T, args ...string) {
	t.Helper()
	// Not t.Context: namespaces are also set up and torn down in cleanups.
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, bytes.TrimSpace(out))
	}
}

// ip runs ip inside the namespace.
func (n *netns) ip(t *testing.T, args ...string) {
	t.Helper()
	runIP(t, append([]string{"-n", n.name}, args...)...)
}

// addAddrs puts host addresses (/32) on the namespace's loopback: the
// addresses of its pods, gateways and nodes.
func (n *netns) addAddrs(t *testing.T, addrs ...netip.Addr) {
	t.Helper()
	for _, a := range addrs {
		n.ip(t, "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo")
	}
}

// route routes dst through the neighbor via, with src as the source of
// connections the namespace opens towards dst.
func (n *netns) route(t *testing.T, dst netip.Prefix, via, src netip.Addr) {
	t.Helper()
	n.ip(t, "route", "add", dst.String(), "via", via.String(), "src", src.String())
}

// command returns the argv that runs bin with args inside the namespace.
func (n *netns) command(bin string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name, bin}, args...)
}

// link connects a and b with a veth pair whose ends get the first and
// second host address of transit (a /30). Nothing is routed over it yet.
func link(t *testing.T, a, b *netns, ifa, ifb string, transit netip.Prefix) (addrA, addrB netip.Addr) {
	t.Helper()
	addrA = transit.Masked().Addr().Next()
	addrB = addrA.Next()
	runIP(t, "link", "add", ifa, "netns", a.name, "type", "veth", "peer", "name", ifb, "netns", b.name)
	a.ip(t, "addr", "add", netip.PrefixFrom(addrA, transit.Bits()).String(), "dev", ifa)
	b.ip(t, "addr", "add", netip.PrefixFrom(addrB, transit.Bits()).String(), "dev", ifb)
	a.ip(t, "link", "set", ifa, "up")
	b.ip(t, "link", "set", ifb, "up")
	return addrA, addrB
}

// do runs fn on an OS thread that has joined the namespace, and returns the
// thread to the test's own namespace afterwards. Sockets fn opens belong to
// the namespace for their whole life, whichever thread uses them later.
func (n *netns) do(fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, n.name))
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", n.name, err)
	}
	defer func() { _ = target.Close() }()

	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open this thread's network namespace: %w", err)
	}
	defer func() { _ = orig.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", n.name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so Go ends it with this goroutine and
		// no other goroutine ever runs in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("return from network namespace %s: %w", n.name, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// listen opens a TCP listener inside the namespace.
func (n *netns) listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, n.name, err)
	}
	return ln, nil
}

// dial opens a TCP connection from inside the namespace.
func (n *netns) dial(ctx context.Context, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.do(func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}

// httpClient is an HTTP client whose connections start inside the
// namespace, for the test's own checks (the gateways' admin servers).
func (n *netns) httpClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return n.dial(ctx, addr) },
			DisableKeepAlives: true,
		},
	}
}

// forwarder relays TCP connections accepted by a listener inside a
// namespace to an address of the test's own namespace: how a network's
// processes reach the control plane that runs on the host's loopback.
type forwarder struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// forward relays listen (inside n) to target (on the host) until the test
// ends.
func forward(t *testing.T, n *netns, listen, target string) *forwarder {
	t.Helper()
	ln, err := n.listen(listen)
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	f.wg.Go(f.serve)
	t.Cleanup(f.close)
	return f
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			_ = c.Close()
			return
		}
		f.wg.Go(func() { f.relay(c) })
	}
}

// track remembers c so that close can end it; false once closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

func (f *forwarder) relay(in net.Conn) {
	defer f.untrack(in)
	defer func() { _ = in.Close() }()
	out, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	if !f.track(out) {
		_ = out.Close()
		return
	}
	defer f.untrack(out)
	defer func() { _ = out.Close() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(out, in)
		closeWrite(out)
	}()
	_, _ = io.Copy(in, out)
	closeWrite(in)
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// close stops accepting, ends every relayed connection and waits for the
// relays.
func (f *forwarder) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// hostPort joins an address and a port.
func hostPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}
