package ca

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"
)

// countingReviewer accepts tok("good") and tokens listed in ok, refuses
// the rest, and counts its calls.
type countingReviewer struct {
	calls atomic.Int64
	ok    map[string]bool
}

func (r *countingReviewer) Review(_ context.Context, token string, _ []string) (string, string, error) {
	r.calls.Add(1)
	if r.ok[token] {
		return "app", "workload", nil
	}
	return "", "", fmt.Errorf("%w: forged", ErrUnauthenticated)
}

func TestReviewGateCaches(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	good, soon := tok("good"), jwt(fmt.Sprintf(`{"aud":["istio-ca"],"exp":%d}`, now.Add(2*time.Second).Unix()))
	r := &countingReviewer{ok: map[string]bool{good: true, soon: true}}
	g := newReviewGate(1000, 1000, 100, clock)
	ctx := t.Context()
	review := func(token string) (reviewOutcome, error) {
		ns, sa, out, err := g.review(ctx, "c1", r, token, nil)
		if err == nil && (ns != "app" || sa != "workload") {
			t.Fatalf("identity %s/%s", ns, sa)
		}
		return out, err
	}
	for i, want := range []reviewOutcome{reviewSent, reviewCached, reviewCached} {
		if out, err := review(good); err != nil || out != want {
			t.Fatalf("good token, call %d: %v, %v; want %v", i, out, err, want)
		}
	}
	for i, want := range []reviewOutcome{reviewSent, reviewCached} {
		if out, err := review(tok("forged")); !errors.Is(err, ErrUnauthenticated) || out != want {
			t.Fatalf("forged token, call %d: %v, %v; want %v and ErrUnauthenticated", i, out, err, want)
		}
	}
	if _, _, out, _ := g.review(ctx, "c2", r, good, nil); out != reviewSent {
		t.Errorf("another cluster's answer was reused: %v", out)
	}
	if out, _ := review(soon); out != reviewSent {
		t.Fatal(out)
	}
	advance(ReviewNegativeTTL)
	if out, _ := review(tok("forged")); out != reviewSent {
		t.Errorf("refused token after %v: %v, want reviewed again", ReviewNegativeTTL, out)
	}
	if out, _ := review(good); out != reviewCached {
		t.Errorf("accepted token after %v: %v, want cached", ReviewNegativeTTL, out)
	}
	if out, _ := review(soon); out != reviewSent {
		t.Errorf("token past its exp: %v, want reviewed again", out)
	}
	advance(ReviewCacheTTL)
	if out, _ := review(good); out != reviewSent {
		t.Errorf("accepted token after %v: %v, want reviewed again", ReviewCacheTTL, out)
	}
}

func TestReviewGateBounded(t *testing.T) {
	r := &countingReviewer{}
	g := newReviewGate(1e9, 1e9, 10, time.Now)
	for i := range 100 {
		_, _, _, _ = g.review(t.Context(), "c1", r, tok(fmt.Sprint("forged", i)), nil)
	}
	if n := len(g.entries); n > 10 {
		t.Errorf("cache holds %d entries, want at most 10", n)
	}
}

// TestCreateCertificateReviewFlood: a flood of forged tokens spends the
// cluster's TokenReview budget and no more, is refused at once with
// Unavailable, and a workload whose token was reviewed before still gets
// its certificate during it.
func TestCreateCertificateReviewFlood(t *testing.T) {
	const burst = 5
	r := &countingReviewer{ok: map[string]bool{tok("c1-app-workload"): true}}
	m := newFakeMesh(t, func(c *Config) {
		c.ReviewQPS = 0.0001 // no refill while the test runs
		c.ReviewBurst = burst
		c.NewReviewer = func(kubernetes.Interface) TokenReviewer { return r }
	})
	client := dialCA(t, m.addr, m.root, "ca.example.com")
	csr, _ := newCSR(t, "spiffe://cluster.local/ns/app/sa/workload")
	if _, err := request(t.Context(), client, tok("c1-app-workload"), "", csr, 0); err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 50 {
		_, err := request(t.Context(), client, tok(fmt.Sprint("forged-", i)), "", csr, 0)
		switch status.Code(err) {
		case codes.Unauthenticated:
		case codes.Unavailable:
			if !strings.Contains(err.Error(), "too many token reviews") {
				t.Fatalf("flood: %v", err)
			}
			limited++
		default:
			t.Fatalf("forged token %d: %v", i, err)
		}
	}
	if n := r.calls.Load(); n > burst {
		t.Errorf("%d TokenReviews sent for 51 requests, want at most the burst %d", n, burst)
	}
	if _, err := request(t.Context(), client, tok("c1-app-workload"), "", csr, 0); err != nil {
		t.Errorf("known workload during the flood: %v", err)
	}
	if got := counter(t, m.reg, "causeway_ca_token_reviews_total", map[string]string{"cluster": "cluster1", "outcome": "limited"}); int(got) != limited || limited == 0 {
		t.Errorf("limited reviews: metric %v, counted %d", got, limited)
	}
}
