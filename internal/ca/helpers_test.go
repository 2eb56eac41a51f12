package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRoot is a root CA and its key, PEM.
type testRoot struct {
	cert, key []byte
}

func newTestRoot(t *testing.T) testRoot {
	t.Helper()
	cert, key, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return testRoot{cert: cert, key: key}
}

// intermediate makes an intermediate CA of the root for cluster.
func (r testRoot) intermediate(t *testing.T, cluster string) pki.Bundle {
	t.Helper()
	b, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: r.cert, RootKey: r.key, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cacertsSecret is the plug-in CA Secret of bundle b in namespace ns.
func cacertsSecret(ns string, b pki.Bundle) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PluginSecretName, Namespace: ns},
		Type:       corev1.SecretTypeOpaque,
		Data:       b.Data(),
	}
}

// runAuthority builds and runs an authority until the test ends and waits
// until its CA is loaded.
func runAuthority(t *testing.T, cfg Config) *Authority {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitCtx, stop := context.WithTimeout(t.Context(), 30*time.Second)
	defer stop()
	ready := make(chan error, 1)
	go func() { ready <- a.WaitReady(waitCtx) }()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("Run ended before the CA was loaded: %v", err)
	}
	return a
}

// runPublisher publishes a's root into a cluster until the test ends.
func runPublisher(t *testing.T, a *Authority, cluster string, client kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.PublishRoot(ctx, model.ClusterID(cluster), client) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PublishRoot %s: %v", cluster, err)
		}
	})
}

// serveCA serves a's CreateCertificate on a TLS port of 127.0.0.1 until the
// test ends and returns its address.
func serveCA(t *testing.T, a *Authority) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(a.ServingTLSConfig())))
	a.Register(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

// dialCA connects to the CA at addr verifying its certificate against
// rootPEM for serverName.
func dialCA(t *testing.T, addr string, rootPEM []byte, serverName string) pb.IstioCertificateServiceClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootPEM) {
		t.Fatal("no root to dial the CA with")
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs:    pool,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pb.NewIstioCertificateServiceClient(conn)
}

// newCSR makes a key and a PEM CSR for it asking for uris.
func newCSR(t *testing.T, uris ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	return testkit.CSR(t, uris, nil, nil)
}

// request calls CreateCertificate with a token and a cluster id (none when
// empty).
func request(ctx context.Context, c pb.IstioCertificateServiceClient, token, cluster string, csr []byte, ttl time.Duration) (*pb.IstioCertificateResponse, error) {
	var kv []string
	if token != "" {
		kv = append(kv, "authorization", "Bearer "+token)
	}
	if cluster != "" {
		kv = append(kv, ClusterIDMetadataKey, cluster)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	return c.CreateCertificate(ctx, &pb.IstioCertificateRequest{Csr: string(csr), ValidityDuration: int64(ttl / time.Second)})
}

// joinChain is the response's chain as one PEM bundle.
func joinChain(resp *pb.IstioCertificateResponse) []byte {
	var out []byte
	for _, c := range resp.GetCertChain() {
		out = append(out, c...)
	}
	return out
}

// parseLeaf parses the first certificate of the response.
func parseLeaf(t *testing.T, resp *pb.IstioCertificateResponse) *x509.Certificate {
	t.Helper()
	if len(resp.GetCertChain()) == 0 {
		t.Fatal("empty certificate chain")
	}
	block, _ := pem.Decode([]byte(resp.GetCertChain()[0]))
	if block == nil {
		t.Fatal("first element of the chain is not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parseCert parses one PEM certificate.
func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("not PEM")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// counter reads a counter of reg by name and labels; 0 when absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// handshake dials addr with TLS and returns the server's certificates.
func handshake(t *testing.T, addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	tc := conn.(*tls.Conn)
	// TLS 1.3 reports a rejected client certificate only on the first read.
	_ = tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var one [1]byte
	if _, err := tc.Read(one[:]); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil, err
		}
	}
	return tc.ConnectionState().PeerCertificates, nil
}
