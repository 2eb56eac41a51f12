package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The test mesh: services of cluster1, all in network1, whose east-west
// gateway is the one under test.
const (
	testNetwork model.NetworkID = "network1"
	testCluster model.ClusterID = "cluster1"
	helloPort                   = 5000
	echoHost    model.Host      = "echo.sample.svc.cluster.local"
	echoPort                    = 7000
	trustDomain                 = "cluster.local"
	waitFor                     = 10 * time.Second
)

// The gateway's HelloTimeout in tests. A connection's ClientHello must
// arrive within it, counted from when the gateway starts reading: a client
// slowed down by the race detector on a loaded machine can take hundreds of
// milliseconds from its connect to its hello, and a hello that arrives as
// the gateway gives up gets a RST ("connection reset by peer" in the
// client's handshake). So every test but the one of the timeout itself
// leaves the gateway more time than any of its own waits, and that one
// (TestGatewayHelloTimeout) only has clients that stop sending on purpose.
const (
	testHelloTimeout  = 6 * waitFor
	shortHelloTimeout = 300 * time.Millisecond
)

func helloSPIFFE() string { return model.SPIFFEID(trustDomain, "sample", "helloworld") }

// controlPlane is go-control-plane's own ADS server (SnapshotCache, state
// of the world) on loopback, serving the gateway what internal/envoy
// builds from a model store: the gateway listener, and per service port
// GatewayCluster with the LocalView of testNetwork.
type controlPlane struct {
	t      testing.TB
	store  *model.Store
	cache  cachev3.SnapshotCache
	nodeID string
	addr   string

	mu       sync.Mutex
	version  int
	gs       *grpc.Server
	stopSrv  context.CancelFunc
	served   chan struct{}
	streams  int
	requests []*discoveryv3.DiscoveryRequest
	// streamMD is the gRPC metadata of each stream opened.
	streamMD []metadata.MD
}

func newControlPlane(t testing.TB, nodeID string) *controlPlane {
	t.Helper()
	cp := &controlPlane{
		t:      t,
		store:  model.NewStore(model.Config{}),
		cache:  cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		nodeID: nodeID,
	}
	cp.store.UpsertNamespace(&model.Namespace{Cluster: testCluster, Name: "istio-system", Network: testNetwork})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	cp.start(lis)
	t.Cleanup(cp.stop)
	return cp
}

// start serves ADS on lis.
func (cp *controlPlane) start(lis net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cp.cache, serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, _ int64, _ string) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.streams++
			md, _ := metadata.FromIncomingContext(ctx)
			cp.streamMD = append(cp.streamMD, md.Copy())
			return nil
		},
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.requests = append(cp.requests, proto.Clone(r).(*discoveryv3.DiscoveryRequest))
			return nil
		},
	})
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis) // returns when stopped
	}()
	cp.mu.Lock()
	cp.gs, cp.stopSrv, cp.served = gs, cancel, served
	cp.mu.Unlock()
}

// stop stops serving: every ADS stream breaks.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	gs, cancel, served := cp.gs, cp.stopSrv, cp.served
	cp.gs = nil
	cp.mu.Unlock()
	if gs == nil {
		return
	}
	gs.Stop()
	<-served
	cancel()
}

// restart serves again on the same address.
func (cp *controlPlane) restart() {
	cp.t.Helper()
	var lis net.Listener
	// The port was just released; retry briefly.
	testkit.Eventually(cp.t, time.Second, "listening on "+cp.addr+" again", func() string {
		var err error
		if lis, err = net.Listen("tcp", cp.addr); err != nil {
			return err.Error()
		}
		return ""
	})
	cp.start(lis)
}

// resources builds the gateway's xDS resources from the store.
func (cp *controlPlane) resources() map[resourcev3.Type][]cachetypes.Resource {
	snap := cp.store.Snapshot()
	services := snap.Services()
	res := map[resourcev3.Type][]cachetypes.Resource{}
	if l := envoy.GatewayListener(services, model.DefaultGatewayPort); l != nil {
		res[resourcev3.ListenerType] = []cachetypes.Resource{l}
	}
	for _, svc := range services {
		for _, p := range svc.Ports {
			v, ok := snap.LocalView(svc.Host, p.Port, testNetwork)
			if !ok {
				cp.t.Fatalf("no local view of %s:%d", svc.Host, p.Port)
			}
			res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], envoy.GatewayCluster(svc, p))
			res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], envoy.GatewayClusterLoadAssignment(svc.Host, p.Port, v))
		}
	}
	return res
}

// push publishes the store's state as a new snapshot version, after
// mutate (may be nil) changed the resources; it returns the version.
func (cp *controlPlane) push(mutate func(map[resourcev3.Type][]cachetypes.Resource)) string {
	cp.t.Helper()
	res := cp.resources()
	if mutate != nil {
		mutate(res)
	}
	cp.mu.Lock()
	cp.version++
	v := strconv.Itoa(cp.version)
	cp.mu.Unlock()
	snap, err := cachev3.NewSnapshot(v, res)
	if err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), cp.nodeID, snap); err != nil {
		cp.t.Fatal(err)
	}
	return v
}

func (cp *controlPlane) streamCount() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.streams
}

// requestsOf returns the requests received for a type URL.
func (cp *controlPlane) requestsOf(typeURL string) []*discoveryv3.DiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []*discoveryv3.DiscoveryRequest
	for _, r := range cp.requests {
		if r.GetTypeUrl() == typeURL {
			out = append(out, r)
		}
	}
	return out
}

// service stores a Service of cluster1 in namespace sample with TCP ports.
func (cp *controlPlane) service(name string, ports ...uint32) {
	svc := &model.Service{Cluster: testCluster, Namespace: "sample", Name: name, Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.10"}
	for _, p := range ports {
		svc.Ports = append(svc.Ports, model.ServicePort{Name: "p" + strconv.Itoa(int(p)), Port: p})
	}
	cp.store.UpsertService(svc)
}

// endpoint stores a pod and its EndpointSlice for the Service port svcPort
// of sample/name, reachable at addr.
func (cp *controlPlane) endpoint(name, pod string, svcPort uint32, addr netip.AddrPort) {
	cp.store.UpsertPod(&model.Pod{Cluster: testCluster, Namespace: "sample", Name: pod, IPs: []string{addr.Addr().String()},
		TLSMode: model.TLSModeIstio, ServiceAccount: name})
	cp.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: testCluster, Namespace: "sample", Name: name + "-" + pod, ServiceName: name,
		Ports:     []model.EndpointPort{{Name: "p" + strconv.Itoa(int(svcPort)), Port: uint32(addr.Port())}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{addr.Addr().String()}, Ready: true, Pod: pod}},
	})
}

// removeEndpoint deletes what endpoint stored.
func (cp *controlPlane) removeEndpoint(name, pod string) {
	cp.store.DeleteEndpointSlice(model.ObjectKey{Cluster: testCluster, NamespacedName: model.NamespacedName{Namespace: "sample", Name: name + "-" + pod}})
	cp.store.DeletePod(model.ObjectKey{Cluster: testCluster, NamespacedName: model.NamespacedName{Namespace: "sample", Name: pod}})
}

// meshPKI issues SPIFFE certificates from the mesh CA (internal/pki), as
// istiod does for sidecars.
type meshPKI struct {
	ca    *pki.CA
	roots *x509.CertPool
}

func newMeshPKI(t testing.TB) *meshPKI {
	t.Helper()
	ca, err := pki.NewSelfSignedCA(pki.RootOptions{Org: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.Root()) {
		t.Fatal("no root certificate")
	}
	return &meshPKI{ca: ca, roots: roots}
}

// cert issues a workload certificate for a SPIFFE id.
func (p *meshPKI) cert(t testing.TB, spiffeID string) tls.Certificate {
	t.Helper()
	key, csr, err := ca.NewCSR(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := p.ca.SignCSR(csr, pki.SANs{URIs: []string{spiffeID}}, time.Hour)
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

// verifySPIFFE checks a peer's chain against the mesh root and its
// identity, as Istio's proxies do (SPIFFE URI SAN, not host names).
func (p *meshPKI) verifySPIFFE(want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no peer certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return err
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			return fmt.Errorf("peer is %v, want %s", leaf.URIs, want)
		}
		return nil
	}
}

// clientTLS is a sidecar's mTLS towards helloworld through a gateway.
func (p *meshPKI) clientTLS(t testing.TB, sni string) *tls.Config {
	return &tls.Config{
		ServerName:   sni,
		NextProtos:   []string{"istio-peer-exchange", "istio"},
		Certificates: []tls.Certificate{p.cert(t, model.SPIFFEID(trustDomain, "sample", "sleep"))},
		// Istio verifies SPIFFE ids, not host names: VerifyConnection does.
		InsecureSkipVerify: true,
		VerifyConnection:   p.verifySPIFFE(helloSPIFFE()),
	}
}

// tlsBackend is a helloworld pod: an mTLS server that requires a mesh
// client certificate, says its name once the handshake is done, then
// echoes lines.
type tlsBackend struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startTLSBackend(t testing.TB, p *meshPKI, ip, name string) *tlsBackend {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.cert(t, helloSPIFFE())},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.roots,
		NextProtos:   []string{"istio-peer-exchange", "istio"},
	}
	b := &tlsBackend{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !b.track(c) {
				return
			}
			b.wg.Go(func() {
				defer b.untrack(c)
				tc := tls.Server(c, cfg)
				if err := tc.Handshake(); err != nil {
					return
				}
				if _, err := io.WriteString(tc, name+"\n"); err != nil {
					return
				}
				r := bufio.NewReader(tc)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(tc, line); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(b.close)
	return b
}

func (b *tlsBackend) addr() netip.AddrPort { return netip.MustParseAddrPort(b.ln.Addr().String()) }

func (b *tlsBackend) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		_ = c.Close()
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *tlsBackend) untrack(c net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = c.Close()
	delete(b.conns, c)
}

func (b *tlsBackend) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

// hashBackend is a plain TCP server that reads a connection to its end
// (EOF: the client half-closed), then answers "LEN SHA256\n" of what it
// read and closes.
func startHashBackend(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Serve(t, ln, func(c net.Conn) {
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil {
			return
		}
		_, _ = fmt.Fprintf(c, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// harness is a control plane, a gateway fed by it, and the mesh PKI.
type harness struct {
	t   testing.TB
	cp  *controlPlane
	gw  *Gateway
	pki *meshPKI
}

func gatewayNodeID() string {
	return NodeID(netip.MustParseAddr("127.0.0.1"), "eastwest-7c9f", "istio-system", "")
}

// newHarness starts a control plane with nothing published yet and a
// gateway connected to it, which waits helloTimeout for a connection's
// ClientHello (see testHelloTimeout); the gateway stops (draining for at
// most drain) when the test ends, after the test's own cleanups.
func newHarness(t testing.TB, drain, helloTimeout time.Duration) *harness {
	t.Helper()
	return newHarnessWith(t, drain, helloTimeout, nil)
}

// newHarnessWith is newHarness with the gateway's Config changed by mutate
// (may be nil).
func newHarnessWith(t testing.TB, drain, helloTimeout time.Duration, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, pki: newMeshPKI(t)}
	h.cp = newControlPlane(t, gatewayNodeID())
	cfg := Config{
		XDS:            h.cp.addr,
		Network:        testNetwork,
		ClusterID:      testCluster,
		NodeID:         gatewayNodeID(),
		Listen:         "127.0.0.1:0",
		Admin:          "127.0.0.1:0",
		HelloTimeout:   helloTimeout,
		Drain:          drain,
		ReconnectDelay: 20 * time.Millisecond,
		Logger:         testkit.Logger(t),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.gw = gw
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	// Registered before the test's cleanups, so it runs after them.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) waitReady() {
	h.t.Helper()
	select {
	case <-h.gw.Ready():
	case <-time.After(waitFor):
		h.t.Fatal("the gateway never became ready")
	}
}

// waitVersions waits until the gateway's table has the given versions
// (an empty field is not checked).
func (h *harness) waitVersions(want Versions) {
	h.t.Helper()
	testkit.Eventually(h.t, waitFor, fmt.Sprintf("timed out waiting for the gateway to apply versions %+v", want), testkit.Holds(func() bool {
		v := h.gw.Table().Versions
		return (want.Listeners == "" || v.Listeners == want.Listeners) &&
			(want.Clusters == "" || v.Clusters == want.Clusters) &&
			(want.Endpoints == "" || v.Endpoints == want.Endpoints)
	}))
}

// waitPushed waits until the gateway's table holds version v (what push
// returned) of listeners, clusters and endpoints: the control plane sends
// the three types of a push in any order, and a test that reads the table
// or counts picks must not race the ones still on their way.
func (h *harness) waitPushed(v string) {
	h.t.Helper()
	h.waitVersions(Versions{Listeners: v, Clusters: v, Endpoints: v})
}

// errorCounts reads causeway_gateway_connection_errors_total by reason.
// It takes the calling (sub)test's t: only that one may fail.
func (h *harness) errorCounts(t testing.TB) map[string]float64 {
	t.Helper()
	counts := make(map[string]float64, numReasons)
	for r := range numReasons {
		counts[r.String()] = testkit.MetricValue(t, h.gw.metrics.errors[r])
	}
	return counts
}

// waitErrorCounts waits until the refusal counters are those of before
// plus add, and fails t with the difference when they do not get there.
func (h *harness) waitErrorCounts(t testing.TB, before map[string]float64, add map[reason]float64) {
	t.Helper()
	want := maps.Clone(before)
	for r, n := range add {
		want[r.String()] += n
	}
	testkit.Eventually(t, waitFor, "refused connections by reason (-want +got)", func() string {
		return cmp.Diff(want, h.errorCounts(t))
	})
}

// dial opens an mTLS connection through the gateway with sni, and returns
// it with the name of the backend that answered.
func (h *harness) dial(sni string) (*tls.Conn, string, error) {
	return dialVia(h.t, h.gw.Addr().String(), h.pki.clientTLS(h.t, sni))
}

func dialVia(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		_ = c.Close()
		return nil, "", fmt.Errorf("reading the backend's name: %w", err)
	}
	return c, strings.TrimSpace(name), nil
}

// echo checks that c still carries bytes both ways.
func echo(c *tls.Conn, msg string) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// get fetches a path of the gateway's admin server.
func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.gw.AdminAddr().String() + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
