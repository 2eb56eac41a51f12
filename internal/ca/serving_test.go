package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// clientTLS is a client configuration that trusts root for serverName.
func clientTLS(root []byte, serverName string, certs ...tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	return &tls.Config{RootCAs: pool, ServerName: serverName, NextProtos: []string{"h2"}, Certificates: certs, MinVersion: tls.VersionTLS12}
}

// workloadCert has the CA sign a workload certificate, as a tls.Certificate.
func workloadCert(t *testing.T, ca *pki.CA) tls.Certificate {
	t.Helper()
	csr, key := newCSR(t)
	issued, err := ca.SignCSR(csr, pki.SANs{URIs: []string{"spiffe://cluster.local/ns/app/sa/workload"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tlsCert(t, issued.ChainPEM(), key)
}

func tlsCert(t *testing.T, chainPEM []byte, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServingCertificate: the secure port presents a certificate for every
// name, signed by the CA, chained to the root; it accepts clients with no
// certificate or a workload certificate of the CA, and refuses others.
func TestServingCertificate(t *testing.T) {
	m := newFakeMesh(t, func(c *Config) {
		c.Revision = "1-11-4"
		c.CustomHosts = []string{"istiod-1-11-4.istio-system.svc", "mesh.example.com"}
	})
	for _, name := range []string{"istiod.istio-system.svc", "istiod-1-11-4.istio-system.svc", "istiod-remote.istio-system.svc", "mesh.example.com"} {
		certs, err := handshake(t, m.addr, clientTLS(m.root, name))
		if err != nil {
			t.Fatalf("server name %s: %v", name, err)
		}
		if len(certs) != 2 {
			t.Errorf("server sent %d certificates, want the leaf and the intermediate", len(certs))
		}
	}
	certs, err := handshake(t, m.addr, clientTLS(m.root, "mesh.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"istiod.istio-system.svc", "istiod-1-11-4.istio-system.svc", "istiod-remote.istio-system.svc", "mesh.example.com"}
	if diff := cmp.Diff(want, certs[0].DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if !slices.Contains(certs[0].ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("serving certificate lacks serverAuth")
	}
	if _, err := handshake(t, m.addr, clientTLS(m.root, "other.example.com")); err == nil {
		t.Error("handshake for a name the certificate lacks succeeded")
	}

	// mTLS: a workload certificate of the CA is accepted, a stranger's not.
	if _, err := handshake(t, m.addr, clientTLS(m.root, "mesh.example.com", workloadCert(t, m.a.state.Load().ca))); err != nil {
		t.Errorf("workload certificate refused: %v", err)
	}
	stranger, err := pki.NewSelfSignedCA(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, m.addr, clientTLS(m.root, "mesh.example.com", workloadCert(t, stranger))); err == nil {
		t.Error("a certificate of another root was accepted")
	}
}

// TestServingRotation: the serving certificate is renewed at two thirds of
// its life and when the CA changes, without a restart; the client-side
// root check follows the CA.
func TestServingRotation(t *testing.T) {
	m := newFakeMesh(t, func(c *Config) { c.ServingTTL = 2 * time.Second })
	serial := func() string {
		certs, err := handshake(t, m.addr, clientTLS(m.root, "ca.example.com"))
		if err != nil {
			t.Fatal(err)
		}
		return certs[0].SerialNumber.String()
	}
	first := serial()
	testkit.Eventually(t, 10*time.Second, "serving certificate renewed", testkit.Succeeds(func() error {
		if serial() == first {
			return errors.New("same certificate")
		}
		return nil
	}))

	// A new plug-in CA of a new root: a new serving certificate from it,
	// clients verify it with the new root, and workload certificates of
	// the new CA are accepted.
	newRoot := newTestRoot(t)
	next := newRoot.intermediate(t, "cluster1-b")
	if _, err := m.config.CoreV1().Secrets("istio-system").Update(t.Context(), cacertsSecret("istio-system", next), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	nextCA, err := pki.NewCA(next)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "serving certificate of the new CA", testkit.Succeeds(func() error {
		certs, err := handshake(t, m.addr, clientTLS(newRoot.cert, "ca.example.com", workloadCert(t, nextCA)))
		if err != nil {
			return err
		}
		if !bytes.Equal(certs[1].Raw, parseCert(t, next.CACert).Raw) {
			return errors.New("not issued by the new intermediate")
		}
		return nil
	}))
	if got := counter(t, m.reg, "causeway_ca_serving_certificates_total", map[string]string{"result": "ok"}); got < 3 {
		t.Errorf("%v serving certificates counted, want at least 3", got)
	}
}

// TestServingKey: each serving certificate has a new key, and is renewed
// before it expires, however short its life.
func TestServingKey(t *testing.T) {
	ca, err := pki.NewSelfSignedCA(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{ClusterID: "c", Client: fake.NewClientset(), Logger: testkit.Logger(t), ServingTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a.install(ca, "test", [32]byte{1})
	st := a.state.Load()
	var keys []*ecdsa.PublicKey
	for range 2 {
		if err := a.issueServing(st); err != nil {
			t.Fatal(err)
		}
		cert, err := a.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, cert.PrivateKey.(*ecdsa.PrivateKey).Public().(*ecdsa.PublicKey))
		if sc := a.serving.Load(); !sc.renewAt.Before(sc.cert.Leaf.NotAfter) {
			t.Errorf("renewal at %v, after the certificate expires at %v", sc.renewAt, sc.cert.Leaf.NotAfter)
		}
		if len(cert.Certificate) != 1 {
			t.Errorf("with a self-signed CA the server sends %d certificates, want the leaf alone", len(cert.Certificate))
		}
	}
	if keys[0].Equal(keys[1]) {
		t.Error("the renewed serving certificate reuses the key")
	}
}

// TestTwoRoots: during a root rotation root-cert.pem of cacerts holds the
// new and the old root: both are published, and a proxy with a
// certificate of the old CA is still accepted on the secure port.
func TestTwoRoots(t *testing.T) {
	m := newFakeMesh(t, nil)
	oldCA := m.a.state.Load().ca
	newRoot := newTestRoot(t)
	next := newRoot.intermediate(t, "cluster1")
	next.RootCert = append(append([]byte(nil), newRoot.cert...), m.root...)
	if _, err := m.config.CoreV1().Secrets("istio-system").Update(t.Context(), cacertsSecret("istio-system", next), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "both roots published", testkit.Succeeds(func() error {
		if !bytes.Equal(m.a.Root(), next.RootCert) {
			return errors.New("not both roots")
		}
		return nil
	}))
	if _, err := handshake(t, m.addr, clientTLS(newRoot.cert, "ca.example.com", workloadCert(t, oldCA))); err != nil {
		t.Errorf("a certificate of the old CA is refused during the rotation: %v", err)
	}
}
