package ca

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Errors of a [TokenReviewer] that say the caller, not the reviewer, is at
// fault; any other error means the token could not be checked (Unavailable).
var (
	// ErrUnauthenticated: the token is not valid in that cluster (forged,
	// expired, of another cluster, or for other audiences).
	ErrUnauthenticated = errors.New("token not authenticated")
	// ErrNotServiceAccount: the token is valid but names a user, not a
	// service account.
	ErrNotServiceAccount = errors.New("token is not a service account's")
)

// TokenReviewer checks a bearer token in one cluster and returns the
// service account it belongs to. audiences are the audiences the token
// must be valid for; nil means the API server's own (the default audience
// of its tokens).
type TokenReviewer interface {
	Review(ctx context.Context, token string, audiences []string) (namespace, serviceAccount string, err error)
}

// TokenReviewerFunc adapts a function to [TokenReviewer].
type TokenReviewerFunc func(ctx context.Context, token string, audiences []string) (namespace, serviceAccount string, err error)

// Review calls f.
func (f TokenReviewerFunc) Review(ctx context.Context, token string, audiences []string) (namespace, serviceAccount string, err error) {
	return f(ctx, token, audiences)
}

var (
	_ TokenReviewer = TokenReviewerFunc(nil)
	_ TokenReviewer = kubeReviewer{}
)

// kubeReviewer checks tokens with a TokenReview.
type kubeReviewer struct {
	client kubernetes.Interface
}

// NewKubeReviewer returns a [TokenReviewer] that creates a TokenReview in
// the cluster client reaches (which needs create on tokenreviews, as
// ClusterRole system:auth-delegator grants).
func NewKubeReviewer(client kubernetes.Interface) TokenReviewer {
	return kubeReviewer{client: client}
}

// serviceAccountPrefix starts the user name of a service account's token.
const serviceAccountPrefix = "system:serviceaccount:"

func (r kubeReviewer) Review(ctx context.Context, token string, audiences []string) (namespace, serviceAccount string, err error) {
	tr, err := r.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return "", "", fmt.Errorf("TokenReview: %w (grant the control plane create on tokenreviews, e.g. ClusterRole system:auth-delegator)", err)
		}
		return "", "", fmt.Errorf("TokenReview: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "the API server did not authenticate it"
		}
		return "", "", fmt.Errorf("%w: %s", ErrUnauthenticated, why)
	}
	// An API server that ignores spec.audiences would authenticate the
	// token for its own audiences: check that it said which it checked.
	if len(audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(audiences, a) }) {
		return "", "", fmt.Errorf("%w: valid for audiences %v, not for %v", ErrUnauthenticated, st.Audiences, audiences)
	}
	return ParseServiceAccount(st.User.Username)
}

// ParseServiceAccount splits the user name of a service account's token,
// system:serviceaccount:NAMESPACE:NAME.
func ParseServiceAccount(user string) (namespace, serviceAccount string, err error) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: it names user %q", ErrNotServiceAccount, user)
	}
	namespace, serviceAccount, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || serviceAccount == "" || strings.Contains(serviceAccount, ":") {
		return "", "", fmt.Errorf("%w: malformed service account user %q", ErrNotServiceAccount, user)
	}
	return namespace, serviceAccount, nil
}

// reviewAudiences chooses the audiences to review a token for, so that one
// TokenReview settles it: the configured ones when the token claims one of
// them, else nil, the API server's own audiences, when those are accepted.
// The claims are only read here, never trusted: the TokenReview checks
// them. A token that is not a JWT is no service account's: it fails with
// ErrUnauthenticated, sparing the API server.
func reviewAudiences(token string, accepted []string, noDefault bool) ([]string, error) {
	claimed, ok := tokenAudiences(token)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: not a JWT, so no Kubernetes service-account token", ErrUnauthenticated)
	case noDefault || slices.ContainsFunc(claimed, func(a string) bool { return slices.Contains(accepted, a) }):
		return accepted, nil
	}
	return nil, nil
}

// tokenAudiences reads the aud claim of a JWT without verifying it.
func tokenAudiences(token string) ([]string, bool) {
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if !decodeClaims(token, &claims) {
		return nil, false
	}
	if len(claims.Aud) == 0 {
		return nil, true
	}
	var one string
	if err := json.Unmarshal(claims.Aud, &one); err == nil {
		return []string{one}, true
	}
	var many []string
	if err := json.Unmarshal(claims.Aud, &many); err == nil {
		return many, true
	}
	return nil, false
}

// decodeClaims decodes the payload of a JWT into v without verifying it.
func decodeClaims(token string, v any) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return false
	}
	return json.Unmarshal(payload, v) == nil
}
