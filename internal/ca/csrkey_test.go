package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func csrFor(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// The ASN.1 of a CSR, enough to swap its public key.
type (
	spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	csrInfo struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  spki
		Attributes []asn1.RawValue `asn1:"tag:0"`
	}
	csrDER struct {
		Info      csrInfo
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
)

// bigRSACSR is a CSR whose key is an RSA modulus of bits bits (not a real
// key: its signature does not verify, which the key check must not need).
func bigRSACSR(t *testing.T, bits int) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrFor(t, k))
	var c csrDER
	if _, err := asn1.Unmarshal(block.Bytes, &c); err != nil {
		t.Fatal(err)
	}
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(1))
	pub, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(pub, &c.Info.PublicKey); err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCheckCSRKey(t *testing.T) {
	ec := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		csr     []byte
		wantErr string
	}{
		{name: "P-256", csr: csrFor(t, ec(elliptic.P256()))},
		{name: "P-384", csr: csrFor(t, ec(elliptic.P384()))},
		{name: "RSA 2048", csr: csrFor(t, rsa2048)},
		{name: "P-521", csr: csrFor(t, ec(elliptic.P521())), wantErr: "ECDSA curve P-521"},
		{name: "P-224", csr: csrFor(t, ec(elliptic.P224())), wantErr: "ECDSA curve P-224"},
		{name: "Ed25519", csr: csrFor(t, edKey), wantErr: "Ed25519 key"},
		{name: "RSA 16384", csr: bigRSACSR(t, 16384), wantErr: "RSA key of 16384 bits"},
		{name: "RSA 4608", csr: bigRSACSR(t, 4608), wantErr: "RSA key of 4608 bits"},
		{name: "too large", csr: []byte(strings.Repeat("A", MaxCSRBytes+1)), wantErr: "more than"},
		{name: "not PEM is left to the signer", csr: []byte("nonsense")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCSRKey(tt.csr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkCSRKey() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, errCSRKey) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkCSRKey() = %v, want errCSRKey with %q", err, tt.wantErr)
			}
		})
	}
}

// TestCreateCertificateRefusesKeys: a CreateCertificate with a key the CA
// does not accept fails with InvalidArgument and says which keys it takes.
func TestCreateCertificateRefusesKeys(t *testing.T) {
	m := newFakeMesh(t, nil)
	client := dialCA(t, m.addr, m.root, "ca.example.com")
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, csr := range map[string][]byte{"Ed25519": csrFor(t, edKey), "P-521": csrFor(t, p521), "RSA 8192": bigRSACSR(t, 8192)} {
		_, err := request(t.Context(), client, tok("c1-app-workload"), "", csr, 0)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ECDSA P-256") {
			t.Errorf("%s: error %v, want InvalidArgument naming the accepted keys", name, err)
		}
	}
}

// FuzzCheckCSRKey: whatever the bytes, the key check does not panic, and a
// CSR it passes that parses carries an accepted key.
func FuzzCheckCSRKey(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkCSRKey(data); err != nil {
			return
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return
		}
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return
		}
		switch pub := csr.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
				t.Fatalf("passed curve %s", pub.Curve.Params().Name)
			}
		case *rsa.PublicKey:
			if n := pub.N.BitLen(); n < MinCSRRSABits || n > MaxCSRRSABits {
				t.Fatalf("passed RSA %d", n)
			}
		default:
			t.Fatalf("passed key %T", pub)
		}
	})
}
