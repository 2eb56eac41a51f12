package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestInspect(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	ca := testCA(t, b)
	csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
	leaf, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}, DNSNames: []string{"helloworld.sample.svc"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	root, inter := mustParse(t, rootCert), mustParse(t, b.CACert)

	// The whole chain with a key in the middle, as a careless cat makes it:
	// every certificate is shown, the key skipped.
	input := bytes.Join([][]byte{leaf.Chain[0], b.CAKey, leaf.Chain[1], leaf.Chain[2]}, nil)
	got, err := Inspect(input)
	if err != nil {
		t.Fatal(err)
	}
	want := []CertInfo{
		{
			Issuer: "CN=Intermediate CA,O=Istio,L=cluster1", Serial: leaf.Cert.SerialNumber.Text(16),
			NotBefore: leaf.Cert.NotBefore, NotAfter: leaf.Cert.NotAfter,
			KeyAlgorithm: "ECDSA P-256", SignatureAlgorithm: "ECDSA-SHA256",
			KeyUsage: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsage: []string{"serverAuth", "clientAuth"},
			DNSNames: []string{"helloworld.sample.svc"}, URIs: []string{spiffeA},
			AuthorityKeyID: hexOf(inter.SubjectKeyId),
		},
		{
			Subject: "CN=Intermediate CA,O=Istio,L=cluster1", Issuer: "CN=Root CA,O=Istio", Serial: inter.SerialNumber.Text(16),
			NotBefore: inter.NotBefore, NotAfter: inter.NotAfter, IsCA: true, PathLen: new(0),
			KeyAlgorithm: "ECDSA P-256", SignatureAlgorithm: "ECDSA-SHA256", KeyUsage: caUsage(),
			DNSNames: []string{"istiod.istio-system.svc"}, SubjectKeyID: hexOf(inter.SubjectKeyId), AuthorityKeyID: hexOf(root.SubjectKeyId),
		},
		{
			Subject: "CN=Root CA,O=Istio", Issuer: "CN=Root CA,O=Istio", Serial: root.SerialNumber.Text(16),
			NotBefore: root.NotBefore, NotAfter: root.NotAfter, IsCA: true, SelfSigned: true,
			KeyAlgorithm: "ECDSA P-256", SignatureAlgorithm: "ECDSA-SHA256", KeyUsage: caUsage(),
			SubjectKeyID: hexOf(root.SubjectKeyId),
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(CertInfo{}, "SubjectKeyID", "SHA256"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Inspect (-want +got):\n%s", diff)
	}
	if got[0].SubjectKeyID == "" || len(got[2].SHA256) != 64 {
		t.Errorf("leaf SKID %q, root fingerprint %q", got[0].SubjectKeyID, got[2].SHA256)
	}

	js, err := json.Marshal(got[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"subject":"CN=Intermediate CA,O=Istio,L=cluster1"`, `"pathLen":0`, `"isCA":true`} {
		if !strings.Contains(string(js), field) {
			t.Errorf("JSON %s lacks %s", js, field)
		}
	}
}

func TestInspectIPsAndErrors(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	key, err := newKey(KeyEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	root := mustParse(t, rootCert)
	rk, err := parseKey(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := ipLeafTemplate()
	der, err := sign(tmpl, root, key.Public(), rk)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := Inspect(encodeCert(der))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.1.2.3", "fd00::1"}, infos[0].IPs); diff != "" {
		t.Errorf("IPs (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"empty", nil, ErrNoCertificate.Error()},
		{"a key only", rootKey, ErrNoCertificate.Error()},
		{"not pem", []byte("Certificate:\n    Data: ..."), ErrNoCertificate.Error()},
		{"second certificate broken", append(append([]byte{}, rootCert...), "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"...), "certificate 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Inspect: got %v, want an error containing %q", err, tt.want)
			}
			if tt.want == ErrNoCertificate.Error() && !errors.Is(err, ErrNoCertificate) {
				t.Errorf("error %v is not ErrNoCertificate", err)
			}
		})
	}
}

func ipLeafTemplate() *x509.Certificate {
	return &x509.Certificate{
		IPAddresses: []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("fd00::1")},
		NotBefore:   time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
