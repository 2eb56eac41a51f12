package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// Client asks a CA (IstioCertificateService/CreateCertificate, the control
// plane's secure port 15012) for workload certificates, the way Istio's
// agent does: a new ECDSA P-256 key, a CSR whose only name is the SPIFFE
// id, and a service-account token as "authorization: Bearer".
type Client struct {
	// Addr is the CA's HOST:PORT.
	Addr string
	// ServerName is the name the CA's certificate must carry; empty means
	// the host of Addr.
	ServerName string
	// RootPEM verifies the CA's certificate; nil means the system's roots.
	RootPEM []byte
	// Token is the service-account token (audience istio-ca) sent as
	// "authorization: Bearer"; empty sends none.
	Token string
	// ClusterID, if set, is sent as ClusterIDMetadataKey: the cluster the
	// token comes from (default on the CA's side: its config cluster).
	ClusterID string
}

// Issued is a certificate a CA issued and the key it was asked for.
type Issued struct {
	Key *ecdsa.PrivateKey
	// Chain is the certificate then the CA's intermediates, PEM; Root the
	// root they lead to, PEM (the last certificate of the answer).
	Chain, Root []byte
	Leaf        *x509.Certificate
}

// KeyPEM is Key as a PKCS#8 "PRIVATE KEY" PEM block.
func (i *Issued) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(i.Key)
	if err != nil {
		return nil, fmt.Errorf("encode the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// TLSCertificate is the certificate, its intermediates and the key, for a
// tls.Config.
func (i *Issued) TLSCertificate() (tls.Certificate, error) {
	keyPEM, err := i.KeyPEM()
	if err != nil {
		return tls.Certificate{}, err
	}
	c, err := tls.X509KeyPair(i.Chain, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the issued certificate: %w", err)
	}
	return c, nil
}

// CallError is a CreateCertificate call that failed (the CA unreachable,
// or its refusal). Err is the gRPC status error as the call returned it,
// for status.Convert.
type CallError struct {
	Addr, ServerName string
	Err              error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("CreateCertificate at %s (server name %s): %v", e.Addr, e.ServerName, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// ResponseError is an answer of the CA that Request refused: a chain that
// does not verify, or a certificate for another key or identity.
type ResponseError struct {
	Addr string
	Err  error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("the CA at %s answered: %v", e.Addr, e.Err)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// Request asks the CA for a certificate of the SPIFFE id id (such as
// model.SPIFFEID(domain, ns, sa)) valid for ttl (the CA may grant less),
// with a new key, and checks the answer (CheckResponse). opts are passed to
// the call (grpc.WaitForReady, say). A failed call is a *CallError, a
// refused answer a *ResponseError.
func (c *Client) Request(ctx context.Context, id string, ttl time.Duration, opts ...grpc.CallOption) (*Issued, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	key, csr, err := NewCSR(id)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+c.Addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		return nil, fmt.Errorf("CA address %s: %w", c.Addr, err)
	}
	defer func() { _ = conn.Close() }()
	var md []string
	if c.Token != "" {
		md = append(md, "authorization", "Bearer "+c.Token)
	}
	if c.ClusterID != "" {
		md = append(md, ClusterIDMetadataKey, c.ClusterID)
	}
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(
		metadata.AppendToOutgoingContext(ctx, md...),
		&pb.IstioCertificateRequest{Csr: string(csr), ValidityDuration: int64(ttl / time.Second)}, opts...)
	if err != nil {
		return nil, &CallError{Addr: c.Addr, ServerName: tlsCfg.ServerName, Err: err}
	}
	chain, root, leaf, err := CheckResponse(resp, key, id)
	if err != nil {
		return nil, &ResponseError{Addr: c.Addr, Err: err}
	}
	return &Issued{Key: key, Chain: chain, Root: root, Leaf: leaf}, nil
}

// tlsConfig verifies the CA against RootPEM, or the system's roots, for
// ServerName or the host of Addr.
func (c *Client) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return nil, fmt.Errorf("CA address %q: want HOST:PORT, such as istiod.istio-system.svc:15012: %w", c.Addr, err)
		}
		cfg.ServerName = host
	}
	if c.RootPEM == nil {
		return cfg, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.RootPEM) {
		return nil, fmt.Errorf("the CA's root holds no PEM certificate: give root-cert.pem of ConfigMap %s", RootConfigMapName)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// NewCSR makes a P-256 key and a PEM CSR naming only the SPIFFE id id.
func NewCSR(id string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate a key: %w", err)
	}
	u, err := url.Parse(id)
	if err != nil {
		return nil, nil, fmt.Errorf("SPIFFE id %q: %w", id, err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the CSR: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// CheckResponse checks a CA's answer: a certificate for key and for the
// SPIFFE id id alone, allowing client authentication, chained to the root
// that comes last. It returns the chain without the root, the root, and the
// certificate.
func CheckResponse(resp *pb.IstioCertificateResponse, key *ecdsa.PrivateKey, id string) (chain, root []byte, leaf *x509.Certificate, err error) {
	certs := resp.GetCertChain()
	if len(certs) < 2 {
		return nil, nil, nil, fmt.Errorf("a chain of %d certificates; want the certificate, the CA's, and the root last", len(certs))
	}
	for _, c := range certs[:len(certs)-1] {
		chain = append(chain, c...)
	}
	root = []byte(certs[len(certs)-1])
	if err := pki.Verify(chain, root, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("the chain does not verify: %w", err)
	}
	block, _ := pem.Decode([]byte(certs[0]))
	if block == nil {
		return nil, nil, nil, errors.New("the certificate is not PEM")
	}
	leaf, err = x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the certificate: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, nil, nil, errors.New("the certificate is not for the key of the request")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		return nil, nil, nil, fmt.Errorf("the certificate names %v, not %s", leaf.URIs, id)
	}
	return chain, root, leaf, nil
}
