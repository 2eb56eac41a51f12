package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Keys a workload CSR may carry: what Istio's agents make (ECDSA P-256 by
// default, RSA 2048 otherwise) and what Envoy's TLS stack verifies
// everywhere. Larger RSA keys only make each handshake and each signature
// check slower, and an unbounded one lets a caller spend the CA's CPU;
// Ed25519 and other curves are not accepted by every peer (Istio's CA
// refuses them too).
const (
	MinCSRRSABits = 2048
	MaxCSRRSABits = 4096
	// MaxCSRBytes bounds the PEM of a CSR (a 4096-bit RSA CSR with a few
	// names is under 2 KiB).
	MaxCSRBytes = 16 << 10
)

// errCSRKey marks a CSR whose key is not allowed.
var errCSRKey = errors.New("CSR key not allowed")

// checkCSRKey refuses, before its signature is checked, a CSR that is too
// large or whose key is not ECDSA P-256 or P-384 or RSA of
// MinCSRRSABits..MaxCSRRSABits bits. A CSR it cannot read is left to the
// signer, which says why.
func checkCSRKey(csrPEM []byte) error {
	if len(csrPEM) > MaxCSRBytes {
		return fmt.Errorf("%w: the CSR is %d bytes, more than %d: send one PEM CERTIFICATE REQUEST", errCSRKey, len(csrPEM), MaxCSRBytes)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil
	}
	const want = "use an ECDSA P-256 (Istio's default) or P-384 key, or RSA of 2048 to 4096 bits"
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: ECDSA curve %s: %s", errCSRKey, k.Curve.Params().Name, want)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinCSRRSABits || n > MaxCSRRSABits {
			return fmt.Errorf("%w: RSA key of %d bits: %s", errCSRKey, n, want)
		}
	default:
		return fmt.Errorf("%w: %s key: %s", errCSRKey, csr.PublicKeyAlgorithm, want)
	}
	return nil
}
