package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// runGateway builds a gateway of network1 from cfg (XDS, ExposeControlPlane
// and XDSTLS are the caller's) and runs it until the test ends.
func runGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	cfg.Network, cfg.ClusterID, cfg.NodeID = testNetwork, testCluster, gatewayNodeID()
	cfg.Listen, cfg.Admin = "127.0.0.1:0", "127.0.0.1:0"
	cfg.HelloTimeout, cfg.Drain, cfg.ReconnectDelay = testHelloTimeout, time.Second, 20*time.Millisecond
	cfg.Logger = testkit.Logger(t)
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return gw
}

// controlPlaneService stores the control plane's Service istiod of
// istio-system with port 15012, its endpoint at addr (a pod of network1).
func (cp *controlPlane) controlPlaneService(ap netip.AddrPort) {
	cp.store.UpsertService(&model.Service{Cluster: testCluster, Namespace: "istio-system", Name: envoy.ControlPlaneService,
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.15",
		Ports: []model.ServicePort{{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: envoy.ControlPlanePort}}})
	cp.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: testCluster, Namespace: "istio-system", Name: "istiod-1", ServiceName: envoy.ControlPlaneService,
		Ports:     []model.EndpointPort{{Name: "https-dns", Port: uint32(ap.Port())}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{ap.Addr().String()}, Ready: true}},
	})
}

// withControlPlaneListener adds the control plane's listener, as the
// control plane's gateway LDS carries it, to what push serves.
func (cp *controlPlane) withControlPlaneListener(res map[resourcev3.Type][]cachetypes.Resource) {
	if l := envoy.ControlPlaneListener(cp.store.Snapshot().Services()); l != nil {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
}

// TestGatewayExposesControlPlane: with ExposeControlPlane the gateway runs
// LDS listener 0.0.0.0_15012 on its own address: any SNI passes, still
// encrypted, to the control plane's endpoint, while the main listener
// keeps routing by its own chains; without that listener in LDS the
// address refuses connections.
func TestGatewayExposesControlPlane(t *testing.T) {
	p := newMeshPKI(t)
	cp := newControlPlane(t, gatewayNodeID())
	istiod := startTLSBackend(t, p, "127.0.0.1", "istiod-0")
	hello := startTLSBackend(t, p, "127.0.0.1", "helloworld-0")
	cp.service("helloworld", helloPort)
	cp.endpoint("helloworld", "helloworld-0", helloPort, hello.addr())
	cp.controlPlaneService(istiod.addr())
	gw := runGateway(t, Config{XDS: cp.addr, ExposeControlPlane: "127.0.0.1:0"})
	if gw.ControlPlaneAddr() == nil || gw.ControlPlaneAddr().String() == gw.Addr().String() {
		t.Fatalf("control plane address %v, main %v", gw.ControlPlaneAddr(), gw.Addr())
	}
	v := cp.push(cp.withControlPlaneListener)
	waitGatewayReady(t, gw)
	testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for version %s", v), testkit.Holds(func() bool {
		ct := gw.ControlPlaneTable()
		return ct != nil && ct.Versions.Listeners == v && ct.Versions.Endpoints == v && ct.Versions.Clusters == v
	}))

	cpAddr := gw.ControlPlaneAddr().String()
	helloSNI := model.SNI(helloHost, helloPort, "")
	wantReaches(t, p, []sniRoute{
		{cpAddr, "istiod-remote.istio-system.svc", "istiod-0"},
		{cpAddr, "istiod.istio-system.svc", "istiod-0"},
		{cpAddr, "istiod.example.com", "istiod-0"}, // a --custom-host
		{cpAddr, helloSNI, "istiod-0"},             // hosts "*": every name is the control plane's
		{gw.Addr().String(), helloSNI, "helloworld-0"},
	})
	// The main listener has no chain for the control plane's names.
	if _, _, err := dialVia(t, gw.Addr().String(), p.clientTLS(t, "istiod-remote.istio-system.svc")); err == nil {
		t.Error("the main listener passed istiod-remote.istio-system.svc")
	}

	// /config shows the second listener.
	dump := configOf(t, gw)
	wantCP := &listenerDump{Listen: cpAddr, Listener: "0.0.0.0_15012", ListenerFound: true, Routes: []routeDump{{
		Name: "outbound_.15012_._.istiod.istio-system.svc.cluster.local", ServerNames: []string{}, TLS: true,
		Cluster: "outbound_.15012_._.istiod.istio-system.svc.cluster.local",
	}}}
	if diff := cmp.Diff(wantCP, dump.ControlPlane); diff != "" {
		t.Errorf("/config control_plane (-want +got):\n%s", diff)
	}

	// The Service loses port 15012: LDS drops the listener, its address
	// refuses while the main one still serves.
	cp.store.UpsertService(&model.Service{Cluster: testCluster, Namespace: "istio-system", Name: envoy.ControlPlaneService,
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.15", Ports: []model.ServicePort{{Name: "grpc-xds", Port: 15010}}})
	v = cp.push(cp.withControlPlaneListener)
	testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for LDS version %s without 0.0.0.0_15012", v), testkit.Holds(func() bool { ct := gw.ControlPlaneTable(); return ct.Versions.Listeners == v && ct.Listener == "" }))
	if _, _, err := dialVia(t, cpAddr, p.clientTLS(t, "istiod-remote.istio-system.svc")); err == nil {
		t.Error("the control plane's address passed a connection with no listener in LDS")
	}
	if _, name, err := dialVia(t, gw.Addr().String(), p.clientTLS(t, helloSNI)); err != nil || name != "helloworld-0" {
		t.Errorf("main listener after the control plane's went: %q, %v", name, err)
	}
}

// TestGatewayADSOverTLS: with XDSTLS the gateway takes its configuration
// over TLS, verifying the control plane's certificate for the server name
// and sending it as SNI; a certificate for another name is refused.
func TestGatewayADSOverTLS(t *testing.T) {
	p := newMeshPKI(t)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(rootFile, p.ca.Root(), 0o600); err != nil {
		t.Fatal(err)
	}
	sniSeen := make(chan string, 16)
	serving := servingCert(t, p, "istiod-remote.istio-system.svc")
	cp := newControlPlane(t, gatewayNodeID())
	cp.stop() // serve the same cache over TLS instead
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	cp.start(tls.NewListener(ln, &tls.Config{
		NextProtos: []string{"h2"},
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			select {
			case sniSeen <- h.ServerName:
			default:
			}
			return &serving, nil
		},
	}))
	hello := startTLSBackend(t, p, "127.0.0.1", "helloworld-0")
	cp.service("helloworld", helloPort)
	cp.endpoint("helloworld", "helloworld-0", helloPort, hello.addr())
	cp.push(nil)

	_, port, _ := net.SplitHostPort(cp.addr)
	good, err := XDSTLSConfig("istiod-remote.istio-system.svc:"+port, XDSTLSFiles{RootCert: rootFile})
	if err != nil {
		t.Fatal(err)
	}
	// The service-account token goes with every stream, with the
	// cluster, as pilot-agent sends them: the secure port authenticates
	// ADS streams.
	tokenFile := filepath.Join(dir, "istio-token")
	if err := os.WriteFile(tokenFile, []byte("header.claims.signature\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := runGateway(t, Config{XDS: cp.addr, XDSTLS: good, XDSTokenFile: tokenFile})
	select {
	case <-gw.Ready():
	case <-time.After(waitFor):
		t.Fatalf("the gateway never became ready over TLS: %+v", gw.ads.status.get())
	}
	cp.mu.Lock()
	md := cp.streamMD[len(cp.streamMD)-1]
	cp.mu.Unlock()
	if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer header.claims.signature"}) {
		t.Errorf("the stream's authorization metadata %q, want the token file's token", got)
	}
	if got := md.Get("clusterid"); !slices.Equal(got, []string{string(testCluster)}) {
		t.Errorf("the stream's clusterid metadata %q, want %s", got, testCluster)
	}
	if _, name, err := dialVia(t, gw.Addr().String(), p.clientTLS(t, model.SNI(helloHost, helloPort, ""))); err != nil || name != "helloworld-0" {
		t.Errorf("through the gateway configured over TLS: %q, %v", name, err)
	}
	if sni := <-sniSeen; sni != "istiod-remote.istio-system.svc" {
		t.Errorf("the control plane saw SNI %q, want istiod-remote.istio-system.svc", sni)
	}

	// Another name: the handshake fails, the gateway never gets ready.
	bad, err := XDSTLSConfig(cp.addr, XDSTLSFiles{RootCert: rootFile, ServerName: "istiod.other.svc"})
	if err != nil {
		t.Fatal(err)
	}
	gw2 := runGateway(t, Config{XDS: cp.addr, XDSTLS: bad})
	testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for the ADS error of a certificate for another name; status %+v", gw2.ads.status.get()), testkit.Holds(func() bool {
		return strings.Contains(gw2.ads.status.get().LastError, "certificate is valid for istiod-remote.istio-system.svc")
	}))
	if gw2.isReady() {
		t.Error("a gateway that cannot verify the control plane became ready")
	}
}

// servingCert is a serving certificate of the mesh CA for dnsName.
func servingCert(t *testing.T, p *meshPKI, dnsName string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := p.ca.SignServing(key.Public(), []string{dnsName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(issued.ChainPEM(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestXDSTLSConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rootPEM, keyPEM, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := write("root.pem", rootPEM)
	key := write("key.pem", keyPEM)
	garbled := write("garbled.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))

	tests := []struct {
		name     string
		xds      string
		files    XDSTLSFiles
		wantName string
		wantCert bool
		wantErr  string
	}{
		{name: "server name from --xds", xds: "istiod-remote.istio-system.svc:15012", files: XDSTLSFiles{RootCert: root},
			wantName: "istiod-remote.istio-system.svc"},
		{name: "explicit server name", xds: "192.0.2.10:15012", files: XDSTLSFiles{RootCert: root, ServerName: "istiod.istio-system.svc"},
			wantName: "istiod.istio-system.svc"},
		{name: "client certificate", xds: "istiod:15012", files: XDSTLSFiles{RootCert: root, Cert: root, Key: key},
			wantName: "istiod", wantCert: true},
		{name: "no root", xds: "istiod:15012", wantErr: "no root certificate file"},
		{name: "unreadable root", xds: "istiod:15012", files: XDSTLSFiles{RootCert: filepath.Join(dir, "missing.pem")},
			wantErr: "missing.pem: no such file"},
		{name: "no certificate in the PEM", xds: "istiod:15012", files: XDSTLSFiles{RootCert: key}, wantErr: "no PEM CERTIFICATE block"},
		{name: "a certificate that does not parse", xds: "istiod:15012", files: XDSTLSFiles{RootCert: garbled}, wantErr: "certificate 1"},
		{name: "address without port", xds: "istiod", files: XDSTLSFiles{RootCert: root}, wantErr: "want HOST:PORT"},
		{name: "address without host", xds: ":15012", files: XDSTLSFiles{RootCert: root}, wantErr: "has no host"},
		{name: "certificate without key", xds: "istiod:15012", files: XDSTLSFiles{RootCert: root, Cert: root}, wantErr: "both the certificate and its key"},
		{name: "key that does not match", xds: "istiod:15012", files: XDSTLSFiles{RootCert: root, Cert: root, Key: root},
			wantErr: "xDS client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := XDSTLSConfig(tt.xds, tt.files)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ServerName != tt.wantName || cfg.RootCAs == nil || (len(cfg.Certificates) == 1) != tt.wantCert {
				t.Errorf("server name %q, roots %v, %d certificates; want %q, roots, certificate %v",
					cfg.ServerName, cfg.RootCAs != nil, len(cfg.Certificates), tt.wantName, tt.wantCert)
			}
		})
	}
}

// exposedListener is one of the gateway's extra passthrough listeners
// (the control plane's 15012, the webhook's 15017).
type exposedListener struct {
	set      func(cfg *Config, addr string)
	port     string // a bare port: not an address
	addrWord string // what the error calls a bad address
	flag     string // the flag a busy port's error names
	listener string // its listener's name
}

// newExposedGateway checks that e's refusals hold (a bad address, the main
// listener named as e's, a busy port), then returns a gateway with e on a
// free loopback port.
func newExposedGateway(t *testing.T, e exposedListener) *Gateway {
	t.Helper()
	base := Config{XDS: "127.0.0.1:15010", Network: "n", ClusterID: "c", NodeID: gatewayNodeID(), Listen: "127.0.0.1:0", Admin: "127.0.0.1:0"}
	for _, tt := range []struct {
		name, expose, listenerName, wantErr string
	}{
		{name: "not an address", expose: e.port, wantErr: e.addrWord},
		{name: "main listener is the exposed one's", expose: "127.0.0.1:0", listenerName: e.listener, wantErr: "the main listener is " + e.listener},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			e.set(&cfg, tt.expose)
			cfg.ListenerName = tt.listenerName
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

	// A busy port names its flag, and releases the main one.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	cfg := base
	e.set(&cfg, busy.Addr().String())
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), e.flag) {
		t.Errorf("a busy %s port: %v", e.flag, err)
	}

	e.set(&cfg, "127.0.0.1:0")
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// exposedControlPlane is --expose-control-plane.
var exposedControlPlane = exposedListener{
	set:  func(cfg *Config, addr string) { cfg.ExposeControlPlane = addr },
	port: "15012", addrWord: "control plane address", flag: "--expose-control-plane", listener: "0.0.0.0_15012",
}

func TestNewExposeControlPlane(t *testing.T) {
	g := newExposedGateway(t, exposedControlPlane)
	if diff := cmp.Diff([]string{"0.0.0.0_15443", "0.0.0.0_15012"}, g.cfg.listenerNames()); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if g.ControlPlaneTable() != nil || g.ControlPlaneAddr() == nil {
		t.Errorf("before any configuration: table %v, address %v", g.ControlPlaneTable(), g.ControlPlaneAddr())
	}
	if err := g.Close(); err != nil {
		t.Error(err)
	}
	// Both sockets are released.
	for _, a := range []net.Addr{g.Addr(), g.ControlPlaneAddr()} {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Errorf("%s still bound after Close: %v", a, err)
			continue
		}
		_ = l.Close()
	}
}

// TestGatewayTokenNeedsTLS: a token is never sent in plaintext; a token
// file that cannot be read fails the stream (retried), saying what to do.
func TestGatewayTokenNeedsTLS(t *testing.T) {
	_, err := Config{XDS: "cp:15010", Network: testNetwork, ClusterID: testCluster, NodeID: gatewayNodeID(), XDSTokenFile: "/tmp/token"}.withDefaults()
	if err == nil || !strings.Contains(err.Error(), "only over TLS") {
		t.Errorf("token with plaintext ADS: %v, want a refusal", err)
	}
	c := &adsClient{tokenFile: filepath.Join(t.TempDir(), "missing")}
	if _, err := c.streamContext(t.Context()); err == nil || !strings.Contains(err.Error(), "--xds-token") {
		t.Errorf("missing token file: %v, want an error naming --xds-token", err)
	}
}

// waitGatewayReady waits until gw is ready (its first configuration
// applied), failing t after waitFor.
func waitGatewayReady(t *testing.T, gw *Gateway) {
	t.Helper()
	select {
	case <-gw.Ready():
	case <-time.After(waitFor):
		t.Fatal("the gateway never became ready")
	}
}

// sniRoute is a TLS connection to addr with server name sni, and the
// backend it must reach.
type sniRoute struct{ addr, sni, want string }

// wantReaches dials each route with a mesh client certificate and checks
// that it reaches its backend, which echoes.
func wantReaches(t *testing.T, p *meshPKI, routes []sniRoute) {
	t.Helper()
	for _, tt := range routes {
		c, name, err := dialVia(t, tt.addr, p.clientTLS(t, tt.sni))
		if err != nil {
			t.Fatalf("%s via %s: %v", tt.sni, tt.addr, err)
		}
		if name != tt.want {
			t.Errorf("%s via %s reached %s, want %s", tt.sni, tt.addr, name, tt.want)
		}
		if err := echo(c, "ping"); err != nil {
			t.Errorf("%s via %s: %v", tt.sni, tt.addr, err)
		}
		_ = c.Close()
	}
}

// configOf is gw's /config.
func configOf(t *testing.T, gw *Gateway) configDump {
	t.Helper()
	resp, err := http.Get("http://" + gw.AdminAddr().String() + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var dump configDump
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&dump); err != nil {
		t.Fatal(err)
	}
	return dump
}
