package abuse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// Half ClientHellos against a real `causeway gateway`: an attacker opens
// connections that send the first bytes of a TLS record and stall. Before
// the cap each was held for --hello-timeout (5 s by default) with its
// buffer and descriptor, without a global bound. Asserted, with the cap at
// helloCap:
//   - the connections waiting for their hello never exceed the cap
//     (causeway_gateway_hellos_pending, sampled through the attack);
//   - connections beyond it are closed at once and counted
//     (causeway_gateway_connection_errors_total{reason="hello_limit"});
//   - while the attacker keeps the cap full, reopening every stalled
//     connection the gateway closes, real TLS clients still get through
//     (retrying, as a proxy does: a connection that arrives while every
//     waiting one is within its 1 s grace is refused, one that arrives
//     later takes the oldest one's place).
func TestGatewayHalfHellos(t *testing.T) {
	testreq.NotShort(t, "builds causeway and runs serve and a gateway")
	const (
		helloCap = 16
		stalled  = 10 * helloCap // the first wave
		clients  = 5             // real clients during the attack
	)
	bin := testkit.CausewayBinary(t)
	backend := helloEchoBackend(t)
	dir := helloManifests(t, backend.Addr().(*net.TCPAddr).Port)

	ports := testkit.FreeAddrs(t, 5)
	xds, debug, gwAddr, admin := ports[0], ports[1], ports[2], ports[3]
	helloStart(t, bin, "serve", "serve", "--drain-duration=0", "--manifests", dir, "--xds-addr", xds, "--debug-addr", debug, "--xds-tls-addr", "")
	helloStart(t, bin, "gateway", "gateway", "--log-level", "debug", "--xds", xds, "--network", "network1", "--cluster-id", "cluster1",
		"--listen", gwAddr, "--listener-name", "0.0.0.0_15443", "--admin", admin, "--max-pending-hellos", strconv.Itoa(helloCap),
		"--node-id", "router~127.0.0.1~eastwest-0.istio-system~istio-system.svc.cluster.local")
	helloWait(t, "the gateway's /ready to say 200", func() bool {
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	sni := model.SNI(model.ServiceHost("sample", "echo", ""), 7000, "")
	if err := helloClient(gwAddr, sni); err != nil {
		t.Fatalf("a real client before the attack: %v", err)
	}

	// The first wave: ten times the cap, each stalled mid-record-header.
	var wave []net.Conn
	for range stalled {
		wave = append(wave, helloHalf(t, gwAddr))
	}
	// Within the waiting ones' 1 s grace, each one beyond the cap is closed.
	helloWait(t, fmt.Sprintf("%d connections to be closed for the cap", stalled-helloCap), func() bool {
		return helloMetric(t, admin, `causeway_gateway_connection_errors_total{reason="hello_limit"}`) >= stalled-helloCap
	})
	if n := helloMetric(t, admin, "causeway_gateway_hellos_pending"); n > helloCap {
		t.Errorf("%v connections waiting for their hello, over the cap %d", n, helloCap)
	}
	// The attack goes on: every stalled connection the gateway closes is
	// opened again (after 10 ms, the attacker's own pace), so the cap stays
	// full, while real clients connect and retry as a proxy does.
	for _, c := range wave {
		if c != nil {
			_ = c.Close()
		}
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range stalled {
		wg.Go(func() {
			for ctx.Err() == nil {
				if c, err := net.Dial("tcp", gwAddr); err == nil {
					if _, err := c.Write([]byte{22, 3, 1}); err == nil {
						stopRead := context.AfterFunc(ctx, func() { _ = c.Close() })
						_, _ = c.Read(make([]byte, 1)) // until the gateway closes it
						stopRead()
					}
					_ = c.Close()
				}
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
	maxPending, attempts := 0.0, 0
	for i := range clients {
		helloWait(t, fmt.Sprintf("real client %d to get through during the attack", i), func() bool {
			attempts++
			maxPending = max(maxPending, helloMetric(t, admin, "causeway_gateway_hellos_pending"))
			return helloClient(gwAddr, sni) == nil
		})
	}
	stop()
	wg.Wait()
	if maxPending > helloCap {
		t.Errorf("up to %v connections waited for their hello during the attack, over the cap %d", maxPending, helloCap)
	}
	t.Logf("%d real clients got through in %d attempts; hello_limit closes: %v; most pending seen: %v", clients, attempts,
		helloMetric(t, admin, `causeway_gateway_connection_errors_total{reason="hello_limit"}`), maxPending)
}

// helloStart runs the causeway binary with args until the test ends, its
// output in a log file shown when the test fails.
func helloStart(t *testing.T, bin, name string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start causeway %s: %v", name, err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		testkit.Stop(cmd.Process, done, 30*time.Second)
		_ = logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("causeway %s log:\n%s", name, b[max(0, len(b)-8192):])
			}
		}
	})
}

// helloWait waits up to a minute for cond (see testkit.Eventually).
func helloWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, time.Minute, "timed out waiting for "+what, testkit.Holds(cond))
}

// helloManifests writes one cluster, network1, whose Service sample/echo
// (port 7000) has one mesh endpoint: the backend on 127.0.0.1:port.
func helloManifests(t *testing.T, port int) string {
	t.Helper()
	dir := t.TempDir()
	c1 := filepath.Join(dir, "cluster1")
	if err := os.MkdirAll(c1, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: istio-system, labels: {topology.istio.io/network: network1}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: sample}
spec:
  clusterIP: 10.96.0.70
  ports: [{name: tls, port: 7000, protocol: TCP, targetPort: %[1]d}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo-0, namespace: sample, labels: {app: echo, security.istio.io/tlsMode: istio}}
spec: {serviceAccountName: echo, containers: [{name: echo, image: echo}]}
status: {phase: Running, podIP: 127.0.0.1, podIPs: [{ip: 127.0.0.1}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-x, namespace: sample, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: tls, port: %[1]d, protocol: TCP}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: sample, name: echo-0}
`, port)
	if err := os.WriteFile(filepath.Join(c1, "echo.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// helloEchoBackend is a TLS server on loopback that echoes one line.
func helloEchoBackend(t *testing.T) net.Listener {
	t.Helper()
	certPEM, keyPEM, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		line, err := bufio.NewReader(io.LimitReader(c, 1024)).ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(c, line)
		}
	})
	return ln
}

// helloClient is a real client: a full TLS handshake through the gateway
// to the backend, by SNI, and one echoed line.
func helloClient(gw, sni string) error {
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", gw, &tls.Config{ServerName: sni, NextProtos: []string{"istio"}, InsecureSkipVerify: true}) //nolint:gosec // the backend's certificate is not what is tested
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// helloHalf opens a connection that sends three bytes of a TLS record
// header and stalls; nil when the gateway closed it at once (a reset can
// reach a loopback client before its connect returns).
func helloHalf(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte{22, 3, 1}); err != nil {
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return nil
		}
		t.Fatal(err)
	}
	return c
}

// helloMetric reads one sample of the gateway's /metrics (0 if absent).
func helloMetric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	for line := range bytes.Lines(body) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(string(line)), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			t.Fatalf("metric %s: %v", name, err)
		}
		return v
	}
	return 0
}
