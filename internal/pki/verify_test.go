package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	ca := testCA(t, b)
	otherRoot, _ := testRoot(t, RootOptions{})

	csr, workloadKey := testCSR(t, []string{spiffeA}, nil, nil)
	leaf, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter := mustParse(t, b.CACert)
	interKey, err := parseKey(b.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	// Certificates no CA of this package makes, signed by hand.
	handSigned := func(tmpl, parent *x509.Certificate, signer crypto.Signer) []byte {
		t.Helper()
		key, err := newKey(KeyEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tmpl.NotBefore.IsZero() {
			tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		}
		tmpl.BasicConstraintsValid = true
		der, err := sign(tmpl, parent, key.Public(), signer)
		if err != nil {
			t.Fatal(err)
		}
		return encodeCert(der)
	}
	expiredLeaf := handSigned(&x509.Certificate{URIs: leaf.Cert.URIs, NotBefore: time.Now().Add(-2 * time.Hour),
		NotAfter: time.Now().Add(-time.Hour)}, inter, interKey)
	// A CA under the intermediate, whose path length is 0, and a leaf of it.
	subCAKey, err := newKey(KeyEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	subCADER, err := sign(&x509.Certificate{Subject: inter.Subject, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)},
		inter, subCAKey.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	subCA := mustParse(t, encodeCert(subCADER))
	underSubCA := handSigned(&x509.Certificate{URIs: leaf.Cert.URIs}, subCA, subCAKey)
	// A certificate signed by a workload's key.
	underLeaf := handSigned(&x509.Certificate{URIs: leaf.Cert.URIs}, leaf.Cert, workloadKey)

	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		chain     []byte
		roots     []byte
		usages    []x509.ExtKeyUsage
		wantErr   error
		wantIndex int
	}{
		{name: "leaf, intermediate", chain: cat(leaf.Chain[0], leaf.Chain[1]), roots: rootCert},
		{name: "leaf, intermediate, root", chain: leaf.ChainPEM(), roots: rootCert},
		{name: "the intermediate alone", chain: b.CACert, roots: rootCert},
		{name: "the root alone", chain: rootCert, roots: rootCert},
		{name: "as a server", chain: leaf.ChainPEM(), roots: rootCert, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{name: "intermediate missing", chain: leaf.Chain[0], roots: rootCert, wantErr: ErrChainBroken, wantIndex: 0},
		{name: "another root", chain: cat(leaf.Chain[0], leaf.Chain[1]), roots: otherRoot, wantErr: ErrChainBroken, wantIndex: 1},
		{name: "out of order", chain: cat(leaf.Chain[1], leaf.Chain[0]), roots: rootCert, wantErr: ErrChainBroken, wantIndex: 1},
		{name: "expired leaf", chain: cat(expiredLeaf, b.CACert), roots: rootCert, wantErr: ErrExpired, wantIndex: 0},
		{name: "signed by a workload", chain: cat(underLeaf, leaf.Chain[0], b.CACert), roots: rootCert, wantErr: ErrNotCA, wantIndex: 1},
		{name: "deeper than path length 0", chain: cat(underSubCA, encodeCert(subCADER), b.CACert), roots: rootCert, wantErr: ErrPathLen, wantIndex: 2},
		{name: "root is an intermediate", chain: leaf.Chain[0], roots: b.CACert, wantErr: ErrNotSelfSigned, wantIndex: -1},
		{name: "wrong usage", chain: leaf.ChainPEM(), roots: rootCert, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			wantErr: ErrChainBroken, wantIndex: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.chain, tt.roots, VerifyOptions{KeyUsages: tt.usages})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			var link *LinkError
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &link) || link.Index != tt.wantIndex {
				t.Fatalf("Verify: got %v, want %v at index %d", err, tt.wantErr, tt.wantIndex)
			}
		})
	}

	t.Run("at a time after the intermediate expires", func(t *testing.T) {
		err := Verify(leaf.ChainPEM(), rootCert, VerifyOptions{Now: time.Now().AddDate(3, 0, 0)})
		var link *LinkError
		if !errors.Is(err, ErrExpired) || !errors.As(err, &link) || link.Index != 0 {
			t.Fatalf("Verify: got %v, want ErrExpired at the leaf", err)
		}
	})
	t.Run("no certificates", func(t *testing.T) {
		if err := Verify(b.CAKey, rootCert, VerifyOptions{}); !errors.Is(err, ErrNoCertificate) {
			t.Fatalf("Verify: got %v, want ErrNoCertificate", err)
		}
		if err := Verify(leaf.ChainPEM(), nil, VerifyOptions{}); !errors.Is(err, ErrNoCertificate) {
			t.Fatalf("Verify without roots: got %v, want ErrNoCertificate", err)
		}
	})
}
