package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Errors a caller can tell apart with errors.Is. The errors returned wrap
// them with what was wrong and what to do.
var (
	// ErrNoCertificate: the input holds no PEM certificate.
	ErrNoCertificate = errors.New("no PEM certificate found")
	// ErrNotCA: a certificate that must sign others is not a CA (basic
	// constraints CA:false or missing, or no keyCertSign key usage).
	ErrNotCA = errors.New("certificate is not a CA")
	// ErrKeyMismatch: a private key is not the key of its certificate.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrChainBroken: a certificate is not signed by the next one of its
	// chain, or the chain does not end at the root.
	ErrChainBroken = errors.New("certificate chain does not lead to the root")
	// ErrExpired: the current time is after a certificate's NotAfter.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid: the current time is before a certificate's NotBefore.
	ErrNotYetValid = errors.New("certificate is not valid yet")
	// ErrNotSelfSigned: a root certificate is not self-signed.
	ErrNotSelfSigned = errors.New("root certificate is not self-signed")
	// ErrPathLen: a CA signs deeper than its path length constraint allows.
	ErrPathLen = errors.New("certificate chain is longer than a CA's path length allows")
	// ErrInvalidCSR: a certificate signing request cannot be parsed or its
	// signature does not verify.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrNameNotAllowed: a CSR asks for a name the caller may not have, or
	// an allowed name is malformed.
	ErrNameNotAllowed = errors.New("name not allowed")
)

// LinkError says which certificate of a chain failed and why.
type LinkError struct {
	// Index is the certificate's position in the chain (0 is the first,
	// the leaf); -1 for a root given apart from the chain.
	Index int
	// Name describes the certificate: its subject, or its first SAN when
	// the subject is empty (workload certificates).
	Name string
	// Err is one of the package's Err values wrapped with details.
	Err error
}

// Error says which certificate failed and why.
func (e *LinkError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("root %q: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("chain[%d] %q: %v", e.Index, e.Name, e.Err)
}

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *LinkError) Unwrap() error { return e.Err }

// describe names a certificate for an error or a log line.
func describe(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	switch {
	case len(c.URIs) > 0:
		return "URI:" + c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return "DNS:" + c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return "IP:" + c.IPAddresses[0].String()
	}
	return fmt.Sprintf("serial %x", c.SerialNumber)
}
