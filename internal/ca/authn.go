package ca

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Caller is who a client of the secure port proved to be.
type Caller struct {
	// Source is how: SourceToken or SourceCertificate.
	Source string
	// Cluster is the cluster whose TokenReview accepted the token; empty
	// for a certificate (it names no cluster).
	Cluster model.ClusterID
	// Namespace and ServiceAccount are the service account the credential
	// carries.
	Namespace, ServiceAccount string
}

// Sources of a [Caller].
const (
	SourceToken       = "token"
	SourceCertificate = "certificate"
)

// Refusal reasons of an [AuthError] (bounded: they label metrics).
const (
	// ReasonNoCredential: neither a client certificate nor a bearer token.
	ReasonNoCredential = "no_credential"
	// ReasonUnknownCluster: the token's cluster is not one the control
	// plane knows.
	ReasonUnknownCluster = "unknown_cluster"
	// ReasonBadToken: the token is malformed, forged, expired, of another
	// cluster or for other audiences, or names no service account.
	ReasonBadToken = "bad_token"
	// ReasonBadCertificate: the client certificate carries no SPIFFE
	// identity of a service account.
	ReasonBadCertificate = "bad_certificate"
	// ReasonUnavailable: the token could not be checked now (the
	// cluster's TokenReview budget is spent, or its API server failed).
	ReasonUnavailable = "unavailable"
)

// AuthError is a refused credential: Reason is one of the Reason
// constants, Err a gRPC status error whose message says what to do.
type AuthError struct {
	Reason string
	Err    error
}

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *AuthError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

func authErr(reason string, c codes.Code, format string, args ...any) *AuthError {
	return &AuthError{Reason: reason, Err: status.Errorf(c, format, args...)}
}

// Authenticate checks the credential of a call on the secure port, as
// istiod's authenticators do for xDS: a client certificate the TLS
// handshake verified against the mesh root wins (its SPIFFE URI names the
// service account); else the bearer token of `authorization: Bearer`,
// checked with a TokenReview in cluster (the config cluster when empty)
// through the same cache and rate limit as CreateCertificate. how names
// where the caller put the cluster, for the error messages. The error is
// an *AuthError.
func (a *Authority) Authenticate(ctx context.Context, cluster model.ClusterID, how string) (Caller, error) {
	if c, ok, err := peerCertificate(ctx); ok || err != nil {
		return c, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if firstValue(md, "authorization") == "" {
		return Caller{}, authErr(ReasonNoCredential, codes.Unauthenticated,
			"no credential: send the workload's Kubernetes service-account token (audience %s) in the authorization metadata as \"Bearer TOKEN\", "+
				"as pilot-agent does, or present a client certificate of the mesh CA", a.audienceText())
	}
	return a.authenticateToken(ctx, cluster, md, how)
}

// authenticateToken checks the bearer token of md in cluster (empty: the
// config cluster).
func (a *Authority) authenticateToken(ctx context.Context, cluster model.ClusterID, md metadata.MD, how string) (Caller, error) {
	if cluster == "" {
		cluster = a.cfg.ClusterID
	}
	client, ok := a.cluster(cluster)
	if !ok {
		return Caller{}, authErr(ReasonUnknownCluster, codes.Unauthenticated,
			"unknown cluster %q in %s: name the config cluster (%s) or a cluster of a remote secret, the one whose service-account token you send",
			cluster, how, a.cfg.ClusterID)
	}
	token, err := bearerToken(md)
	if err != nil {
		return Caller{}, authErr(ReasonBadToken, codes.Unauthenticated, "%v", err)
	}
	reviewCtx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var ns, sa string
	audiences, err := reviewAudiences(token, a.cfg.Audiences, a.cfg.NoDefaultAudience)
	if err == nil {
		var outcome reviewOutcome
		ns, sa, outcome, err = a.reviews.review(reviewCtx, cluster, a.cfg.NewReviewer(client), token, audiences)
		a.metrics.reviews.WithLabelValues(string(cluster), string(outcome)).Inc()
	}
	switch {
	case errors.Is(err, errReviewLimited):
		return Caller{}, authErr(ReasonUnavailable, codes.Unavailable, "cluster %s: %v: retry shortly", cluster, err)
	case errors.Is(err, ErrUnauthenticated):
		return Caller{}, authErr(ReasonBadToken, codes.Unauthenticated,
			"cluster %s: %v; send a current service-account token of that cluster for audience %s (a token of another cluster must name it in %s)",
			cluster, err, a.audienceText(), how)
	case errors.Is(err, ErrNotServiceAccount):
		return Caller{}, authErr(ReasonBadToken, codes.PermissionDenied, "cluster %s: %v: send a service account's token", cluster, err)
	case err != nil:
		return Caller{}, authErr(ReasonUnavailable, codes.Unavailable, "cluster %s: the token could not be checked: %v: retry shortly", cluster, err)
	}
	return Caller{Source: SourceToken, Cluster: cluster, Namespace: ns, ServiceAccount: sa}, nil
}

// peerCertificate reads the identity of the client certificate of ctx's
// TLS connection: ok is false when the client presented none. The TLS
// handshake verified it against the mesh root (ServingTLSConfig), so only
// verified chains are read.
func peerCertificate(ctx context.Context) (Caller, bool, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, false, nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return Caller{}, false, nil
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		// Not reached with ServingTLSConfig (the handshake fails first).
		return Caller{}, true, authErr(ReasonBadCertificate, codes.Unauthenticated,
			"the client certificate was not verified against the mesh root: present one the mesh CA issued, or none and a token")
	}
	leaf := chains[0][0]
	for _, u := range leaf.URIs {
		if ns, sa, ok := parseSPIFFE(u); ok {
			return Caller{Source: SourceCertificate, Namespace: ns, ServiceAccount: sa}, true, nil
		}
	}
	return Caller{}, true, authErr(ReasonBadCertificate, codes.Unauthenticated,
		"the client certificate (subject %q) carries no SPIFFE identity spiffe://TRUST_DOMAIN/ns/NS/sa/SA: present a workload certificate from CreateCertificate, or none and a token",
		leaf.Subject.String())
}

// parseSPIFFE reads the namespace and service account of a SPIFFE id
// spiffe://TRUST_DOMAIN/ns/NS/sa/SA. Like istiod, it does not compare the
// trust domain: a certificate the mesh root verified is the mesh's.
func parseSPIFFE(u *url.URL) (ns, sa string, ok bool) {
	if u == nil || u.Scheme != "spiffe" || u.Host == "" {
		return "", "", false
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// String describes the caller for logs and errors: its SPIFFE path and
// how it was proven.
func (c Caller) String() string {
	s := fmt.Sprintf("ns/%s/sa/%s (%s", c.Namespace, c.ServiceAccount, c.Source)
	if c.Cluster != "" {
		s += " of cluster " + string(c.Cluster)
	}
	return s + ")"
}
