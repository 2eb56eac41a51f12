package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// testRoot makes a root CA or fails the test.
func testRoot(t *testing.T, opts RootOptions) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := NewRoot(opts)
	if err != nil {
		t.Fatalf("NewRoot(%+v): %v", opts, err)
	}
	return c, k
}

// testIntermediate makes a cluster's bundle under a root or fails the test.
func testIntermediate(t *testing.T, rootCert, rootKey []byte, cluster string) Bundle {
	t.Helper()
	b, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: cluster})
	if err != nil {
		t.Fatalf("NewIntermediate(%s): %v", cluster, err)
	}
	return b
}

// testCA builds a CA from a bundle or fails the test.
func testCA(t *testing.T, b Bundle) *CA {
	t.Helper()
	ca, err := NewCA(b)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// testCSR makes a P-256 key and a CSR asking for the given names.
func testCSR(t *testing.T, uris []string, dns []string, ips []net.IP) ([]byte, crypto.Signer) {
	t.Helper()
	return testkit.CSR(t, uris, dns, ips)
}

// testSelfSignedLeaf makes a self-signed certificate that is not a CA,
// something NewRoot never makes, with its key.
func testSelfSignedLeaf(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          testSerial(t),
		Subject:               pkix.Name{Organization: []string{"Istio"}, CommonName: "Not A CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCert(der), keyPEM
}

func testSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// mustParse parses the first certificate of a PEM bundle.
func mustParse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := parseCerts(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// goVerify verifies leafPEM's first certificate with crypto/x509, the
// intermediates from interPEM and the roots from rootPEM.
func goVerify(t *testing.T, leafPEM, interPEM, rootPEM []byte, usage x509.ExtKeyUsage) error {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("no root certificates")
	}
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(interPEM)
	_, err := mustParse(t, leafPEM).Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage},
	})
	return err
}
