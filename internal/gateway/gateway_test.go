package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestGatewayEndToEnd runs the gateway against go-control-plane's ADS
// server fed with internal/envoy's resources, and real mTLS clients and
// backends on loopback, through one scenario: first config, passthrough,
// balancing and weights, refusals, an EDS update under an open
// connection, a NACK, and a control plane that goes away and comes back.
func TestGatewayEndToEnd(t *testing.T) {
	h := newHarness(t, 5*time.Second, testHelloTimeout)
	cp := h.cp
	helloSNI := model.SNI(helloHost, helloPort, "")
	a := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
	b := startTLSBackend(t, h.pki, "127.0.0.3", "helloworld-b")
	hashAddr := startHashBackend(t, "127.0.0.4")

	// Not ready before the control plane has said anything.
	if code, _ := h.get("/ready"); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before any config: %d, want 503", code)
	}

	cp.service("helloworld", helloPort)
	cp.endpoint("helloworld", "helloworld-a", helloPort, a.addr())
	cp.endpoint("helloworld", "helloworld-b", helloPort, b.addr())
	cp.service("echo", echoPort)
	cp.endpoint("echo", "echo-0", echoPort, hashAddr)
	v1 := cp.push(nil)
	h.waitReady()
	for _, path := range []string{"/ready", "/healthz/ready"} {
		if code, body := h.get(path); code != http.StatusOK {
			t.Fatalf("%s once configured: %d %s", path, code, body)
		}
	}

	t.Run("the control plane sees an east-west gateway", func(t *testing.T) {
		reqs := cp.requestsOf(resourcev3.ListenerType)
		if len(reqs) == 0 || reqs[0].GetNode() == nil {
			t.Fatal("the first LDS request carries no node")
		}
		p, err := envoy.ParseNode(reqs[0].GetNode())
		if err != nil {
			t.Fatal(err)
		}
		want := envoy.Proxy{
			ID: gatewayNodeID(), IP: "127.0.0.1", PodName: "eastwest-7c9f", Namespace: "istio-system",
			Role: envoy.RoleEastWestGateway, Network: testNetwork, Cluster: testCluster,
			Labels: map[string]string{"istio": "eastwestgateway"},
			// Causeway's own gateway keeps its shape whatever Istio's
			// Gateways say (docs/eastwest-envoy.md).
			CausewayGateway: true,
		}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("node as the control plane parses it (-want +got):\n%s", diff)
		}
		eds := cp.requestsOf(resourcev3.EndpointType)
		if len(eds) == 0 {
			t.Fatal("no EDS request")
		}
		wantNames := []string{helloSNI, model.SNI(echoHost, echoPort, "")} // sorted
		if diff := cmp.Diff(wantNames, eds[len(eds)-1].GetResourceNames()); diff != "" {
			t.Errorf("EDS subscription (-want +got):\n%s", diff)
		}
		for _, r := range cp.requestsOf(resourcev3.ClusterType) {
			if r.GetErrorDetail() != nil {
				t.Errorf("CDS NACKed: %v", r.GetErrorDetail())
			}
		}
	})

	t.Run("mTLS passes through, round robin over both backends", func(t *testing.T) {
		counts := map[string]int{}
		for range 6 {
			c, name, err := h.dial(helloSNI)
			if err != nil {
				t.Fatal(err)
			}
			// The handshake was with the backend itself: its SPIFFE id was
			// verified (VerifyConnection) and it verified ours.
			if got := c.ConnectionState().NegotiatedProtocol; got != "istio-peer-exchange" {
				t.Errorf("ALPN %q, want the backend's choice istio-peer-exchange", got)
			}
			if err := echo(c, "hello through the gateway"); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			counts[name]++
		}
		if diff := cmp.Diff(map[string]int{"helloworld-a": 3, "helloworld-b": 3}, counts); diff != "" {
			t.Errorf("connections per backend (-want +got):\n%s", diff)
		}
	})

	t.Run("TLS 1.2 clients pass too", func(t *testing.T) {
		cfg := h.pki.clientTLS(t, helloSNI)
		cfg.MaxVersion = tls.VersionTLS12
		c, _, err := dialVia(t, h.gw.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c.ConnectionState().Version != tls.VersionTLS12 {
			t.Errorf("version %x, want TLS 1.2", c.ConnectionState().Version)
		}
		_ = c.Close()
	})

	t.Run("bytes arrive intact, hello replayed, half-close propagated", func(t *testing.T) {
		hello := realHello(t, &tls.Config{ServerName: model.SNI(echoHost, echoPort, ""), NextProtos: []string{"istio"}})
		payload := make([]byte, 4<<20)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(h.gw.Addr().String())))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(waitFor))
		// The hello in 1-byte writes, then the payload, then our FIN: the
		// backend answers only once it has seen EOF, so the answer proves
		// the half-close went through while the other direction stayed open.
		for i := range hello {
			if _, err := c.Write(hello[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		answer, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(append(hello, payload...))
		want := fmt.Sprintf("%d %s\n", len(hello)+len(payload), hex.EncodeToString(sum[:]))
		if string(answer) != want {
			t.Errorf("backend got %q, want %q", answer, want)
		}
	})

	t.Run("refusals are closed and counted by reason", func(t *testing.T) {
		before := h.errorCounts(t)

		if _, _, err := h.dial(model.SNI("unknown.sample.svc.cluster.local", 80, "")); err == nil {
			t.Error("a connection with an unknown SNI went through")
		}
		cfg := h.pki.clientTLS(t, "")
		cfg.ServerName = "" // no SNI at all
		if _, _, err := dialVia(t, h.gw.Addr().String(), cfg); err == nil {
			t.Error("a connection without SNI went through")
		}
		// Istio's filter chains match Istio's ALPN: a client offering
		// only h2 is not taken.
		cfg = h.pki.clientTLS(t, helloSNI)
		cfg.NextProtos = []string{"h2"}
		if _, _, err := dialVia(t, h.gw.Addr().String(), cfg); err == nil {
			t.Error("a connection without Istio's ALPN went through")
		}

		// Garbage is refused at once: the hello timeout (a minute here) is
		// not waited for. A client that stops in the middle of its hello is
		// TestGatewayHelloTimeout's.
		c, err := net.Dial("tcp", h.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("read %d bytes from a refused connection", n)
		}
		if d := time.Since(start); d > waitFor/2 {
			t.Errorf("closed after %v", d)
		}
		_ = c.Close()

		// Exactly these: none of them counted as a hello timeout.
		h.waitErrorCounts(t, before, map[reason]float64{reasonNoRoute: 3, reasonBadHello: 1})

		_, metrics := h.get("/metrics")
		for _, line := range []string{
			fmt.Sprintf(`causeway_gateway_connection_errors_total{reason="no_route"} %v`, before[reasonNoRoute.String()]+3),
			`causeway_gateway_cluster_connections_total{cluster="` + helloSNI + `"} 7`,
			`causeway_gateway_cluster_endpoints{cluster="` + helloSNI + `"} 2`,
			`causeway_gateway_xds_connected 1`,
			`causeway_gateway_xds_updates_total{result="nack",type="lds"} 0`,
			`causeway_gateway_bytes_total{direction="in"}`,
		} {
			if !strings.Contains(metrics, line) {
				t.Errorf("/metrics lacks %q", line)
			}
		}
	})

	t.Run("weights from EDS are honored", func(t *testing.T) {
		v := cp.push(func(res map[resourcev3.Type][]cachetypes.Resource) {
			for _, r := range res[resourcev3.EndpointType] {
				cla := r.(*endpointv3.ClusterLoadAssignment)
				for _, loc := range cla.GetEndpoints() {
					for _, lb := range loc.GetLbEndpoints() {
						if lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() == "127.0.0.2" {
							lb.LoadBalancingWeight = wrapperspb.UInt32(3)
						}
					}
				}
			}
		})
		h.waitPushed(v)
		counts := map[string]int{}
		for range 8 {
			c, name, err := h.dial(helloSNI)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			counts[name]++
		}
		if diff := cmp.Diff(map[string]int{"helloworld-a": 6, "helloworld-b": 2}, counts); diff != "" {
			t.Errorf("connections per backend with weights 3:1 (-want +got):\n%s", diff)
		}
	})

	t.Run("an EDS update applies to new connections, open ones keep working", func(t *testing.T) {
		v := cp.push(nil) // back to equal weights
		h.waitPushed(v)
		var held *tls.Conn
		for range 2 {
			c, name, err := h.dial(helloSNI)
			if err != nil {
				t.Fatal(err)
			}
			if name == "helloworld-b" {
				held = c
				break
			}
			_ = c.Close()
		}
		if held == nil {
			t.Fatal("two connections in a row missed backend b")
		}
		cp.removeEndpoint("helloworld", "helloworld-b")
		v = cp.push(nil)
		h.waitPushed(v)
		for range 4 {
			c, name, err := h.dial(helloSNI)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			if name != "helloworld-a" {
				t.Errorf("a new connection reached %s, removed from EDS", name)
			}
		}
		if err := echo(held, "still here"); err != nil {
			t.Errorf("the connection to the removed backend broke: %v", err)
		}
		_ = held.Close()
	})

	t.Run("a listener the gateway cannot run is NACKed, the last good one stays", func(t *testing.T) {
		good := h.gw.Table().Versions
		bad := cp.push(func(res map[resourcev3.Type][]cachetypes.Resource) {
			l := res[resourcev3.ListenerType][0].(*listenerv3.Listener)
			tlsCtx, err := anypb.New(&tlsv3.DownstreamTlsContext{})
			if err != nil {
				t.Fatal(err)
			}
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{
				Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tlsCtx},
			}
		})
		var nack string
		testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for a NACK of listener version %s", bad), testkit.Holds(func() bool {
			for _, r := range cp.requestsOf(resourcev3.ListenerType) {
				if r.GetErrorDetail() != nil {
					if r.GetVersionInfo() != good.Listeners {
						t.Errorf("NACK carries version %q, want the last good %q", r.GetVersionInfo(), good.Listeners)
					}
					nack = r.GetErrorDetail().GetMessage()
					return true
				}
			}
			return false
		}))
		if !strings.Contains(nack, "terminates TLS") {
			t.Errorf("NACK says %q, want the reason", nack)
		}
		if got := h.gw.Table().Versions.Listeners; got != good.Listeners {
			t.Errorf("listener version %q applied, want %q kept", got, good.Listeners)
		}
		if c, _, err := h.dial(helloSNI); err != nil {
			t.Errorf("after the NACK: %v", err)
		} else {
			_ = c.Close()
		}
		var dump configDump
		_, body := h.get("/config")
		if err := json.Unmarshal([]byte(body), &dump); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(dump.XDS.LastNACK, "terminates TLS") {
			t.Errorf("/config last NACK %q", dump.XDS.LastNACK)
		}
		// go-control-plane's snapshot cache sends a NACKed version again at
		// once (envoyproxy/go-control-plane#962), and each is NACKed again.
		if testkit.MetricValue(t, h.gw.metrics.xdsNack[kindListeners]) < 1 {
			t.Error("the NACK is not counted")
		}
		fixed := cp.push(nil)
		h.waitPushed(fixed)
	})

	t.Run("the control plane goes away and comes back", func(t *testing.T) {
		streams := cp.streamCount()
		cp.stop()
		testkit.Eventually(t, waitFor, "timed out waiting for the gateway to see the stream break", testkit.Holds(func() bool { return !h.gw.ads.status.get().Connected }))
		// The last configuration keeps serving.
		c, name, err := h.dial(helloSNI)
		if err != nil || name != "helloworld-a" {
			t.Fatalf("without a control plane: %q, %v", name, err)
		}
		_ = c.Close()
		if code, _ := h.get("/ready"); code != http.StatusOK {
			t.Errorf("/ready without a control plane: %d, want 200 (the last config still serves)", code)
		}

		// Backend b comes back while the control plane is away.
		cp.endpoint("helloworld", "helloworld-b", helloPort, b.addr())
		cp.restart()
		v := cp.push(nil)
		h.waitPushed(v)
		if got := cp.streamCount(); got <= streams {
			t.Errorf("%d ADS streams, want more than %d", got, streams)
		}
		seen := map[string]bool{}
		for range 2 {
			c, name, err := h.dial(helloSNI)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			seen[name] = true
		}
		if !seen["helloworld-b"] {
			t.Errorf("backend b, back in EDS after the reconnect, got no connection: %v", seen)
		}
	})

	t.Run("/config shows SNI, clusters, endpoints, weights and versions", func(t *testing.T) {
		var dump configDump
		code, body := h.get("/config")
		if code != http.StatusOK {
			t.Fatalf("/config: %d", code)
		}
		if err := json.Unmarshal([]byte(body), &dump); err != nil {
			t.Fatal(err)
		}
		if !dump.Ready || dump.Draining || !dump.ListenerFound || dump.Listener != "0.0.0.0_15443" || !dump.XDS.Connected {
			t.Errorf("state: %+v", dump)
		}
		if dump.Versions.Endpoints == "" || dump.Versions.Endpoints == v1 {
			t.Errorf("versions %+v", dump.Versions)
		}
		var routes []string
		for _, r := range dump.Routes {
			routes = append(routes, strings.Join(r.ServerNames, ",")+" -> "+r.Cluster)
		}
		echoSNI := model.SNI(echoHost, echoPort, "")
		if diff := cmp.Diff([]string{echoSNI + " -> " + echoSNI, helloSNI + " -> " + helloSNI}, routes); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
		for _, c := range dump.Clusters {
			if c.Name != helloSNI {
				continue
			}
			want := []endpointDump{{a.addr().String(), 1}, {b.addr().String(), 1}}
			if c.Endpoints[0].Address != want[0].Address {
				want[0], want[1] = want[1], want[0]
			}
			if diff := cmp.Diff(want, c.Endpoints); diff != "" {
				t.Errorf("helloworld endpoints (-want +got):\n%s", diff)
			}
			return
		}
		t.Errorf("no cluster %s in %s", helloSNI, body)
	})
}

// TestGatewayDrain checks Drain: no new connections, /ready 503, open
// connections may finish, Drain waits for the others, and those still open
// when its context ends are closed. The test ends the context itself once
// it has seen what it checks, rather than racing a short timer (on a
// loaded machine the checks alone can outlast one).
func TestGatewayDrain(t *testing.T) {
	h := newHarness(t, time.Second, testHelloTimeout)
	helloSNI := model.SNI(helloHost, helloPort, "")
	a := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
	h.cp.service("helloworld", helloPort)
	h.cp.endpoint("helloworld", "helloworld-a", helloPort, a.addr())
	h.cp.push(nil)
	h.waitReady()

	finishing, _, err := h.dial(helloSNI)
	if err != nil {
		t.Fatal(err)
	}
	lingering, _, err := h.dial(helloSNI)
	if err != nil {
		t.Fatal(err)
	}

	ctx, endDrain := context.WithCancel(t.Context())
	defer endDrain()
	drained := make(chan error, 1)
	go func() { drained <- h.gw.Drain(ctx) }()

	testkit.Eventually(t, waitFor, "timed out waiting for /ready to say 503 while draining", testkit.Holds(func() bool { code, _ := h.get("/ready"); return code == http.StatusServiceUnavailable }))
	if c, err := net.DialTimeout("tcp", h.gw.Addr().String(), time.Second); err == nil {
		_ = c.Close()
		t.Error("a new connection was accepted while draining")
	}
	// Open connections keep working while draining; one finishes.
	if err := echo(finishing, "draining"); err != nil {
		t.Fatalf("an open connection broke when the drain began: %v", err)
	}
	_ = finishing.Close()
	if err := echo(lingering, "draining"); err != nil {
		t.Fatalf("an open connection broke when the drain began: %v", err)
	}
	testkit.Eventually(t, waitFor, "timed out waiting for the finished connection to end", testkit.Holds(func() bool { return h.gw.openConns.Load() == 1 }))
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a connection was open and its context was not done", err)
	default:
	}

	// The other is still open when the drain's time is up: it is closed.
	endDrain()
	select {
	case err := <-drained:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "closed 1 connection") {
			t.Errorf("Drain: %v, want an error wrapping its context's for the 1 connection it closed", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Drain did not return when its context ended")
	}
	_ = lingering.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := bufio.NewReader(lingering).ReadString('\n'); err == nil {
		t.Error("the lingering connection is still open after the drain")
	}
	if n := h.gw.openConns.Load(); n != 0 {
		t.Errorf("%d connections open after the drain", n)
	}
}

// TestGatewayHelloTimeout: a client that does not complete its ClientHello
// within HelloTimeout is closed, not before, and counted as hello_timeout,
// nothing else. These clients stop sending on purpose, so the short timeout
// cannot catch a client that is merely slow (see testHelloTimeout).
func TestGatewayHelloTimeout(t *testing.T) {
	h := newHarness(t, time.Second, shortHelloTimeout)
	helloSNI := model.SNI(helloHost, helloPort, "")
	a := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
	h.cp.service("helloworld", helloPort)
	h.cp.endpoint("helloworld", "helloworld-a", helloPort, a.addr())
	h.cp.push(nil)
	h.waitReady()
	hello := realHello(t, h.pki.clientTLS(t, helloSNI))

	tests := []struct {
		name string
		send []byte
	}{
		{"nothing sent", nil},
		{"stops after 20 bytes", hello[:20]},
		{"stops one byte short of the end", hello[:len(hello)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.errorCounts(t)
			// Taken before the dial: the gateway's clock for this
			// connection starts later, when it begins to read.
			start := time.Now()
			c, err := net.Dial("tcp", h.gw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if len(tt.send) > 0 {
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			_ = c.SetReadDeadline(time.Now().Add(waitFor))
			n, err := c.Read(make([]byte, 1))
			d := time.Since(start)
			switch {
			case err == nil:
				t.Fatalf("read %d bytes from a connection whose hello never ended", n)
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatalf("still open after %v, with a hello timeout of %v", d, shortHelloTimeout)
			}
			if d < shortHelloTimeout {
				t.Errorf("closed after %v, before the hello timeout of %v", d, shortHelloTimeout)
			}
			if d > waitFor/2 {
				t.Errorf("closed only after %v, with a hello timeout of %v", d, shortHelloTimeout)
			}
			h.waitErrorCounts(t, before, map[reason]float64{reasonHelloTimeout: 1})
		})
	}
}

// TestGatewayDrainQuiet: a drain with nothing open returns at once, and
// Run returns when its context ends.
func TestGatewayDrainQuiet(t *testing.T) {
	h := newHarness(t, time.Minute, testHelloTimeout)
	a := startTLSBackend(t, h.pki, "127.0.0.2", "helloworld-a")
	h.cp.service("helloworld", helloPort)
	h.cp.endpoint("helloworld", "helloworld-a", helloPort, a.addr())
	h.cp.push(nil)
	h.waitReady()
	c, _, err := h.dial(model.SNI(helloHost, helloPort, ""))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	testkit.Eventually(t, waitFor, "timed out waiting for the connection to end", testkit.Holds(func() bool { return h.gw.openConns.Load() == 0 }))
	start := time.Now()
	if err := h.gw.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("an idle drain took %v", d)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{XDS: "127.0.0.1:15010", Network: "n", ClusterID: "c", NodeID: gatewayNodeID(), Listen: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{"no xDS address", func(c *Config) { c.XDS = "" }, "no xDS address"},
		{"no network", func(c *Config) { c.Network = "" }, "no network"},
		{"no cluster", func(c *Config) { c.ClusterID = "" }, "no cluster id"},
		{"a node id not of Istio's form", func(c *Config) { c.NodeID = "bogus" }, "want TYPE~IP~POD"},
		{"a sidecar's node id", func(c *Config) { c.NodeID = "sidecar~10.0.0.1~a.b~b.svc.cluster.local" }, "starts with router~"},
		{"bad listen address", func(c *Config) { c.Listen = "15443" }, "listen address"},
		{"negative drain", func(c *Config) { c.Drain = -time.Second }, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mut(&cfg)
			g, err := New(cfg)
			if err == nil {
				_ = g.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to say %q", err, tt.wantErr)
			}
		})
	}

	g, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if g.cfg.ListenerName != "0.0.0.0_15443" || g.cfg.HelloTimeout != DefaultHelloTimeout || g.cfg.Drain != DefaultDrain {
		t.Errorf("defaults: %+v", g.cfg)
	}
	cfg := good
	cfg.Listen = g.Addr().String()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("a busy port: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Error(err)
	}
}
