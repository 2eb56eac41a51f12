package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func TestParseSPIFFE(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ns, sa string
		ok     bool
	}{
		{"spiffe://cluster.local/ns/sample/sa/sleep", "sample", "sleep", true},
		{"spiffe://other.domain/ns/prod/sa/db", "prod", "db", true},
		{"spiffe://cluster.local/ns/sample/sa/", "", "", false},
		{"spiffe://cluster.local/ns//sa/sleep", "", "", false},
		{"spiffe://cluster.local/ns/sample/sa/sleep/extra", "", "", false},
		{"spiffe://cluster.local/sa/sleep/ns/sample", "", "", false},
		{"https://cluster.local/ns/sample/sa/sleep", "", "", false},
		{"spiffe:///ns/sample/sa/sleep", "", "", false},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		ns, sa, ok := parseSPIFFE(u)
		if ns != tc.ns || sa != tc.sa || ok != tc.ok {
			t.Errorf("parseSPIFFE(%s) = %q, %q, %v; want %q, %q, %v", tc.in, ns, sa, ok, tc.ns, tc.sa, tc.ok)
		}
	}
}

// tlsPeer is the context of a call over TLS whose client presented leaf,
// verified (or not).
func tlsPeer(leaf *x509.Certificate, verified bool) context.Context {
	st := tls.ConnectionState{}
	if leaf != nil {
		st.PeerCertificates = []*x509.Certificate{leaf}
		if verified {
			st.VerifiedChains = [][]*x509.Certificate{{leaf}}
		}
	}
	return peer.NewContext(context.Background(), &peer.Peer{
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, AuthInfo: credentials.TLSInfo{State: st},
	})
}

// TestPeerCertificate: a verified workload certificate names its service
// account; one without a SPIFFE id, or not verified, is refused; none
// leaves the decision to the token.
func TestPeerCertificate(t *testing.T) {
	id, _ := url.Parse("spiffe://cluster.local/ns/sample/sa/sleep")
	workload := &x509.Certificate{URIs: []*url.URL{id}}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		present bool
		reason  string
		caller  Caller
	}{
		{"no TLS", context.Background(), false, "", Caller{}},
		{"no certificate", tlsPeer(nil, false), false, "", Caller{}},
		{"workload certificate", tlsPeer(workload, true), true, "", Caller{Source: SourceCertificate, Namespace: "sample", ServiceAccount: "sleep"}},
		{"no SPIFFE id", tlsPeer(&x509.Certificate{}, true), true, ReasonBadCertificate, Caller{}},
		{"not verified", tlsPeer(workload, false), true, ReasonBadCertificate, Caller{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, present, err := peerCertificate(tc.ctx)
			if present != tc.present || c != tc.caller {
				t.Errorf("peerCertificate = %+v, %v; want %+v, %v", c, present, tc.caller, tc.present)
			}
			var ae *AuthError
			switch {
			case tc.reason == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.reason != "" && (!errors.As(err, &ae) || ae.Reason != tc.reason || status.Code(err) != codes.Unauthenticated):
				t.Errorf("error %v, want reason %s and Unauthenticated", err, tc.reason)
			}
		})
	}
}
