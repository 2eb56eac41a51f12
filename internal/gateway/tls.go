package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	boundedfiles "github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// XDSTLSFiles name what an ADS connection over TLS needs: the roots that
// verify the control plane's serving certificate, the name it must cover,
// and optionally the gateway's own certificate.
type XDSTLSFiles struct {
	// RootCert is a PEM file of one or more CA certificates: the mesh's
	// root (the istio-ca-root-cert ConfigMap's root-cert.pem). Required.
	RootCert string
	// ServerName is the name the serving certificate must cover, also
	// sent as SNI (by which a primary's east-west gateway passes the
	// connection on); default the host of the xDS address.
	ServerName string
	// Cert and Key are PEM files of a client certificate and its key,
	// presented to the control plane; both or neither.
	Cert, Key string
}

// XDSTLSConfig reads files and returns the TLS configuration of an ADS
// connection to xds (HOST:PORT), for Config.XDSTLS. The files are read
// once: a rotated root or client certificate takes a restart.
func XDSTLSConfig(xds string, files XDSTLSFiles) (*tls.Config, error) {
	if files.RootCert == "" {
		return nil, errors.New("xDS over TLS: no root certificate file: give the mesh's root (root-cert.pem of the ConfigMap istio-ca-root-cert)")
	}
	pemBytes, err := boundedfiles.Read(context.Background(), files.RootCert, boundedfiles.PEM)
	if err != nil {
		return nil, fmt.Errorf("xDS root certificate: %w", err)
	}
	roots, err := certPool(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("xDS root certificate %s: %w", files.RootCert, err)
	}
	name := files.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(xds)
		if err != nil {
			return nil, fmt.Errorf("xDS address %q: %w; want HOST:PORT, or give the server name to verify", xds, err)
		}
		name = host
	}
	if name == "" {
		return nil, fmt.Errorf("xDS address %q has no host: give the server name the control plane's certificate covers (e.g. istiod-remote.istio-system.svc)", xds)
	}
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: name,
		MinVersion: tls.VersionTLS12,
	}
	switch {
	case files.Cert == "" && files.Key == "":
	case files.Cert == "" || files.Key == "":
		return nil, errors.New("xDS client certificate: give both the certificate and its key, or neither")
	default:
		certPEM, err := boundedfiles.Read(context.Background(), files.Cert, boundedfiles.PEM)
		if err != nil {
			return nil, fmt.Errorf("xDS client certificate: %w", err)
		}
		keyPEM, err := boundedfiles.Read(context.Background(), files.Key, boundedfiles.PEM)
		if err != nil {
			return nil, fmt.Errorf("xDS client key: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("xDS client certificate %s, key %s: %w", files.Cert, files.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// certPool parses every CERTIFICATE block of pemBytes; it is an error when
// there is none or one does not parse (AppendCertsFromPEM would skip it).
func certPool(pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for c, err := range pki.Certificates(pemBytes) {
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block in it")
	}
	return pool, nil
}
