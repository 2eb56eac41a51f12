package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"iter"
	"strings"
	"time"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Now is the time to verify at; zero means time.Now().
	Now time.Time
	// KeyUsages the first certificate must allow, such as
	// x509.ExtKeyUsageServerAuth; empty means any.
	KeyUsages []x509.ExtKeyUsage
}

// Verify checks that the first certificate of chainPEM chains, through the
// others of chainPEM in order, to one of the certificates of rootsPEM. The
// last certificate of chainPEM may be the root itself. A failure is a
// *LinkError naming the certificate at fault and wrapping ErrChainBroken,
// ErrExpired, ErrNotYetValid, ErrNotCA, ErrNotSelfSigned or ErrPathLen.
// Last, crypto/x509 verifies the same path (extended key usages, name
// constraints), so a chain Verify accepts is one Go's TLS stack accepts.
func Verify(chainPEM, rootsPEM []byte, opts VerifyOptions) error {
	chain, err := parseCerts(chainPEM)
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	roots, err := parseCerts(rootsPEM)
	if err != nil {
		return fmt.Errorf("roots: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	return verifyChain(chain, roots, now, opts.KeyUsages)
}

// verifyChain is Verify on parsed certificates; chain is not empty.
func verifyChain(chain, roots []*x509.Certificate, now time.Time, usages []x509.ExtKeyUsage) error {
	last := chain[len(chain)-1]
	anchor, anchorInChain := findAnchor(last, roots)
	if anchor == nil {
		return &LinkError{Index: len(chain) - 1, Name: describe(last), Err: noAnchorError(last, roots)}
	}
	path := chain
	rootIndex := -1
	if anchorInChain {
		path = chain[:len(chain)-1]
		rootIndex = len(chain) - 1
	}
	if err := checkRoot(anchor, now); err != nil {
		return &LinkError{Index: rootIndex, Name: describe(anchor), Err: err}
	}
	if len(path) > 0 {
		if err := checkPathLen(anchor, len(path)-1); err != nil {
			return &LinkError{Index: rootIndex, Name: describe(anchor), Err: err}
		}
	}
	for i, c := range path {
		if err := checkValidity(c, now); err != nil {
			return &LinkError{Index: i, Name: describe(c), Err: err}
		}
		if i > 0 {
			if err := checkCA(c); err != nil {
				return &LinkError{Index: i, Name: describe(c), Err: err}
			}
			if err := checkPathLen(c, i-1); err != nil {
				return &LinkError{Index: i, Name: describe(c), Err: err}
			}
		}
		parent := anchor
		if i+1 < len(path) {
			parent = path[i+1]
		}
		if err := checkSignedBy(c, parent); err != nil {
			return &LinkError{Index: i, Name: describe(c), Err: err}
		}
	}
	return crossCheck(chain[0], path, anchor, now, usages)
}

// crossCheck runs crypto/x509's verifier on a path verifyChain accepted.
func crossCheck(first *x509.Certificate, path []*x509.Certificate, anchor *x509.Certificate, now time.Time, usages []x509.ExtKeyUsage) error {
	rootPool := x509.NewCertPool()
	rootPool.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range path[min(1, len(path)):] {
		inter.AddCert(c)
	}
	if len(usages) == 0 {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	if _, err := first.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: inter, CurrentTime: now, KeyUsages: usages,
	}); err != nil {
		return &LinkError{Index: 0, Name: describe(first), Err: fmt.Errorf("%w: %w", ErrChainBroken, err)}
	}
	return nil
}

// findAnchor returns the root that last is, or that signed last.
func findAnchor(last *x509.Certificate, roots []*x509.Certificate) (anchor *x509.Certificate, isLast bool) {
	for _, r := range roots {
		if r.Equal(last) {
			return r, true
		}
	}
	for _, r := range roots {
		if checkSignedBy(last, r) == nil {
			return r, false
		}
	}
	return nil, false
}

// checkSignedBy says whether parent issued c: c names parent's subject as its
// issuer and parent's key verifies c's signature. Whether parent may sign
// (CA, path length) is checked on its own.
func checkSignedBy(c, parent *x509.Certificate) error {
	if !bytes.Equal(c.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("%w: it is issued by %q, not by the next certificate %q",
			ErrChainBroken, c.Issuer.String(), describe(parent))
	}
	if err := parent.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("%w: the key of %q does not verify its signature (same name, different key): %w",
			ErrChainBroken, describe(parent), err)
	}
	return nil
}

// checkValidity says whether now is inside c's validity period.
func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: valid from %s, it is now %s (check the clocks, or wait)",
			ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("%w: expired at %s, it is now %s (issue a new one)",
			ErrExpired, c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkCA says whether c may sign certificates.
func checkCA(c *x509.Certificate) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("%w: its basic constraints do not say CA:true", ErrNotCA)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: its key usage lacks keyCertSign", ErrNotCA)
	}
	return nil
}

// checkPathLen says whether CA c may have below intermediate CAs under it.
func checkPathLen(c *x509.Certificate, below int) error {
	constrained := c.MaxPathLen > 0 || (c.MaxPathLen == 0 && c.MaxPathLenZero)
	if constrained && below > c.MaxPathLen {
		return fmt.Errorf("%w: path length %d, yet %d CA certificate(s) below it", ErrPathLen, c.MaxPathLen, below)
	}
	return nil
}

// checkRoot says whether c can anchor a chain: a self-signed CA valid now.
func checkRoot(c *x509.Certificate, now time.Time) error {
	if !selfSigned(c) {
		return fmt.Errorf("%w: it is issued by %q; use the self-signed root at the top of its chain",
			ErrNotSelfSigned, c.Issuer.String())
	}
	if err := checkCA(c); err != nil {
		return err
	}
	return checkValidity(c, now)
}

// selfSigned reports whether c names itself as issuer and its own key
// verifies its signature.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// noAnchorError explains why no root anchors last.
func noAnchorError(last *x509.Certificate, roots []*x509.Certificate) error {
	for _, r := range roots {
		if bytes.Equal(last.RawIssuer, r.RawSubject) {
			return fmt.Errorf("%w: it is issued by %q and a root has that name, but not that key: it comes from a different root (compare the roots' fingerprints)",
				ErrChainBroken, last.Issuer.String())
		}
	}
	return fmt.Errorf("%w: it is issued by %q, and no root (%s) signed it; a chain is ordered leaf first, each certificate signed by the next",
		ErrChainBroken, last.Issuer.String(), rootNames(roots))
}

func rootNames(roots []*x509.Certificate) string {
	names := make([]string, len(roots))
	for i, r := range roots {
		names[i] = fmt.Sprintf("%q", describe(r))
	}
	return strings.Join(names, ", ")
}

// Certificates yields the CERTIFICATE blocks of PEM data in order, parsed,
// skipping other blocks (keys, requests). A block that does not parse ends
// the sequence with its error (and a nil certificate): unlike
// [x509.CertPool.AppendCertsFromPEM], a bad certificate is not skipped.
// Callers number the certificates in their messages.
func Certificates(data []byte) iter.Seq2[*x509.Certificate, error] {
	return func(yield func(*x509.Certificate, error) bool) {
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				return
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// parseCerts returns every CERTIFICATE block of data, skipping other blocks
// (keys, requests). It fails when there is none or one does not parse.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for c, err := range Certificates(data) {
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return certs, nil
}

// encodeCert returns der as a CERTIFICATE PEM block.
func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
