package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// The unit-level proof of helloworld's captured inbound, on virtual
// inbound listeners written by hand in istiod's shapes for an HTTP port
// 5000 (no control plane, no namespaces): what each mode's chains accept.

// inboundHTTPFilter is istiod's inbound HTTP connection manager: an
// inline route of every host to inbound|PORT||.
func inboundHTTPFilter(t *testing.T, port string) *listenerv3.Filter {
	rc := &routev3.RouteConfiguration{Name: "inbound|" + port + "||", VirtualHosts: []*routev3.VirtualHost{{
		Name: "inbound|http|" + port, Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "inbound|" + port + "||"}}}}},
	}}}
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: testkit.MustAny(t, &hcmv3.HttpConnectionManager{StatPrefix: "inbound", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}}),
	}}
}

func inboundTCPFilter(t *testing.T, cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{
		TypedConfig: testkit.MustAny(t, &tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}),
	}}
}

// meshServerTLS is istiod's inbound DownstreamTlsContext for HTTP.
func meshServerTLS(t *testing.T) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: testkit.MustAny(t, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2, TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: sdsWorkloadCert}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: sdsRootCA},
			}},
		},
	})}}
}

// handVirtualInbound is 0.0.0.0:15006 for HTTP port port in mode STRICT
// or PERMISSIVE, chains as istiod writes them.
func handVirtualInbound(t *testing.T, port uint32, strict bool) *listenerv3.Listener {
	name := strconv.FormatUint(uint64(port), 10)
	istioALPNs := []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
	chains := []*listenerv3.FilterChain{
		{Name: "virtualInbound-blackhole", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(virtualInboundPort)}, Filters: []*listenerv3.Filter{inboundTCPFilter(t, "BlackHoleCluster")}},
		{Name: "virtualInbound", FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"}, TransportSocket: meshServerTLS(t), Filters: []*listenerv3.Filter{inboundTCPFilter(t, "InboundPassthroughCluster")}},
		{Name: "0.0.0.0_" + name, FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "tls", ApplicationProtocols: istioALPNs},
			TransportSocket: meshServerTLS(t), Filters: []*listenerv3.Filter{inboundHTTPFilter(t, name)}},
	}
	if !strict {
		chains = append(chains,
			&listenerv3.FilterChain{Name: "virtualInbound-raw", FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}, Filters: []*listenerv3.Filter{inboundTCPFilter(t, "InboundPassthroughCluster")}},
			&listenerv3.FilterChain{Name: "0.0.0.0_" + name + "-raw", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
				Filters: []*listenerv3.Filter{inboundHTTPFilter(t, name)}},
		)
	}
	return &listenerv3.Listener{Name: "virtualInbound", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: virtualInboundPort},
	}}}, FilterChains: chains}
}

// testMesh is a mesh root and workload certificates it issues.
type testMesh struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey
	pool    *x509.CertPool
	serial  int64
}

func newTestMesh(t *testing.T) *testMesh {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test mesh"}}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &testMesh{root: root, rootKey: key, pool: pool, serial: 1}
}

// workload issues the certificate of service account sa of the sample
// namespace.
func (m *testMesh) workload(t *testing.T, sa string) *workloadCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := "spiffe://" + trustDomain + "/ns/" + sampleNamespace + "/sa/" + sa
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	m.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(m.serial), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.root, &key.PublicKey, m.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &workloadCert{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots: m.pool, id: id}
}

// startTestHelloworld serves helloworld on a free loopback port behind a
// captured inbound that has no listener yet, and returns the port.
func startTestHelloworld(t *testing.T, wc *workloadCert) (*captureInbound, uint32) {
	t.Helper()
	in := &captureInbound{cert: wc, log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := helloServer(slog.New(slog.DiscardHandler), "v1", "helloworld-v1")
	go func() { _ = srv.Serve(&inboundListener{Listener: ln, in: in}) }()
	t.Cleanup(func() { _ = srv.Close() })
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v", ln.Addr())
	}
	return in, uint32(tcp.Port)
}

func TestCapturedInboundModes(t *testing.T) {
	mesh := newTestMesh(t)
	hello, sleep := mesh.workload(t, helloworldSA), mesh.workload(t, sleepSA)
	in, port := startTestHelloworld(t, hello)
	addr := "127.0.0.1:" + strconv.FormatUint(uint64(port), 10)
	if ok, err := in.update([]*listenerv3.Listener{handVirtualInbound(t, port, false)}); !ok || err != nil {
		t.Fatalf("update: %v, %v", ok, err)
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	mtls := endpoint{Address: addr, Weight: 1, TLS: &upstreamTLS{
		SNI: "outbound_.5000_._.helloworld.sample.svc.cluster.local", ALPN: []string{"istio-peer-exchange", "istio"}, SANs: []string{hello.id},
	}}
	cfg := sleepConfig{Host: "helloworld.sample:5000", Path: "/hello", Timeout: 3 * time.Second}

	// PERMISSIVE: plaintext and mTLS.
	if v, peer, err := plaintextHello(t.Context(), dial, addr); err != nil || v != "v1" || peer != noPeer {
		t.Errorf("PERMISSIVE, plaintext: %s %s %v; want v1 answering with peer %s", v, peer, err, noPeer)
	}
	if res := call(t.Context(), sleep, mtls, cfg); res.Error != "" || res.Peer != sleep.id || res.Server != hello.id {
		t.Errorf("PERMISSIVE, mTLS: %+v; want answered, peer %s, server %s", res, sleep.id, hello.id)
	}

	// STRICT, as a new LDS would bring it: plaintext is refused, mTLS
	// answered, TLS without a client certificate refused.
	if ok, err := in.update([]*listenerv3.Listener{handVirtualInbound(t, port, true)}); !ok || err != nil {
		t.Fatalf("update: %v, %v", ok, err)
	}
	if v, peer, err := plaintextHello(t.Context(), dial, addr); err == nil {
		t.Errorf("STRICT, plaintext: answered by %s with peer %s; want the connection refused", v, peer)
	} else {
		t.Logf("STRICT, plaintext: %v (as wanted)", err)
	}
	if res := call(t.Context(), sleep, mtls, cfg); res.Error != "" || res.Peer != sleep.id || res.Server != hello.id {
		t.Errorf("STRICT, mTLS: %+v; want answered, peer %s, server %s", res, sleep.id, hello.id)
	}
	anonymous := &workloadCert{cert: tls.Certificate{}, roots: mesh.pool, id: "anonymous"}
	if res := call(t.Context(), anonymous, mtls, cfg); res.Error == "" {
		t.Errorf("STRICT, TLS without a client certificate: %+v; want it refused (require_client_certificate)", res)
	}
	// A client certificate of another root is refused (validated against
	// ROOTCA).
	stranger := newTestMesh(t).workload(t, sleepSA)
	stranger.roots = mesh.pool
	if res := call(t.Context(), stranger, mtls, cfg); res.Error == "" {
		t.Errorf("STRICT, a client certificate of another root: %+v; want it refused", res)
	}
	// Istio's ALPN is what takes the port's mTLS chain: without it the
	// connection matches only the port's chains' destination and none of
	// their protocols, and is refused.
	noALPN := mtls
	noALPN.TLS = &upstreamTLS{SNI: mtls.TLS.SNI, ALPN: []string{"h2"}, SANs: mtls.TLS.SANs}
	if res := call(t.Context(), sleep, noALPN, cfg); res.Error == "" || !strings.Contains(res.Error, "TLS") {
		t.Errorf("STRICT, TLS without Istio's ALPN: %+v; want the handshake refused", res)
	}
}
