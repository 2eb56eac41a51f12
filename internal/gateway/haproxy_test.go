package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// HAProxy is the benchmarks' third contender (bench_test.go): Debian's
// haproxy in TCP mode, routing by the SNI of the ClientHello without
// terminating TLS, as the gateway does. It is a prerequisite of the
// benchmarks only; TestHAProxyRoutesBySNI checks that the configuration
// the benchmarks give it really routes by SNI, and fails in CI when
// haproxy is missing (testreq.SkipOrFail).

const (
	// debianHAProxy is where Debian's haproxy package installs it: /usr/sbin
	// is not on every user's PATH.
	debianHAProxy  = "/usr/sbin/haproxy"
	installHAProxy = "install it with `apt-get install -y haproxy` (hack/install-deps.sh does when run as root)"
	// haproxyStopGrace is how long haproxy gets between SIGTERM (its hard
	// stop) and SIGKILL.
	haproxyStopGrace = time.Second
	// haproxyProbeSNI is a server name no route has: haproxy closes a
	// connection that offers it, which tells that it is running.
	haproxyProbeSNI = "probe.causeway.invalid"
)

// lookHAProxy finds haproxy on PATH, else where Debian puts it.
func lookHAProxy() (string, error) {
	p, err := exec.LookPath("haproxy")
	if err == nil {
		return p, nil
	}
	if fi, statErr := os.Stat(debianHAProxy); statErr == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return debianHAProxy, nil
	}
	return "", fmt.Errorf("haproxy not found on PATH or at %s (%w): %s", debianHAProxy, err, installHAProxy)
}

// haproxyConfig is an HAProxy configuration that accepts on the listening
// socket it inherits as file descriptor 3 and passes each connection, by
// the SNI of its ClientHello, to the backend of routes (server name →
// address). Like the gateway it waits at most 5 s for a complete
// ClientHello, does not terminate TLS, passes bytes with splice(2), and
// closes a connection whose server name has no route (there is no default
// backend). Each backend is named after its server name, as the gateway's
// clusters are.
func haproxyConfig(routes map[string]netip.AddrPort) string {
	var b strings.Builder
	b.WriteString(`global
    # no logging, no stats: the proxy's own work only

defaults
    mode tcp
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    # splice(2) when it pays, as the gateway's io.Copy between TCP
    # connections does
    option splice-auto

frontend eastwest
    bind fd@3
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
`)
	names := slices.Sorted(maps.Keys(routes))
	for _, sni := range names {
		fmt.Fprintf(&b, "    use_backend %s if { req.ssl_sni -i %s }\n", sni, sni)
	}
	for _, sni := range names {
		fmt.Fprintf(&b, "\nbackend %s\n    server s0 %s\n", sni, routes[sni])
	}
	return b.String()
}

// haproxyProcess is a running haproxy, a child of the test binary.
type haproxyProcess struct {
	addr    netip.AddrPort
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once haproxy has exited and been reaped
	waitErr error         // set before done is closed
}

// startHAProxy runs bin with haproxyConfig(routes) from a file in
// tb.TempDir(), on a listening socket on a free loopback port that the
// test binary opens and hands over (no race for the port), waits until
// haproxy answers, and stops it (SIGTERM, then SIGKILL) when the test
// ends.
func startHAProxy(tb testing.TB, bin string, routes map[string]netip.AddrPort) netip.AddrPort {
	tb.Helper()
	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(routes)), 0o600); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	lnFile, err := ln.File() // a duplicate: haproxy's fd 3
	_ = ln.Close()
	if err != nil {
		tb.Fatal(err)
	}
	// A configuration haproxy refuses fails here, with haproxy's reason
	// (the check opens fd 3 too).
	check := exec.Command(bin, "-c", "-f", cfgPath)
	check.ExtraFiles = []*os.File{lnFile}
	if out, err := check.CombinedOutput(); err != nil {
		_ = lnFile.Close()
		tb.Fatalf("haproxy -c refused %s: %v\n%s", cfgPath, err, out)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		_ = lnFile.Close()
		tb.Fatal(err)
	}
	// -db: stay in the foreground, one process; SIGTERM stops it at once.
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{lnFile}
	// Killed if the test binary dies before its cleanups run (a test
	// timeout). Linux sends it when the forking thread ends; Go ends no
	// thread here (nothing in this package locks one).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	// The socket now lives in haproxy only: when haproxy goes, so does it.
	_ = lnFile.Close()
	_ = logFile.Close()
	if err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	p := &haproxyProcess{
		addr:    netip.MustParseAddrPort(ln.Addr().String()),
		cmd:     cmd,
		logPath: logPath,
		done:    make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(p.stop)
	p.waitAnswers(tb, probeHello(tb))
	return p.addr
}

// probeHello is a ClientHello for haproxyProbeSNI.
func probeHello(tb testing.TB) []byte {
	tb.Helper()
	return realHello(tb, &tls.Config{ServerName: haproxyProbeSNI})
}

// waitAnswers waits until haproxy closes a connection that offers hello
// (whose server name has no route). Until haproxy runs, a connection waits
// in the socket's backlog and gets no answer. It fails tb after waitFor.
func (p *haproxyProcess) waitAnswers(tb testing.TB, hello []byte) {
	tb.Helper()
	testkit.Eventually(tb, waitFor, fmt.Sprintf("haproxy on %s did not answer within %v", p.addr, waitFor), func() string {
		closed, err := p.probe(hello)
		if exitErr := p.exitError(); exitErr != nil {
			tb.Fatal(exitErr)
		}
		switch {
		case closed:
			return ""
		case errors.Is(err, errProbeAnswered):
			tb.Fatalf("haproxy on %s: %v", p.addr, err)
		}
		return fmt.Sprintf("last: %v; its output:\n%s", err, p.output())
	})
}

// errProbeAnswered says haproxy passed on a connection it has no route for.
var errProbeAnswered = errors.New("a connection for a server name without a route got an answer, want it closed")

// probe reports whether haproxy closed one probe connection within a
// short while.
func (p *haproxyProcess) probe(hello []byte) (bool, error) {
	c, err := net.DialTimeout("tcp", p.addr.String(), time.Second)
	if err != nil {
		return false, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write(hello); err != nil {
		return false, err
	}
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case n > 0:
		return false, errProbeAnswered
	case errors.As(err, &ne) && ne.Timeout():
		return false, err
	default: // EOF or reset: closed by haproxy
		return true, nil
	}
}

// exitError says why haproxy ended, or nil while it runs.
func (p *haproxyProcess) exitError() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	err := errors.New("haproxy exited with status 0")
	if p.waitErr != nil {
		err = fmt.Errorf("haproxy exited: %w", p.waitErr)
	}
	return fmt.Errorf("%w; its output:\n%s", err, p.output())
}

func (p *haproxyProcess) output() string {
	out, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	return string(bytes.TrimSpace(out))
}

// stop sends SIGTERM, then SIGKILL after haproxyStopGrace, and waits for
// the exit.
func (p *haproxyProcess) stop() { testkit.Stop(p.cmd.Process, p.done, haproxyStopGrace) }

// TestHAProxyRoutesBySNI checks the comparison itself: the HAProxy the
// benchmarks run passes each of their server names to its own backend,
// with the TLS handshake (mutual, SPIFFE identities) done end to end, and
// closes connections whose server name has no route.
func TestHAProxyRoutesBySNI(t *testing.T) {
	bin, err := lookHAProxy()
	if err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	p := newMeshPKI(t)
	echoBackend := startTLSBackend(t, p, "127.0.0.2", "echo-0")
	countBackend := startTLSBackend(t, p, "127.0.0.3", "count-0")
	helloBackend := startTLSBackend(t, p, "127.0.0.4", "helloworld-0")
	routes := benchRoutes(echoBackend.addr(), countBackend.addr(), helloBackend.addr())
	if len(routes) != 3 {
		t.Fatalf("benchRoutes gave %d routes, want 3: %v", len(routes), routes)
	}
	addr := startHAProxy(t, bin, routes).String()

	for _, tc := range []struct {
		name, sni string
		want      string // the backend that answers; "" for a closed connection
	}{
		{"echo", benchEchoSNI(), "echo-0"},
		{"count", benchCountSNI(), "count-0"},
		{"helloworld", benchHelloSNI(), "helloworld-0"},
		{"helloworld again", benchHelloSNI(), "helloworld-0"},
		{"server name in upper case", strings.ToUpper(benchEchoSNI()), "echo-0"},
		{"unknown server name", "outbound_.5000_._.nope.sample.svc.cluster.local", ""},
		{"no server name", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, got, err := dialVia(t, addr, p.clientTLS(t, tc.sni))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("connection with server name %q reached %q, want it closed", tc.sni, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("connection with server name %q: %v", tc.sni, err)
			}
			if got != tc.want {
				t.Fatalf("server name %q reached %q, want %q", tc.sni, got, tc.want)
			}
			if err := echo(c, "bytes both ways"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
