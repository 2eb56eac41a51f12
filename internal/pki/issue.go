package pki

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Istio's names for the keys of the `cacerts` Secret (the plug-in CA) and of
// the files Makefile.selfsigned.mk writes per cluster.
const (
	FileCACert    = "ca-cert.pem"
	FileCAKey     = "ca-key.pem"
	FileRootCert  = "root-cert.pem"
	FileCertChain = "cert-chain.pem"
	// FileRootKey is the root's key next to root-cert.pem in the directory
	// `causeway certs root` writes; it never goes into a cluster.
	FileRootKey = "root-key.pem"
)

// Defaults, those of Istio's tools/certs Makefiles and of its CA.
const (
	DefaultOrg              = "Istio"
	DefaultRootCommonName   = "Root CA"
	DefaultRootDays         = 3650
	DefaultIntermediateCN   = "Intermediate CA"
	DefaultIntermediateDays = 730
	DefaultIntermediateDNS  = "istiod.istio-system.svc"
	DefaultWorkloadTTL      = 24 * time.Hour
	DefaultServingTTL       = 24 * time.Hour
)

const (
	// maxDays bounds --days to catch typos.
	maxDays = 100 * 365
	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind accepts a certificate made just now (Istio's CA does the same).
	clockSkew  = 2 * time.Minute
	serialBits = 128
)

// RootOptions describe a new self-signed root CA.
type RootOptions struct {
	// Org is the subject's O; default "Istio".
	Org string
	// CommonName is the subject's CN; default "Root CA".
	CommonName string
	// Days of validity; default 3650.
	Days int
	// KeyType of the new key; default KeyEC (P-256).
	KeyType KeyType
	// RSABits is 2048 (default) or 4096, for KeyRSA only.
	RSABits int
	// Now is when the certificate is made: it is valid from Now minus a
	// small clock skew to Now plus Days. Zero means time.Now().
	Now time.Time
}

// NewRoot makes a self-signed root CA as Istio's Makefile.selfsigned.mk
// does (O=Istio, CN=Root CA, CA:true without a path length). It returns the
// certificate and its PKCS #8 private key, both PEM.
func NewRoot(opts RootOptions) (certPEM, keyPEM []byte, err error) {
	opts.Org = cmp.Or(opts.Org, DefaultOrg)
	opts.CommonName = cmp.Or(opts.CommonName, DefaultRootCommonName)
	days, err := checkDays(opts.Days, DefaultRootDays)
	if err != nil {
		return nil, nil, err
	}
	key, err := newKey(opts.KeyType, opts.RSABits)
	if err != nil {
		return nil, nil, err
	}
	now := nowOr(opts.Now)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{opts.Org}, CommonName: opts.CommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(0, 0, days),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            -1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, nil, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// IntermediateOptions describe a cluster's intermediate CA.
type IntermediateOptions struct {
	// RootCert and RootKey (PEM) sign the intermediate. The root must be a
	// self-signed CA, valid now, and the key must be its key.
	RootCert, RootKey []byte
	// Cluster is the cluster's id; it goes in the subject's L as Istio's
	// Makefile puts it. Required.
	Cluster string
	// Org is the subject's O; default "Istio".
	Org string
	// CommonName is the subject's CN; default "Intermediate CA".
	CommonName string
	// DNSNames are the certificate's DNS SANs; default Istio's
	// istiod.istio-system.svc.
	DNSNames []string
	// Days of validity; default 730. The intermediate may not outlive the
	// root.
	Days int
	// KeyType of the new key; default KeyEC (P-256).
	KeyType KeyType
	// RSABits is 2048 (default) or 4096, for KeyRSA only.
	RSABits int
	// Now is when the certificate is made; zero means time.Now().
	Now time.Time
}

// Bundle is a CA in Istio's plug-in layout, the data of the `cacerts` Secret:
// the CA's certificate and key, the root, and the chain from the CA's
// certificate up to the root (both included). Istio's self-signed CA
// (Secret istio-ca-secret) has only CACert and CAKey, the CA being the root.
type Bundle struct {
	CACert    []byte
	CAKey     []byte
	RootCert  []byte
	CertChain []byte
}

// Data returns the bundle keyed by Istio's file names, as a Secret holds it.
func (b Bundle) Data() map[string][]byte {
	return map[string][]byte{
		FileCACert:    b.CACert,
		FileCAKey:     b.CAKey,
		FileRootCert:  b.RootCert,
		FileCertChain: b.CertChain,
	}
}

// BundleFromData reads a bundle from a Secret's data (or files) keyed by
// Istio's names; missing keys stay empty.
func BundleFromData(data map[string][]byte) Bundle {
	return Bundle{
		CACert:    data[FileCACert],
		CAKey:     data[FileCAKey],
		RootCert:  data[FileRootCert],
		CertChain: data[FileCertChain],
	}
}

// NewIntermediate makes a cluster's intermediate CA signed by a root, in
// Istio's plug-in layout: subject O=Istio, CN=Intermediate CA, L=<cluster>,
// CA:true with path length 0 (it signs workload and serving certificates,
// never another CA), and cert-chain.pem holding the intermediate then the root.
func NewIntermediate(opts IntermediateOptions) (Bundle, error) {
	if opts.Cluster == "" {
		return Bundle{}, errors.New("intermediate CA: the cluster id is empty; name the cluster the CA is for")
	}
	opts.Org = cmp.Or(opts.Org, DefaultOrg)
	opts.CommonName = cmp.Or(opts.CommonName, DefaultIntermediateCN)
	if opts.DNSNames == nil {
		opts.DNSNames = []string{DefaultIntermediateDNS}
	}
	days, err := checkDays(opts.Days, DefaultIntermediateDays)
	if err != nil {
		return Bundle{}, err
	}
	now := nowOr(opts.Now)
	root, rootKey, err := loadRoot(opts.RootCert, opts.RootKey, now)
	if err != nil {
		return Bundle{}, err
	}
	notAfter := now.AddDate(0, 0, days)
	if notAfter.After(root.NotAfter) {
		left := int(root.NotAfter.Sub(now) / (24 * time.Hour))
		return Bundle{}, fmt.Errorf("intermediate CA for %d days would outlive the root, which expires at %s: ask for at most %d days, or make a new root",
			days, root.NotAfter.UTC().Format(time.RFC3339), left)
	}
	key, err := newKey(opts.KeyType, opts.RSABits)
	if err != nil {
		return Bundle{}, err
	}
	tmpl := &x509.Certificate{
		// O, CN, L in this order, as Istio's intermediate.conf writes them
		// (crypto/x509 would order the named fields L, O, CN).
		Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: opts.Org},       // O
			{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: opts.CommonName}, // CN
			{Type: asn1.ObjectIdentifier{2, 5, 4, 7}, Value: opts.Cluster},    // L
		}},
		DNSNames:              opts.DNSNames,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0, // signs leaves, never another CA
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := sign(tmpl, root, key.Public(), rootKey)
	if err != nil {
		return Bundle{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Bundle{}, err
	}
	certPEM := encodeCert(der)
	rootPEM := encodeCert(root.Raw)
	chain := make([]byte, 0, len(certPEM)+len(rootPEM))
	chain = append(append(chain, certPEM...), rootPEM...)
	return Bundle{CACert: certPEM, CAKey: keyPEM, RootCert: rootPEM, CertChain: chain}, nil
}

// loadRoot parses a root CA's certificate and key and checks that they can
// sign an intermediate at now.
func loadRoot(certPEM, keyPEM []byte, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("root certificate: %w", err)
	}
	root := certs[0]
	if len(certs) > 1 {
		return nil, nil, fmt.Errorf("root certificate: the PEM holds %d certificates; give the root alone", len(certs))
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("root key: %w", err)
	}
	if err := checkCA(root); err != nil {
		return nil, nil, &LinkError{Index: -1, Name: describe(root), Err: err}
	}
	if !keyMatches(root.PublicKey, key) {
		return nil, nil, &LinkError{Index: -1, Name: describe(root), Err: fmt.Errorf(
			"%w: the root key is not the key of the root certificate; give the key made with it", ErrKeyMismatch)}
	}
	if err := checkRoot(root, now); err != nil {
		return nil, nil, &LinkError{Index: -1, Name: describe(root), Err: err}
	}
	return root, key, nil
}

// sign makes a certificate from tmpl for pub, signed by key as parent; a
// nil parent makes it self-signed. It fills the serial number and the
// subject key id.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.SubjectKeyId, err = keyID(pub); err != nil {
		return nil, err
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", describe(tmpl), err)
	}
	return der, nil
}

// newSerial returns a random positive serial number of 128 bits.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), serialBits)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func checkDays(days, def int) (int, error) {
	switch {
	case days == 0:
		return def, nil
	case days < 0 || days > maxDays:
		return 0, fmt.Errorf("validity of %d days: want 1 to %d", days, maxDays)
	}
	return days, nil
}

func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
