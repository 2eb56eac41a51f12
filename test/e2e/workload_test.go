package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/causeway-mesh/causeway/internal/ca"
)

// The names the control plane's serving certificate carries: the one
// sidecars of a primary cluster dial it by (istiod.NAMESPACE.svc), and the
// one sidecars of a remote cluster dial (their istiod-remote Service, whose
// address is the primary's east-west gateway).
const (
	caServerName       = "istiod.istio-system.svc"
	remoteCAServerName = "istiod-remote.istio-system.svc"
)

// workloadIdentity is what a sidecar's agent needs to get its certificate:
// where the CA is and the name its certificate must cover, the mesh root
// that certificate chains to, and a service-account token of the pod's
// account with the id of the cluster that issued it.
type workloadIdentity struct {
	CAAddr string `json:"caAddr"`
	// CAServerName is the name the CA's certificate must cover, also sent
	// as SNI; empty means caServerName.
	CAServerName string `json:"caServerName,omitempty"`
	RootCertFile string `json:"rootCertFile"`
	TokenFile    string `json:"tokenFile"`
	// ClusterID is the cluster of the token, sent as "clusterid" metadata
	// (the agent's CLUSTER_ID), so that a primary's CA asks that cluster
	// to review it.
	ClusterID      string `json:"clusterID,omitempty"`
	TrustDomain    string `json:"trustDomain"`
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

// spiffeID is the identity the certificate must carry.
func (w workloadIdentity) spiffeID() string {
	return "spiffe://" + w.TrustDomain + "/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

// workloadCert is a workload certificate with its key and the mesh roots.
type workloadCert struct {
	cert  tls.Certificate
	roots *x509.CertPool
	id    string
}

// fetch asks the CA for a certificate as Istio's agent does (ca.Client): a
// new P-256 key, a CSR naming only the SPIFFE id, the token as
// "authorization: Bearer" and the token's cluster as "clusterid" metadata,
// over TLS verified against the mesh root for the CA's server name. It retries until ctx
// ends, since the CA may still be loading its plug-in certificates. The
// certificate must name the SPIFFE id and chain to the mesh root for
// client authentication.
func (w workloadIdentity) fetch(ctx context.Context) (*workloadCert, error) {
	rootPEM, err := os.ReadFile(w.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("mesh root: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", w.RootCertFile)
	}
	token, err := os.ReadFile(w.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("service-account token: %w", err)
	}
	serverName := cmp.Or(w.CAServerName, caServerName)
	client := &ca.Client{Addr: w.CAAddr, ServerName: serverName, RootPEM: rootPEM, Token: strings.TrimSpace(string(token)), ClusterID: w.ClusterID}
	var issued *ca.Issued
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		issued, err = client.Request(callCtx, w.spiffeID(), time.Hour, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			break
		} else if _, ok := errors.AsType[*ca.CallError](err); !ok {
			return nil, fmt.Errorf("certificate for %s of cluster %q: %w", w.spiffeID(), w.ClusterID, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("certificate for %s of cluster %q: %w", w.spiffeID(), w.ClusterID, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Request checked the chain against the root the CA sent; the
	// workload trusts the mesh root of its file.
	cert, err := issued.TLSCertificate()
	if err != nil {
		return nil, err
	}
	chainCerts := make([]*x509.Certificate, 0, len(cert.Certificate))
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("the workload certificate's chain: %w", err)
		}
		chainCerts = append(chainCerts, c)
	}
	if err := verifyPeer(chainCerts, roots, x509.ExtKeyUsageClientAuth, nil); err != nil {
		return nil, fmt.Errorf("the workload certificate from %s: %w", w.CAAddr, err)
	}
	leaf := issued.Leaf
	cert.Leaf = leaf
	return &workloadCert{cert: cert, roots: roots, id: w.spiffeID()}, nil
}

// clientTLS is a sidecar outbound's TLS towards ep, as its
// UpstreamTlsContext says: SNI and ALPN from CDS, the workload certificate,
// and the server's chain verified against the mesh root with one of the
// CDS SAN matchers' SPIFFE ids (any, when there are none).
func (c *workloadCert) clientTLS(t *upstreamTLS) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		ServerName:   t.SNI,
		NextProtos:   t.ALPN,
		Certificates: []tls.Certificate{c.cert},
		// The SNI is a routing key for the gateway, not a name in the
		// server's certificate: verification is VerifyConnection's, as
		// Envoy verifies SANs rather than the SNI.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs.PeerCertificates, c.roots, x509.ExtKeyUsageServerAuth, t.SANs)
		},
	}
}

// verifyPeer verifies a peer's chain against roots for usage and, when
// sans is not empty, that the leaf carries one of them as a URI SAN.
func verifyPeer(certs []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, sans []string) error {
	if len(certs) == 0 {
		return errors.New("the peer sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("the peer's certificate does not chain to the mesh root: %w", err)
	}
	if len(sans) == 0 {
		return nil
	}
	for _, u := range certs[0].URIs {
		if slices.Contains(sans, u.String()) {
			return nil
		}
	}
	return fmt.Errorf("the peer's certificate names %v, none of the SANs %v that CDS allows", certs[0].URIs, sans)
}

// peerID is the SPIFFE id (first URI SAN) of a verified peer.
func peerID(certs []*x509.Certificate) string {
	if len(certs) == 0 || len(certs[0].URIs) == 0 {
		return ""
	}
	return certs[0].URIs[0].String()
}
