package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// shape is what a test checks of a certificate, leaving out what is random.
type shape struct {
	Subject, Issuer string
	IsCA            bool
	PathLen         *int
	SelfSigned      bool
	KeyAlgorithm    string
	KeyUsage        []string
	ExtKeyUsage     []string
	DNSNames, URIs  []string
	Days            int
}

func shapeOf(info CertInfo) shape {
	return shape{
		Subject: info.Subject, Issuer: info.Issuer, IsCA: info.IsCA, PathLen: info.PathLen,
		SelfSigned: info.SelfSigned, KeyAlgorithm: info.KeyAlgorithm, KeyUsage: info.KeyUsage,
		ExtKeyUsage: info.ExtKeyUsage, DNSNames: info.DNSNames, URIs: info.URIs,
		Days: int(info.NotAfter.Sub(info.NotBefore.Add(clockSkew)).Round(time.Hour).Hours() / 24),
	}
}

func caUsage() []string { return []string{"digitalSignature", "keyCertSign", "cRLSign"} }

func TestNewRoot(t *testing.T) {
	tests := []struct {
		name string
		opts RootOptions
		want shape
	}{
		{
			name: "defaults as Istio's Makefile",
			want: shape{Subject: "CN=Root CA,O=Istio", Issuer: "CN=Root CA,O=Istio", IsCA: true, SelfSigned: true,
				KeyAlgorithm: "ECDSA P-256", KeyUsage: caUsage(), Days: 3650},
		},
		{
			name: "rsa 2048, own names and days",
			opts: RootOptions{Org: "Acme", CommonName: "Acme Mesh Root", Days: 365, KeyType: KeyRSA},
			want: shape{Subject: "CN=Acme Mesh Root,O=Acme", Issuer: "CN=Acme Mesh Root,O=Acme", IsCA: true, SelfSigned: true,
				KeyAlgorithm: "RSA 2048", KeyUsage: caUsage(), Days: 365},
		},
		{
			name: "rsa 4096",
			opts: RootOptions{KeyType: KeyRSA, RSABits: 4096, Days: 10},
			want: shape{Subject: "CN=Root CA,O=Istio", Issuer: "CN=Root CA,O=Istio", IsCA: true, SelfSigned: true,
				KeyAlgorithm: "RSA 4096", KeyUsage: caUsage(), Days: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.RSABits == RSABitsLarge {
				testreq.NotShort(t, "RSA 4096 key generation is slow")
			}
			certPEM, keyPEM := testRoot(t, tt.opts)
			infos, err := Inspect(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 1 {
				t.Fatalf("got %d certificates, want 1", len(infos))
			}
			if diff := cmp.Diff(tt.want, shapeOf(infos[0])); diff != "" {
				t.Errorf("root (-want +got):\n%s", diff)
			}
			key, err := parseKey(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if !keyMatches(mustParse(t, certPEM).PublicKey, key) {
				t.Error("the key is not the root's")
			}
			if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
				t.Errorf("key is not PKCS #8: %.40q", keyPEM)
			}
		})
	}
}

func TestNewRootErrors(t *testing.T) {
	tests := []struct {
		name string
		opts RootOptions
		want string
	}{
		{"negative days", RootOptions{Days: -1}, "validity of -1 days"},
		{"too many days", RootOptions{Days: maxDays + 1}, "want 1 to"},
		{"unknown key type", RootOptions{KeyType: "dsa"}, `key type "dsa"`},
		{"rsa 1024", RootOptions{KeyType: KeyRSA, RSABits: 1024}, "RSA key size 1024"},
		{"bits for ec", RootOptions{RSABits: 4096}, "applies to rsa keys only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := NewRoot(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRoot: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestNewIntermediate(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")

	got, err := Inspect(b.CertChain)
	if err != nil {
		t.Fatal(err)
	}
	want := []shape{
		{
			Subject: "CN=Intermediate CA,O=Istio,L=cluster1", Issuer: "CN=Root CA,O=Istio", IsCA: true, PathLen: new(0),
			KeyAlgorithm: "ECDSA P-256", KeyUsage: caUsage(), DNSNames: []string{"istiod.istio-system.svc"}, Days: 730,
		},
		{
			Subject: "CN=Root CA,O=Istio", Issuer: "CN=Root CA,O=Istio", IsCA: true, SelfSigned: true,
			KeyAlgorithm: "ECDSA P-256", KeyUsage: caUsage(), Days: 3650,
		},
	}
	gotShapes := make([]shape, len(got))
	for i, info := range got {
		gotShapes[i] = shapeOf(info)
	}
	if diff := cmp.Diff(want, gotShapes); diff != "" {
		t.Errorf("cert-chain.pem (-want +got):\n%s", diff)
	}
	if !bytes.Equal(b.RootCert, rootCert) {
		t.Error("root-cert.pem is not the root")
	}
	if !strings.HasPrefix(string(b.CertChain), string(b.CACert)) {
		t.Error("cert-chain.pem does not start with ca-cert.pem")
	}
	inter := mustParse(t, b.CACert)
	// The subject's attributes in Istio's order: O, CN, L.
	var order []string
	for _, rdn := range inter.Subject.Names {
		order = append(order, rdn.Type.String())
	}
	if diff := cmp.Diff([]string{"2.5.4.10", "2.5.4.3", "2.5.4.7"}, order); diff != "" {
		t.Errorf("subject attribute order (-want +got):\n%s", diff)
	}
	if err := inter.CheckSignatureFrom(mustParse(t, rootCert)); err != nil {
		t.Errorf("intermediate not signed by the root: %v", err)
	}
	if skid := mustParse(t, rootCert).SubjectKeyId; len(skid) == 0 || !bytes.Equal(inter.AuthorityKeyId, skid) {
		t.Error("intermediate's authority key id is not the root's subject key id")
	}
}

func TestNewIntermediateOptions(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{KeyType: KeyRSA})
	b, err := NewIntermediate(IntermediateOptions{
		RootCert: rootCert, RootKey: rootKey, Cluster: "us-east", Org: "Acme", CommonName: "East CA",
		DNSNames: []string{}, Days: 30, KeyType: KeyRSA,
	})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := Inspect(b.CACert)
	if err != nil {
		t.Fatal(err)
	}
	want := shape{Subject: "CN=East CA,O=Acme,L=us-east", Issuer: "CN=Root CA,O=Istio", IsCA: true, PathLen: new(0),
		KeyAlgorithm: "RSA 2048", KeyUsage: caUsage(), Days: 30}
	if diff := cmp.Diff(want, shapeOf(infos[0]), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ca-cert.pem (-want +got):\n%s", diff)
	}
}

func TestNewIntermediateErrors(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	otherCert, otherKey := testRoot(t, RootOptions{})
	expiredCert, expiredKey := testRoot(t, RootOptions{Days: 10, Now: time.Now().AddDate(0, 0, -20)})
	futureCert, futureKey := testRoot(t, RootOptions{Now: time.Now().Add(time.Hour)})
	shortCert, shortKey := testRoot(t, RootOptions{Days: 100})
	leafCert, leafKey := testSelfSignedLeaf(t)
	inter := testIntermediate(t, rootCert, rootKey, "cluster1")

	tests := []struct {
		name     string
		opts     IntermediateOptions
		wantErr  error
		wantText string
	}{
		{"no cluster", IntermediateOptions{RootCert: rootCert, RootKey: rootKey}, nil, "cluster id is empty"},
		{"no root cert", IntermediateOptions{RootKey: rootKey, Cluster: "c"}, ErrNoCertificate, "root certificate"},
		{"no root key", IntermediateOptions{RootCert: rootCert, Cluster: "c"}, nil, "root key: no PEM private key"},
		{"key of another root", IntermediateOptions{RootCert: rootCert, RootKey: otherKey, Cluster: "c"}, ErrKeyMismatch, "give the key made with it"},
		{"root is not a CA", IntermediateOptions{RootCert: leafCert, RootKey: leafKey, Cluster: "c"}, ErrNotCA, "CA:true"},
		{"expired root", IntermediateOptions{RootCert: expiredCert, RootKey: expiredKey, Cluster: "c"}, ErrExpired, "expired at"},
		{"root not valid yet", IntermediateOptions{RootCert: futureCert, RootKey: futureKey, Cluster: "c"}, ErrNotYetValid, "valid from"},
		{"root is an intermediate", IntermediateOptions{RootCert: inter.CACert, RootKey: inter.CAKey, Cluster: "c"}, ErrNotSelfSigned, "self-signed root"},
		{"two certificates as root", IntermediateOptions{RootCert: append(append([]byte{}, rootCert...), otherCert...), RootKey: rootKey, Cluster: "c"}, nil, "holds 2 certificates"},
		{"outlives the root", IntermediateOptions{RootCert: shortCert, RootKey: shortKey, Cluster: "c"}, nil, "would outlive the root"},
		{"bad days", IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "c", Days: -3}, nil, "validity of -3 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewIntermediate(tt.opts)
			if err == nil {
				t.Fatal("NewIntermediate succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

func TestParseKeyFormats(t *testing.T) {
	ecKey, err := newKey(KeyEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := newKey(KeyRSA, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := encodeKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1DER, err := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))})
	params := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")

	tests := []struct {
		name    string
		pem     []byte
		wantAlg string
		wantErr string
	}{
		{"pkcs8", pkcs8, "ECDSA P-256", ""},
		{"sec1 after ec parameters", append(append([]byte{}, params...), sec1...), "ECDSA P-256", ""},
		{"pkcs1", pkcs1, "RSA 2048", ""},
		{"encrypted", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "", "encrypted"},
		{"not pem", []byte("hello"), "", "no PEM private key"},
		{"garbage der", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "", "parse PRIVATE KEY block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := parseKey(tt.pem)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keyAlgorithm(key.Public()); got != tt.wantAlg {
				t.Errorf("key algorithm %q, want %q", got, tt.wantAlg)
			}
		})
	}
}

func TestParseKeyType(t *testing.T) {
	for in, want := range map[string]KeyType{"": KeyEC, "ec": KeyEC, "EC": KeyEC, "rsa": KeyRSA} {
		got, err := ParseKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKeyType("ed25519"); err == nil {
		t.Error("ParseKeyType(ed25519) succeeded")
	}
}
