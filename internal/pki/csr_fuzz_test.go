package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"slices"
	"testing"
)

// FuzzSignCSR feeds arbitrary PEM to the CA's CSR path (what
// CreateCertificate receives from any client of :15012): it must never
// panic, must fail with ErrInvalidCSR or ErrNameNotAllowed on what it
// refuses, and must never certify a name outside the allowed ones.
func FuzzSignCSR(f *testing.F) {
	rootCert, rootKey, err := NewRoot(RootOptions{})
	if err != nil {
		f.Fatal(err)
	}
	b, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "c1"})
	if err != nil {
		f.Fatal(err)
	}
	ca, err := NewCA(b)
	if err != nil {
		f.Fatal(err)
	}
	const id = "spiffe://cluster.local/ns/sample/sa/helloworld"
	allowed := SANs{URIs: []string{id}}
	csr := func(uris ...string) []byte {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		tmpl := &x509.CertificateRequest{}
		for _, u := range uris {
			p, err := url.Parse(u)
			if err != nil {
				f.Fatal(err)
			}
			tmpl.URIs = append(tmpl.URIs, p)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			f.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	f.Add(csr(id))
	f.Add(csr())
	f.Add(csr("spiffe://cluster.local/ns/other/sa/x"))
	f.Add(csr(id, "spiffe://evil.example/ns/a/sa/b"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("-----BEGIN NEW CERTIFICATE REQUEST-----\n-----END NEW CERTIFICATE REQUEST-----\n"))
	f.Add(rootCert)
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, in []byte) {
		issued, err := ca.SignCSR(in, allowed, 0)
		if err != nil {
			if !errors.Is(err, ErrInvalidCSR) && !errors.Is(err, ErrNameNotAllowed) {
				t.Fatalf("SignCSR refused with %v: want ErrInvalidCSR or ErrNameNotAllowed", err)
			}
			return
		}
		c := issued.Cert
		if c.IsCA || len(c.DNSNames) > 0 || len(c.IPAddresses) > 0 || len(c.EmailAddresses) > 0 {
			t.Fatalf("issued a certificate beyond the allowed identity: CA %v, DNS %v, IP %v, email %v", c.IsCA, c.DNSNames, c.IPAddresses, c.EmailAddresses)
		}
		for _, u := range c.URIs {
			if !slices.Contains(allowed.URIs, u.String()) {
				t.Fatalf("issued URI %s, allowed %v", u, allowed.URIs)
			}
		}
	})
}
