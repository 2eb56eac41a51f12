package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// CA signs workload certificates (from CSRs) and the control plane's own
// serving certificates, with a plug-in CA (Istio's `cacerts`) or a
// self-signed one. It does not change after it is made and is safe for
// concurrent use.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	// chain holds, one PEM certificate each, what follows a new leaf in
	// its chain: the CA's certificate, the intermediates, the root.
	chain [][]byte
	// notBefore and notAfter bound the validity of the whole chain.
	notBefore, notAfter time.Time
	rootsPEM            []byte
	bundle              Bundle
}

// Issued is a certificate the CA signed.
type Issued struct {
	// Cert is the new certificate, parsed.
	Cert *x509.Certificate
	// Chain holds one PEM certificate per element: the new certificate,
	// the CA's certificate and intermediates, the root last; the order of
	// IstioCertificateResponse.cert_chain.
	Chain [][]byte
}

// CertPEM returns the new certificate alone, PEM.
func (i *Issued) CertPEM() []byte { return i.Chain[0] }

// ChainPEM returns the whole chain, leaf first, as one PEM bundle.
func (i *Issued) ChainPEM() []byte { return bytes.Join(i.Chain, nil) }

// SANs are the names a certificate may carry.
type SANs struct {
	// URIs are SPIFFE ids: spiffe://TRUST_DOMAIN/ns/NS/sa/SA.
	URIs []string
	// DNSNames are DNS names.
	DNSNames []string
}

// NewCA builds a CA from a bundle in Istio's plug-in layout and checks it:
// ca-cert.pem is a CA certificate whose key is ca-key.pem, and it chains
// through cert-chain.pem to a self-signed root of root-cert.pem, every link
// valid now. cert-chain.pem may or may not repeat ca-cert.pem and the root.
// With root-cert.pem empty (Istio's istio-ca-secret layout) ca-cert.pem must
// be a self-signed root. root-cert.pem may hold several roots (during a
// rotation): all are published by Root, one must anchor the chain.
func NewCA(b Bundle) (*CA, error) {
	caCerts, err := parseCerts(b.CACert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileCACert, err)
	}
	cert := caCerts[0]
	key, err := parseKey(b.CAKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileCAKey, err)
	}
	if err := checkCA(cert); err != nil {
		return nil, fmt.Errorf("%s %q: %w; plug in an intermediate CA made for the cluster", FileCACert, describe(cert), err)
	}
	if !keyMatches(cert.PublicKey, key) {
		return nil, fmt.Errorf("%s and %s: %w: put the key made with that certificate in %s",
			FileCACert, FileCAKey, ErrKeyMismatch, FileCAKey)
	}
	var roots []*x509.Certificate
	if len(bytes.TrimSpace(b.RootCert)) == 0 {
		if !selfSigned(cert) {
			return nil, fmt.Errorf("%s is empty and %s %q is not self-signed: %w; put the root certificate in %s",
				FileRootCert, FileCACert, describe(cert), ErrNotSelfSigned, FileRootCert)
		}
		roots = []*x509.Certificate{cert}
	} else if roots, err = parseCerts(b.RootCert); err != nil {
		return nil, fmt.Errorf("%s: %w", FileRootCert, err)
	}
	path := []*x509.Certificate{cert}
	extra := caCerts[1:]
	if len(bytes.TrimSpace(b.CertChain)) > 0 {
		chainCerts, err := parseCerts(b.CertChain)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FileCertChain, err)
		}
		extra = append(extra, chainCerts...)
	}
	for _, c := range extra {
		if c.Equal(cert) || slices.ContainsFunc(roots, c.Equal) || slices.ContainsFunc(path, c.Equal) {
			continue
		}
		path = append(path, c)
	}
	now := time.Now()
	if err := verifyChain(path, roots, now, nil); err != nil {
		return nil, fmt.Errorf("CA bundle (%s, %s, %s): %w", FileCACert, FileCertChain, FileRootCert, err)
	}
	anchor, _ := findAnchor(path[len(path)-1], roots)
	ca := &CA{
		cert:      cert,
		key:       key,
		notBefore: anchor.NotBefore,
		notAfter:  anchor.NotAfter,
		bundle: Bundle{
			CACert:    bytes.Clone(b.CACert),
			CAKey:     bytes.Clone(b.CAKey),
			RootCert:  bytes.Clone(b.RootCert),
			CertChain: bytes.Clone(b.CertChain),
		},
	}
	for _, c := range path {
		ca.notBefore = latest(ca.notBefore, c.NotBefore)
		ca.notAfter = earliest(ca.notAfter, c.NotAfter)
		ca.chain = append(ca.chain, encodeCert(c.Raw))
	}
	if !anchor.Equal(cert) {
		ca.chain = append(ca.chain, encodeCert(anchor.Raw))
	}
	for _, r := range roots {
		ca.rootsPEM = append(ca.rootsPEM, encodeCert(r.Raw)...)
	}
	return ca, nil
}

// NewSelfSignedCA makes a new self-signed root and a CA that signs with it:
// what the control plane does when no `cacerts` Secret exists. Bundle
// returns it in Istio's istio-ca-secret layout (ca-cert.pem and ca-key.pem
// only) so that it can be stored and loaded again with NewCA. Istio names
// the root's O after the trust domain; pass it as opts.Org.
func NewSelfSignedCA(opts RootOptions) (*CA, error) {
	certPEM, keyPEM, err := NewRoot(opts)
	if err != nil {
		return nil, err
	}
	return NewCA(Bundle{CACert: certPEM, CAKey: keyPEM})
}

// Root returns the PEM roots that verify what the CA signs (the content of
// Istio's istio-ca-root-cert ConfigMap).
func (ca *CA) Root() []byte { return bytes.Clone(ca.rootsPEM) }

// Bundle returns the bundle the CA was built from.
func (ca *CA) Bundle() Bundle {
	return Bundle{
		CACert:    bytes.Clone(ca.bundle.CACert),
		CAKey:     bytes.Clone(ca.bundle.CAKey),
		RootCert:  bytes.Clone(ca.bundle.RootCert),
		CertChain: bytes.Clone(ca.bundle.CertChain),
	}
}

// NotAfter returns when the CA's chain stops being valid; certificates it
// signs never outlive it.
func (ca *CA) NotAfter() time.Time { return ca.notAfter }

// SignCSR signs a workload certificate for the key of a PEM CSR. The
// certificate carries exactly the allowed names (the identity the caller
// proved, such as spiffe://TD/ns/NS/sa/SA), key usage digitalSignature and
// keyEncipherment, extended key usage serverAuth and clientAuth, CA:false
// and an empty subject, as Istio's workload certificates. The CSR may ask
// for a subset of the allowed names; asking for any other name fails with
// ErrNameNotAllowed. A ttl of 0 means DefaultWorkloadTTL; the certificate
// never outlives the CA's chain.
func (ca *CA) SignCSR(csrPEM []byte, allowed SANs, ttl time.Duration) (*Issued, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	uris, err := parseSPIFFE(allowed.URIs)
	if err != nil {
		return nil, err
	}
	if err := checkDNSNames(allowed.DNSNames); err != nil {
		return nil, err
	}
	if len(uris) == 0 && len(allowed.DNSNames) == 0 {
		return nil, fmt.Errorf("%w: no identity to certify; give a SPIFFE URI or a DNS name", ErrNameNotAllowed)
	}
	if err := checkRequested(csr, allowed); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = DefaultWorkloadTTL
	}
	return ca.issueLeaf(csr.PublicKey, uris, allowed.DNSNames, ttl,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

// SignServing signs a serving certificate for the control plane's own
// servers (xDS on :15012, webhooks) for pub with the given DNS names:
// extended key usage serverAuth, CA:false. A ttl of 0 means
// DefaultServingTTL; the certificate never outlives the CA's chain.
func (ca *CA) SignServing(pub crypto.PublicKey, dnsNames []string, ttl time.Duration) (*Issued, error) {
	if len(dnsNames) == 0 {
		return nil, fmt.Errorf("%w: a serving certificate needs at least one DNS name", ErrNameNotAllowed)
	}
	if err := checkDNSNames(dnsNames); err != nil {
		return nil, err
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = DefaultServingTTL
	}
	return ca.issueLeaf(pub, nil, dnsNames, ttl, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
}

func (ca *CA) issueLeaf(pub crypto.PublicKey, uris []*url.URL, dnsNames []string, ttl time.Duration, usages []x509.ExtKeyUsage) (*Issued, error) {
	now := time.Now()
	if now.Before(ca.notBefore) {
		return nil, fmt.Errorf("CA %q: %w: its chain is valid from %s", describe(ca.cert), ErrNotYetValid,
			ca.notBefore.UTC().Format(time.RFC3339))
	}
	if now.After(ca.notAfter) {
		return nil, fmt.Errorf("CA %q: %w: its chain expired at %s; plug in a new CA bundle", describe(ca.cert), ErrExpired,
			ca.notAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		URIs:                  uris,
		DNSNames:              slices.Clone(dnsNames),
		NotBefore:             latest(now.Add(-clockSkew), ca.notBefore),
		NotAfter:              earliest(now.Add(ttl), ca.notAfter),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           usages,
	}
	der, err := sign(tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the certificate just signed: %w", err)
	}
	chain := make([][]byte, 0, 1+len(ca.chain))
	chain = append(chain, encodeCert(der))
	chain = append(chain, ca.chain...)
	return &Issued{Cert: leaf, Chain: chain}, nil
}

// parseCSR reads a PEM certificate signing request and checks its signature
// and key.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE REQUEST block", ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not verify with its key: %w", ErrInvalidCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	return csr, nil
}

// checkRequested fails when the CSR asks for a name not allowed.
func checkRequested(csr *x509.CertificateRequest, allowed SANs) error {
	for _, u := range csr.URIs {
		if !slices.Contains(allowed.URIs, u.String()) {
			return fmt.Errorf("%w: the CSR asks for URI %q; the caller may have only %v", ErrNameNotAllowed, u, allowed.URIs)
		}
	}
	for _, d := range csr.DNSNames {
		if !slices.Contains(allowed.DNSNames, d) {
			return fmt.Errorf("%w: the CSR asks for DNS name %q; the caller may have only %v", ErrNameNotAllowed, d, allowed.DNSNames)
		}
	}
	if len(csr.IPAddresses) > 0 {
		return fmt.Errorf("%w: the CSR asks for IP address %s; workload certificates carry no IP SANs", ErrNameNotAllowed, csr.IPAddresses[0])
	}
	if len(csr.EmailAddresses) > 0 {
		return fmt.Errorf("%w: the CSR asks for email %q; workload certificates carry no email SANs", ErrNameNotAllowed, csr.EmailAddresses[0])
	}
	return nil
}

// parseSPIFFE parses SPIFFE ids: scheme spiffe, a trust domain, a path, and
// nothing else.
func parseSPIFFE(ids []string) ([]*url.URL, error) {
	out := make([]*url.URL, 0, len(ids))
	for _, id := range ids {
		u, err := url.Parse(id)
		if err != nil {
			return nil, fmt.Errorf("%w: SPIFFE id %q: %w", ErrNameNotAllowed, id, err)
		}
		if u.Scheme != "spiffe" || u.Host == "" || u.Path == "" || u.Path == "/" || u.User != nil ||
			u.Port() != "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%w: %q is not a SPIFFE id; want spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT",
				ErrNameNotAllowed, id)
		}
		out = append(out, u)
	}
	return out, nil
}

// checkDNSNames rejects empty names and names with characters no DNS name has.
func checkDNSNames(names []string) error {
	for _, n := range names {
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return !isDNSRune(r) }) {
			return fmt.Errorf("%w: %q is not a DNS name", ErrNameNotAllowed, n)
		}
	}
	return nil
}

// isDNSRune reports whether r may appear in a DNS name or a wildcard.
func isDNSRune(r rune) bool {
	return r == '.' || r == '-' || r == '*' || r == '_' ||
		('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
