package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	spiffeA = "spiffe://cluster.local/ns/sample/sa/helloworld"
	spiffeB = "spiffe://cluster.local/ns/sample/sa/sleep"
)

func TestNewCAErrors(t *testing.T) {
	// A root made a month ago, so that an intermediate made a week ago can
	// have expired.
	rootCert, rootKey := testRoot(t, RootOptions{Now: time.Now().AddDate(0, 0, -30)})
	c1 := testIntermediate(t, rootCert, rootKey, "cluster1")
	c2 := testIntermediate(t, rootCert, rootKey, "cluster2")
	otherRoot, otherRootKey := testRoot(t, RootOptions{})
	foreign := testIntermediate(t, otherRoot, otherRootKey, "cluster3")
	expired, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "old",
		Days: 5, Now: time.Now().AddDate(0, 0, -6)})
	if err != nil {
		t.Fatal(err)
	}
	future, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "new",
		Now: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expiredRoot, expiredRootKey := testRoot(t, RootOptions{Days: 10, Now: time.Now().AddDate(0, 0, -11)})
	leafCert, leafKey := testSelfSignedLeaf(t)
	ca1 := testCA(t, c1)
	csr, workloadKey := testCSR(t, []string{spiffeA}, nil, nil)
	issued, err := ca1.SignCSR(csr, SANs{URIs: []string{spiffeA}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	workloadKeyPEM, err := encodeKey(workloadKey)
	if err != nil {
		t.Fatal(err)
	}

	with := func(f func(*Bundle)) Bundle {
		b := c1
		f(&b)
		return b
	}
	tests := []struct {
		name     string
		bundle   Bundle
		wantErr  error
		wantText string
	}{
		{"empty", Bundle{}, ErrNoCertificate, "ca-cert.pem"},
		{"no key", with(func(b *Bundle) { b.CAKey = nil }), nil, "ca-key.pem: no PEM private key"},
		{"ca cert is a workload cert", with(func(b *Bundle) { b.CACert = issued.CertPEM(); b.CAKey = workloadKeyPEM }), ErrNotCA, "plug in an intermediate CA"},
		{"ca cert is a self-signed leaf", Bundle{CACert: leafCert, CAKey: leafKey}, ErrNotCA, "CA:true"},
		{"key of another cluster", with(func(b *Bundle) { b.CAKey = c2.CAKey }), ErrKeyMismatch, "put the key made with that certificate"},
		{"root of another mesh", with(func(b *Bundle) { b.RootCert = foreign.RootCert; b.CertChain = b.CACert }), ErrChainBroken, "different root"},
		{"chain from another cluster", with(func(b *Bundle) { b.CertChain = c2.CertChain }), ErrChainBroken, "not by the next certificate"},
		{"chain with a foreign intermediate", with(func(b *Bundle) { b.CertChain = append(append([]byte{}, b.CACert...), foreign.CACert...) }), ErrChainBroken, "chain[1]"},
		{"expired intermediate", expired, ErrExpired, "chain[0]"},
		{"intermediate not valid yet", future, ErrNotYetValid, "chain[0]"},
		{"expired root", func() Bundle {
			b, err := NewIntermediate(IntermediateOptions{RootCert: expiredRoot, RootKey: expiredRootKey, Cluster: "x",
				Days: 5, Now: time.Now().AddDate(0, 0, -10)})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}(), ErrExpired, "root"},
		{"root is the intermediate", with(func(b *Bundle) { b.RootCert = b.CACert; b.CertChain = nil }), ErrNotSelfSigned, "root"},
		{"chain ends at a root not in root-cert.pem", with(func(b *Bundle) { b.RootCert = b.CACert }), ErrChainBroken, "chain[1]"},
		{"no root and not self-signed", with(func(b *Bundle) { b.RootCert = nil; b.CertChain = nil }), ErrNotSelfSigned, "put the root certificate in root-cert.pem"},
		{"garbage chain", with(func(b *Bundle) {
			b.CertChain = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}), nil, "cert-chain.pem: certificate 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCA(tt.bundle)
			if err == nil {
				t.Fatal("NewCA succeeded, want an error")
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

func TestNewCALayouts(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	otherRoot, _ := testRoot(t, RootOptions{})
	tests := []struct {
		name      string
		bundle    Bundle
		wantChain int // certificates after the leaf
	}{
		{"istio plug-in layout", b, 2},
		{"chain without the root", Bundle{CACert: b.CACert, CAKey: b.CAKey, RootCert: b.RootCert, CertChain: b.CACert}, 2},
		{"no chain", Bundle{CACert: b.CACert, CAKey: b.CAKey, RootCert: b.RootCert}, 2},
		{"two roots (rotation)", Bundle{CACert: b.CACert, CAKey: b.CAKey, RootCert: append(append([]byte{}, otherRoot...), rootCert...), CertChain: b.CertChain}, 2},
		{"root plugged in as the CA", Bundle{CACert: rootCert, CAKey: rootKey, RootCert: rootCert, CertChain: rootCert}, 1},
		{"istio-ca-secret layout", Bundle{CACert: rootCert, CAKey: rootKey}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := testCA(t, tt.bundle)
			csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
			issued, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(issued.Chain) - 1; got != tt.wantChain {
				t.Errorf("chain after the leaf has %d certificates, want %d", got, tt.wantChain)
			}
			if err := Verify(issued.ChainPEM(), ca.Root(), VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("Verify against the CA's roots: %v", err)
			}
			if !bytes.Contains(ca.Root(), bytes.TrimSpace(rootCert)) {
				t.Error("Root() does not hold the root")
			}
			if diff := cmp.Diff(tt.bundle.CACert, ca.Bundle().CACert); diff != "" {
				t.Errorf("Bundle().CACert (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSignCSR(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	ca := testCA(t, b)
	csr, _ := testCSR(t, []string{spiffeA}, nil, nil)

	issued, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := Inspect(issued.ChainPEM())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("chain has %d certificates, want leaf, intermediate, root", len(infos))
	}
	want := shape{
		Issuer: "CN=Intermediate CA,O=Istio,L=cluster1", KeyAlgorithm: "ECDSA P-256",
		KeyUsage: []string{"digitalSignature", "keyEncipherment"}, ExtKeyUsage: []string{"serverAuth", "clientAuth"},
		URIs: []string{spiffeA},
	}
	got := shapeOf(infos[0])
	got.Days = 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workload certificate (-want +got):\n%s", diff)
	}
	if life := issued.Cert.NotAfter.Sub(issued.Cert.NotBefore); life != time.Hour+clockSkew {
		t.Errorf("lifetime %v, want 1h plus the clock skew", life)
	}
	if diff := cmp.Diff([]string{"CN=Intermediate CA,O=Istio,L=cluster1", "CN=Root CA,O=Istio"},
		[]string{infos[1].Subject, infos[2].Subject}); diff != "" {
		t.Errorf("chain after the leaf (-want +got):\n%s", diff)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := goVerify(t, issued.CertPEM(), b.CertChain, b.RootCert, usage); err != nil {
			t.Errorf("crypto/x509 verify for usage %v: %v", usage, err)
		}
	}
	if err := goVerify(t, issued.CertPEM(), b.CertChain, b.RootCert, x509.ExtKeyUsageCodeSigning); err == nil {
		t.Error("crypto/x509 accepted the workload certificate for code signing")
	}
	if got := issued.Cert.URIs[0].String(); got != spiffeA {
		t.Errorf("URI SAN %q, want %q", got, spiffeA)
	}
	if !issued.Cert.BasicConstraintsValid || issued.Cert.IsCA {
		t.Error("workload certificate is not marked CA:false")
	}
}

func TestSignCSRNames(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	ca := testCA(t, testIntermediate(t, rootCert, rootKey, "cluster1"))
	tests := []struct {
		name        string
		csrURIs     []string
		csrDNS      []string
		csrIPs      []net.IP
		allowed     SANs
		wantURIs    []string
		wantDNS     []string
		wantErr     error
		wantErrText string
	}{
		{name: "csr asks for its identity", csrURIs: []string{spiffeA}, allowed: SANs{URIs: []string{spiffeA}}, wantURIs: []string{spiffeA}},
		{name: "csr asks for nothing: gets the allowed names", allowed: SANs{URIs: []string{spiffeA}, DNSNames: []string{"a.sample.svc"}},
			wantURIs: []string{spiffeA}, wantDNS: []string{"a.sample.svc"}},
		{name: "csr asks for a subset", csrDNS: []string{"a.sample.svc"}, allowed: SANs{URIs: []string{spiffeA}, DNSNames: []string{"a.sample.svc", "b"}},
			wantURIs: []string{spiffeA}, wantDNS: []string{"a.sample.svc", "b"}},
		{name: "csr asks for another identity", csrURIs: []string{spiffeB}, allowed: SANs{URIs: []string{spiffeA}},
			wantErr: ErrNameNotAllowed, wantErrText: spiffeB},
		{name: "csr asks for another dns name", csrDNS: []string{"evil.example"}, allowed: SANs{URIs: []string{spiffeA}},
			wantErr: ErrNameNotAllowed, wantErrText: "evil.example"},
		{name: "csr asks for an ip", csrIPs: []net.IP{net.IPv4(10, 0, 0, 1)}, allowed: SANs{URIs: []string{spiffeA}},
			wantErr: ErrNameNotAllowed, wantErrText: "10.0.0.1"},
		{name: "nothing allowed", wantErr: ErrNameNotAllowed, wantErrText: "no identity"},
		{name: "allowed uri is not spiffe", allowed: SANs{URIs: []string{"https://cluster.local/ns/a/sa/b"}},
			wantErr: ErrNameNotAllowed, wantErrText: "not a SPIFFE id"},
		{name: "allowed spiffe without path", allowed: SANs{URIs: []string{"spiffe://cluster.local"}},
			wantErr: ErrNameNotAllowed, wantErrText: "not a SPIFFE id"},
		{name: "allowed dns name with a space", allowed: SANs{DNSNames: []string{"a b"}},
			wantErr: ErrNameNotAllowed, wantErrText: "not a DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, _ := testCSR(t, tt.csrURIs, tt.csrDNS, tt.csrIPs)
			issued, err := ca.SignCSR(csr, tt.allowed, 0)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantErrText) {
					t.Fatalf("SignCSR: got %v, want %v containing %q", err, tt.wantErr, tt.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info := Describe(issued.Cert)
			if diff := cmp.Diff(tt.wantURIs, info.URIs); diff != "" {
				t.Errorf("URIs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDNS, info.DNSNames); diff != "" {
				t.Errorf("DNS names (-want +got):\n%s", diff)
			}
			if life := info.NotAfter.Sub(info.NotBefore); life != DefaultWorkloadTTL+clockSkew {
				t.Errorf("lifetime %v, want the default %v plus the clock skew", life, DefaultWorkloadTTL)
			}
		})
	}
}

func TestSignCSRBadRequests(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	ca := testCA(t, testIntermediate(t, rootCert, rootKey, "cluster1"))
	good, _ := testCSR(t, []string{spiffeA}, nil, nil)
	block := bytes.Replace(good, []byte("CERTIFICATE REQUEST"), []byte("CERTIFICATE"), 2)
	// Flip a bit of the signature (the DER ends with it): the request still
	// parses, its signature no longer verifies.
	der, _ := pem.Decode(good)
	der.Bytes[len(der.Bytes)-1] ^= 1
	tampered := pem.EncodeToMemory(der)
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, weakKey)
	if err != nil {
		t.Fatal(err)
	}
	weak := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: weakDER})
	tests := []struct {
		name string
		csr  []byte
		want string
	}{
		{"not pem", []byte("hello"), "no PEM CERTIFICATE REQUEST"},
		{"a certificate, not a request", block, "no PEM CERTIFICATE REQUEST"},
		{"bad signature", tampered, "signature does not verify"},
		{"rsa 1024 key", weak, "RSA key of 1024 bits is too weak"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignCSR(tt.csr, SANs{URIs: []string{spiffeA}}, 0)
			if !errors.Is(err, ErrInvalidCSR) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SignCSR: got %v, want ErrInvalidCSR containing %q", err, tt.want)
			}
		})
	}
}

func TestSignServing(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	b := testIntermediate(t, rootCert, rootKey, "cluster1")
	ca := testCA(t, b)
	key, err := newKey(KeyEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	dns := []string{"causeway.istio-system.svc", "istiod.istio-system.svc"}
	issued, err := ca.SignServing(key.Public(), dns, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := Describe(issued.Cert)
	if diff := cmp.Diff([]string{"serverAuth"}, info.ExtKeyUsage); diff != "" {
		t.Errorf("ext key usage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(dns, info.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if err := goVerify(t, issued.CertPEM(), b.CertChain, b.RootCert, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("crypto/x509 verify: %v", err)
	}
	if err := goVerify(t, issued.CertPEM(), b.CertChain, b.RootCert, x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("a serving certificate verified for client auth")
	}
	if _, err := ca.SignServing(key.Public(), nil, 0); !errors.Is(err, ErrNameNotAllowed) {
		t.Errorf("SignServing without names: %v, want ErrNameNotAllowed", err)
	}
	if _, err := ca.SignServing("not a key", dns, 0); err == nil || !strings.Contains(err.Error(), "unsupported public key") {
		t.Errorf("SignServing with a bad key: %v", err)
	}
}

// TestCrossClusterTrust is the reason for one root and an intermediate per
// cluster: a workload of cluster1 is trusted by cluster2, whose bundle has
// the same root, and not by a mesh with another root.
func TestCrossClusterTrust(t *testing.T) {
	rootCert, rootKey := testRoot(t, RootOptions{})
	c1 := testIntermediate(t, rootCert, rootKey, "cluster1")
	c2 := testIntermediate(t, rootCert, rootKey, "cluster2")
	otherRoot, otherKey := testRoot(t, RootOptions{})
	c3 := testIntermediate(t, otherRoot, otherKey, "cluster3")
	ca1, ca2, ca3 := testCA(t, c1), testCA(t, c2), testCA(t, c3)

	csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
	leaf1, err := ca1.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts := VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if err := Verify(leaf1.ChainPEM(), ca2.Root(), opts); err != nil {
		t.Errorf("cluster1's workload against cluster2's root: %v", err)
	}
	if err := goVerify(t, leaf1.CertPEM(), leaf1.ChainPEM(), c2.RootCert, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("crypto/x509: cluster1's workload against cluster2's root: %v", err)
	}
	err = Verify(leaf1.ChainPEM(), ca3.Root(), opts)
	var link *LinkError
	if !errors.Is(err, ErrChainBroken) || !errors.As(err, &link) || link.Index != 2 {
		t.Errorf("against another root: got %v, want ErrChainBroken at chain[2] (the root cluster1 sent)", err)
	}
	if err := goVerify(t, leaf1.CertPEM(), leaf1.ChainPEM(), c3.RootCert, x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("crypto/x509 accepted cluster1's workload against another root")
	}

	// And a real mutual TLS handshake: a client of cluster1 and a server of
	// cluster2, each trusting only its own bundle's root.
	if err := handshake(t, ca1, ca2, spiffeA, spiffeB); err != nil {
		t.Errorf("mTLS cluster1 -> cluster2: %v", err)
	}
	if err := handshake(t, ca1, ca3, spiffeA, spiffeB); err == nil {
		t.Error("mTLS cluster1 -> other mesh succeeded")
	}
}

// handshake runs an mTLS handshake between a client with a certificate for
// clientID from clientCA and a server with one for serverID from serverCA,
// each trusting its own CA's roots and checking the peer's SPIFFE id.
func handshake(t *testing.T, clientCA, serverCA *CA, clientID, serverID string) error {
	t.Helper()
	tlsCert := func(ca *CA, id string) tls.Certificate {
		csr, key := testCSR(t, []string{id}, nil, nil)
		issued, err := ca.SignCSR(csr, SANs{URIs: []string{id}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// Send the leaf and the intermediate: the peer has the root.
		return tls.Certificate{Certificate: [][]byte{issued.Cert.Raw, mustParse(t, issued.Chain[1]).Raw}, PrivateKey: key}
	}
	pool := func(ca *CA) *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(ca.Root())
		return p
	}
	wantPeer := func(id string) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if got := cs.PeerCertificates[0].URIs[0].String(); got != id {
				return fmt.Errorf("peer is %s, want %s", got, id)
			}
			return nil
		}
	}
	clientConn, serverConn := net.Pipe()
	t.Cleanup(func() { _ = clientConn.Close(); _ = serverConn.Close() })
	server := tls.Server(serverConn, &tls.Config{
		Certificates: []tls.Certificate{tlsCert(serverCA, serverID)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool(serverCA),
		MinVersion:   tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return wantPeer(clientID)(cs)
		},
	})
	client := tls.Client(clientConn, &tls.Config{
		Certificates: []tls.Certificate{tlsCert(clientCA, clientID)},
		RootCAs:      pool(clientCA),
		MinVersion:   tls.VersionTLS13,
		// SPIFFE peers are checked by URI SAN, not by host name.
		InsecureSkipVerify: true, //nolint:gosec // VerifyPeerCertificate below verifies the chain.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool(clientCA), Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			return wantPeer(serverID)(tls.ConnectionState{PeerCertificates: certs})
		},
	})
	errc := make(chan error, 1)
	go func() { errc <- server.HandshakeContext(t.Context()) }()
	clientErr := client.HandshakeContext(t.Context())
	if clientErr != nil {
		_ = clientConn.Close()
	}
	serverErr := <-errc
	return errors.Join(clientErr, serverErr)
}

func TestSelfSignedCA(t *testing.T) {
	ca, err := NewSelfSignedCA(RootOptions{Org: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	b := ca.Bundle()
	if len(b.RootCert) != 0 || len(b.CertChain) != 0 {
		t.Error("istio-ca-secret layout has only ca-cert.pem and ca-key.pem")
	}
	again := testCA(t, b) // the Secret loaded back
	if !bytes.Equal(again.Root(), ca.Root()) || !bytes.Equal(ca.Root(), b.CACert) {
		t.Error("the root is not ca-cert.pem")
	}
	csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
	issued, err := again.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(issued.Chain); got != 2 {
		t.Errorf("chain of %d certificates, want leaf and root", got)
	}
	if err := goVerify(t, issued.CertPEM(), nil, ca.Root(), x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("crypto/x509 verify: %v", err)
	}
	if info := Describe(mustParse(t, ca.Root())); info.Subject != "CN=Root CA,O=cluster.local" {
		t.Errorf("root subject %q", info.Subject)
	}
}

// TestSignClampsAndExpires runs in a synctest bubble, whose clock the test
// moves: certificates never outlive the CA, and an expired CA signs nothing.
func TestSignClampsAndExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rootCert, rootKey := testRoot(t, RootOptions{Days: 3})
		b, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "c", Days: 2})
		if err != nil {
			t.Fatal(err)
		}
		ca := testCA(t, b)
		csr, _ := testCSR(t, []string{spiffeA}, nil, nil)
		issued, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, 7*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !issued.Cert.NotAfter.Equal(ca.NotAfter()) {
			t.Errorf("NotAfter %v, want the intermediate's %v", issued.Cert.NotAfter, ca.NotAfter())
		}
		time.Sleep(49 * time.Hour) // the bubble's fake clock: past the intermediate's 2 days
		if _, err := ca.SignCSR(csr, SANs{URIs: []string{spiffeA}}, time.Hour); !errors.Is(err, ErrExpired) {
			t.Errorf("SignCSR with an expired CA: %v, want ErrExpired", err)
		}
		if _, err := NewCA(b); !errors.Is(err, ErrExpired) {
			t.Errorf("NewCA with an expired intermediate: %v, want ErrExpired", err)
		}
	})
}
