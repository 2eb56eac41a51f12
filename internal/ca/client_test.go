package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestClientRequest asks a served authority for certificates through
// Client: what it returns is checked, and a failed call keeps its gRPC
// status.
func TestClientRequest(t *testing.T) {
	m := newFakeMesh(t, nil)
	const id = "spiffe://cluster.local/ns/app/sa/workload"
	tests := []struct {
		name     string
		client   Client
		wantCode codes.Code // OK: issued
		wantErr  string     // an error before any call
	}{
		{name: "config cluster", client: Client{Addr: m.addr, ServerName: "ca.example.com", RootPEM: m.root, Token: tok("c1-app-workload")}},
		{name: "remote cluster", client: Client{Addr: m.addr, ServerName: "ca.example.com", RootPEM: m.root, Token: tok("c2-app-workload"), ClusterID: "cluster2"}},
		{name: "token of another cluster", client: Client{Addr: m.addr, ServerName: "ca.example.com", RootPEM: m.root, Token: tok("c2-app-workload")},
			wantCode: codes.Unauthenticated},
		{name: "no token", client: Client{Addr: m.addr, ServerName: "ca.example.com", RootPEM: m.root}, wantCode: codes.Unauthenticated},
		{name: "name the CA's certificate lacks", client: Client{Addr: m.addr, ServerName: "other.example.com", RootPEM: m.root, Token: tok("c1-app-workload")},
			wantCode: codes.Unavailable},
		{name: "root that is not PEM", client: Client{Addr: m.addr, RootPEM: []byte("not PEM"), Token: tok("c1-app-workload")},
			wantErr: "holds no PEM certificate"},
		{name: "address without a port", client: Client{Addr: "127.0.0.1", RootPEM: m.root}, wantErr: "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issued, err := tt.client.Request(t.Context(), id, time.Hour)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			switch {
			case tt.wantCode != codes.OK:
				ce, ok := errors.AsType[*CallError](err)
				if !ok {
					t.Fatalf("err = %v (%T), want a *CallError", err, err)
				}
				if got := status.Code(ce.Err); got != tt.wantCode {
					t.Fatalf("code %v (%v), want %v", got, ce.Err, tt.wantCode)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got := issued.Leaf.URIs; len(got) != 1 || got[0].String() != id {
				t.Errorf("leaf names %v, want %s", got, id)
			}
			if err := pki.Verify(issued.Chain, m.root, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("chain against the mesh root: %v", err)
			}
			if !bytes.Equal(issued.Root, m.root) {
				t.Errorf("root returned is not the mesh root")
			}
			if got := issued.Leaf.NotAfter.Sub(issued.Leaf.NotBefore); got > time.Hour+5*time.Minute {
				t.Errorf("asked for 1h, got a certificate valid for %v", got)
			}
			c, err := issued.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			if pk, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok || !pk.Equal(issued.Key) || len(c.Certificate) < 2 {
				t.Errorf("TLSCertificate: %d certificates (want the leaf and its CA), key %T of the request: %v", len(c.Certificate), c.PrivateKey, ok && pk.Equal(issued.Key))
			}
		})
	}
}

// TestCheckResponse refuses answers that are not for the request: another
// key, another identity, a chain to another root, a chain without a root.
func TestCheckResponse(t *testing.T) {
	m := newFakeMesh(t, nil)
	const id = "spiffe://cluster.local/ns/app/sa/workload"
	key, csr, err := NewCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := request(t.Context(), dialCA(t, m.addr, m.root, "ca.example.com"), tok("c1-app-workload"), "", csr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certs := resp.GetCertChain()
	foreignRoot := append(append([]string{}, certs[:len(certs)-1]...), string(newTestRoot(t).cert))
	tests := []struct {
		name    string
		resp    *pb.IstioCertificateResponse
		key     *ecdsa.PrivateKey
		id      string
		wantErr string
	}{
		{name: "as asked", resp: resp, key: key, id: id},
		{name: "another key", resp: resp, key: other, id: id, wantErr: "not for the key of the request"},
		{name: "another identity", resp: resp, key: key, id: "spiffe://cluster.local/ns/app/sa/admin", wantErr: "the certificate names"},
		{name: "another root", resp: &pb.IstioCertificateResponse{CertChain: foreignRoot}, key: key, id: id, wantErr: "does not verify"},
		{name: "no root", resp: &pb.IstioCertificateResponse{CertChain: certs[:1]}, key: key, id: id, wantErr: "a chain of 1 certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, root, leaf, err := CheckResponse(tt.resp, tt.key, tt.id)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if leaf == nil || len(chain) == 0 || string(root) != certs[len(certs)-1] {
				t.Fatalf("leaf %v, chain %d bytes, root as sent %v", leaf, len(chain), string(root) == certs[len(certs)-1])
			}
		})
	}
}
