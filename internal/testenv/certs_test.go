package testenv

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestServingCertVerifiesAgainstCA(t *testing.T) {
	ca, err := newCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := newServingCert(ca, "kube-apiserver", loopbackIPs(), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		roots   []byte
		host    string
		wantErr bool
	}{
		{name: "own CA, 127.0.0.1", roots: ca.CertPEM, host: "127.0.0.1"},
		{name: "own CA, ::1", roots: ca.CertPEM, host: "::1"},
		{name: "own CA, localhost", roots: ca.CertPEM, host: "localhost"},
		{name: "own CA, other host", roots: ca.CertPEM, host: "example.com", wantErr: true},
		{name: "another CA", roots: other.CertPEM, host: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(tt.roots) {
				t.Fatal("CA PEM does not parse")
			}
			_, err := serving.cert.Verify(x509.VerifyOptions{
				Roots:     pool,
				DNSName:   tt.host,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify: error %v, want error %t", err, tt.wantErr)
			}
		})
	}

	priv, pub, err := newServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(priv); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("service-account private key is not a PKCS#8 PEM block: %q", priv)
	}
	if b, _ := pem.Decode(pub); b == nil || b.Type != "PUBLIC KEY" {
		t.Errorf("service-account public key is not a PKIX PEM block: %q", pub)
	}
}
