package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// KeyType names the kind of private key made for a new certificate.
type KeyType string

// The key types NewRoot, NewIntermediate and NewSelfSignedCA make.
const (
	// KeyEC is ECDSA on the P-256 curve, the default.
	KeyEC KeyType = "ec"
	// KeyRSA is RSA, 2048 bits unless RSABits says 4096.
	KeyRSA KeyType = "rsa"
)

// Sizes of the RSA keys Causeway makes.
const (
	RSABitsDefault = 2048
	RSABitsLarge   = 4096
)

// minRSABits is the smallest RSA key Causeway accepts from a CSR or a bundle.
const minRSABits = 2048

// ParseKeyType reads the --key flag's value: "ec" or "rsa" (empty means ec).
func ParseKeyType(s string) (KeyType, error) {
	switch KeyType(strings.ToLower(s)) {
	case "", KeyEC:
		return KeyEC, nil
	case KeyRSA:
		return KeyRSA, nil
	default:
		return "", fmt.Errorf("key type %q: want %q or %q", s, KeyEC, KeyRSA)
	}
}

// newKey makes a private key of type t; bits applies to RSA only.
func newKey(t KeyType, bits int) (crypto.Signer, error) {
	switch t {
	case "", KeyEC:
		if bits != 0 {
			return nil, fmt.Errorf("RSA key size %d given for an %s key: the size applies to rsa keys only", bits, KeyEC)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
		}
		return k, nil
	case KeyRSA:
		if bits == 0 {
			bits = RSABitsDefault
		}
		if bits != RSABitsDefault && bits != RSABitsLarge {
			return nil, fmt.Errorf("RSA key size %d: want %d or %d", bits, RSABitsDefault, RSABitsLarge)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("generate RSA %d key: %w", bits, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("key type %q: want %q or %q", t, KeyEC, KeyRSA)
	}
}

// encodeKey returns key as a PKCS #8 "PRIVATE KEY" PEM block, what
// OpenSSL 3 writes for Istio's Makefile.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads the first private key in data: PKCS #8 ("PRIVATE KEY"),
// PKCS #1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"), skipping other
// blocks such as the "EC PARAMETERS" that `openssl ecparam -genkey` writes.
func parseKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found (want a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign certificates", key)
		}
		if err := checkPublicKey(signer.Public()); err != nil {
			return nil, err
		}
		return signer, nil
	}
}

// checkPublicKey rejects keys Causeway will not certify or sign with.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too weak: use at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported public key type %T: use ECDSA, RSA or Ed25519", pub)
	}
	return nil
}

// keyMatches reports whether pub is the public half of key.
func keyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// keyID derives a subject key identifier from a public key: the first 160
// bits of the SHA-256 of its SubjectPublicKeyInfo (RFC 5280 4.2.1.2 allows
// any method that gives unique values).
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// keyAlgorithm describes a public key: "ECDSA P-256", "RSA 2048", "Ed25519".
func keyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}
