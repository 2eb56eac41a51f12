package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

const (
	// servingRetry is how soon a failed issue of the serving certificate
	// is tried again.
	servingRetry = 10 * time.Second
	// minRenewal is the shortest wait before a renewal.
	minRenewal = 100 * time.Millisecond
)

// servingCert is the control plane's current serving certificate.
type servingCert struct {
	cert *tls.Certificate
	// by is the CA state that issued it.
	by *caState
	// renewAt is two thirds into its life.
	renewAt time.Time
}

// ServingTLSConfig returns the TLS configuration of the control plane's
// secure port (:15012, xDS and CreateCertificate): the serving certificate
// comes from GetCertificate, so rotation needs no restart, and a client
// that presents a certificate is verified against the CA's current root
// (tls.VerifyClientCertIfGiven: a workload that has no certificate yet
// calls CreateCertificate with its token alone). Pass it to
// credentials.NewTLS. Handshakes fail until the CA is loaded.
func (a *Authority) ServingTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		GetConfigForClient: a.configForClient,
	}
}

// configForClient returns the configuration of the CA in use: its roots
// verify client certificates.
func (a *Authority) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	st := a.state.Load()
	if st.ca == nil {
		return nil, fmt.Errorf("ca: no serving certificate: %w", errNoCA)
	}
	return st.tls, nil
}

func (a *Authority) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	sc := a.serving.Load()
	if sc == nil {
		return nil, fmt.Errorf("ca: no serving certificate: %w", errNoCA)
	}
	return sc.cert, nil
}

// rotateServing keeps the serving certificate fresh until ctx ends: a new
// one when the CA changes and at two thirds of the current one's life.
func (a *Authority) rotateServing(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		st := a.state.Load()
		wait := time.Duration(-1)
		if st.ca != nil {
			cur := a.serving.Load()
			if (cur == nil || cur.by != st || !time.Now().Before(cur.renewAt)) && !a.renewServing(st) {
				wait = servingRetry
			}
			if cur := a.serving.Load(); wait < 0 && cur != nil {
				wait = max(time.Until(cur.renewAt), 0)
			}
		}
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-st.changed:
		case <-fire:
		}
		timer.Stop() // since Go 1.23 no stale tick survives Stop
	}
}

// renewServing issues a serving certificate with st's CA, counts and logs
// the outcome, and reports whether it succeeded.
func (a *Authority) renewServing(st *caState) bool {
	if err := a.issueServing(st); err != nil {
		a.metrics.servingIssued.WithLabelValues("error").Inc()
		a.log.Info("serving certificate not issued; retrying", "err", err, "retry", servingRetry)
		return false
	}
	a.metrics.servingIssued.WithLabelValues("ok").Inc()
	return true
}

// issueServing signs a new serving certificate with a new key.
func (a *Authority) issueServing(st *caState) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate a key: %w", err)
	}
	issuedAt := time.Now()
	issued, err := st.ca.SignServing(key.Public(), a.dnsNames, a.cfg.ServingTTL)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: issued.Cert}
	for i, p := range issued.Chain {
		block, _ := pem.Decode(p)
		if block == nil {
			return fmt.Errorf("certificate %d of the chain is not PEM", i)
		}
		// A self-signed root at the end is left out: the client has it.
		if i > 0 && i == len(issued.Chain)-1 && isSelfSigned(block.Bytes) {
			break
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	// Two thirds into the life it really has (NotAfter is whole seconds and
	// never after the CA's); at least a moment later, so that a CA about to
	// expire does not make the loop spin.
	life := issued.Cert.NotAfter.Sub(issuedAt)
	renewAt := issuedAt.Add(max(life*2/3, minRenewal))
	a.serving.Store(&servingCert{cert: cert, by: st, renewAt: renewAt})
	a.log.Debug("serving certificate issued", "dnsNames", a.dnsNames, "serial", issued.Cert.SerialNumber.Text(16),
		"notAfter", issued.Cert.NotAfter.UTC().Format(time.RFC3339), "renewAt", renewAt.UTC().Format(time.RFC3339))
	return nil
}

// isSelfSigned reports whether a DER certificate names itself as issuer.
func isSelfSigned(der []byte) bool {
	c, err := x509.ParseCertificate(der)
	return err == nil && bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}
