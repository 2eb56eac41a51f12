package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// CertInfo describes one certificate, for people (`causeway certs inspect`)
// and for JSON.
type CertInfo struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Serial is the serial number in lower-case hex.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	IsCA      bool      `json:"isCA"`
	// PathLen is the CA's path length constraint; nil when there is none.
	PathLen *int `json:"pathLen,omitempty"`
	// SelfSigned: the certificate names itself as issuer and its own key
	// verifies its signature (a root).
	SelfSigned bool `json:"selfSigned"`
	// KeyAlgorithm is "ECDSA P-256", "RSA 2048", "Ed25519", ...
	KeyAlgorithm       string `json:"keyAlgorithm"`
	SignatureAlgorithm string `json:"signatureAlgorithm"`
	// KeyUsage and ExtKeyUsage use RFC 5280's names: digitalSignature,
	// keyCertSign, serverAuth, clientAuth, ...
	KeyUsage    []string `json:"keyUsage,omitempty"`
	ExtKeyUsage []string `json:"extKeyUsage,omitempty"`
	DNSNames    []string `json:"dnsNames,omitempty"`
	URIs        []string `json:"uris,omitempty"`
	IPs         []string `json:"ips,omitempty"`
	// SubjectKeyID and AuthorityKeyID are lower-case hex.
	SubjectKeyID   string `json:"subjectKeyId,omitempty"`
	AuthorityKeyID string `json:"authorityKeyId,omitempty"`
	// SHA256 is the fingerprint of the DER certificate, lower-case hex.
	SHA256 string `json:"sha256"`
}

// Inspect describes every certificate of a PEM bundle, in order; other PEM
// blocks (keys, requests) are skipped. Unlike `openssl x509`, which prints
// only the first certificate of a chain, it shows them all. It fails with
// ErrNoCertificate when there is none.
func Inspect(pemBytes []byte) ([]CertInfo, error) {
	certs, err := parseCerts(pemBytes)
	if err != nil {
		return nil, err
	}
	infos := make([]CertInfo, len(certs))
	for i, c := range certs {
		infos[i] = Describe(c)
	}
	return infos, nil
}

// Describe describes one parsed certificate.
func Describe(c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	info := CertInfo{
		Subject:            c.Subject.String(),
		Issuer:             c.Issuer.String(),
		Serial:             c.SerialNumber.Text(16),
		NotBefore:          c.NotBefore.UTC(),
		NotAfter:           c.NotAfter.UTC(),
		IsCA:               c.BasicConstraintsValid && c.IsCA,
		SelfSigned:         selfSigned(c),
		KeyAlgorithm:       keyAlgorithm(c.PublicKey),
		SignatureAlgorithm: c.SignatureAlgorithm.String(),
		KeyUsage:           keyUsageNames(c.KeyUsage),
		DNSNames:           c.DNSNames,
		SubjectKeyID:       hex.EncodeToString(c.SubjectKeyId),
		AuthorityKeyID:     hex.EncodeToString(c.AuthorityKeyId),
		SHA256:             hex.EncodeToString(sum[:]),
	}
	if info.IsCA && (c.MaxPathLen > 0 || (c.MaxPathLen == 0 && c.MaxPathLenZero)) {
		n := c.MaxPathLen
		info.PathLen = &n
	}
	for _, u := range c.ExtKeyUsage {
		info.ExtKeyUsage = append(info.ExtKeyUsage, extKeyUsageName(u))
	}
	for _, oid := range c.UnknownExtKeyUsage {
		info.ExtKeyUsage = append(info.ExtKeyUsage, oid.String())
	}
	for _, u := range c.URIs {
		info.URIs = append(info.URIs, u.String())
	}
	for _, ip := range c.IPAddresses {
		info.IPs = append(info.IPs, ip.String())
	}
	return info
}

// keyUsageNames names the bits of u with RFC 5280's names; crypto/x509's
// KeyUsage bit i is the RFC's bit i.
func keyUsageNames(u x509.KeyUsage) []string {
	names := [...]string{
		"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
	}
	var out []string
	for i, name := range names {
		if u&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

func extKeyUsageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	default:
		return fmt.Sprintf("extKeyUsage(%d)", int(u))
	}
}
