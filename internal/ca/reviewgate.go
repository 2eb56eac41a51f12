package ca

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Defaults of the TokenReview gate (see [Config]).
const (
	// DefaultReviewQPS and DefaultReviewBurst bound the TokenReviews sent
	// to one cluster's API server: half of the client's own rate limit, so
	// that a flood of tokens on :15012 leaves the watchers theirs.
	DefaultReviewQPS   = 25
	DefaultReviewBurst = 50
	// DefaultReviewCacheSize bounds the remembered review results (both
	// kinds together, all clusters).
	DefaultReviewCacheSize = 8192
	// ReviewCacheTTL is how long a token that was accepted is trusted
	// without asking again (never past the token's own expiry), and
	// ReviewNegativeTTL how long a refused one stays refused.
	ReviewCacheTTL    = 30 * time.Second
	ReviewNegativeTTL = 5 * time.Second
)

// errReviewLimited: the cluster's TokenReview budget is spent.
var errReviewLimited = errors.New("too many token reviews")

// reviewGate caches TokenReview results and rate-limits the reviews sent
// to each cluster, so that a flood of forged tokens cannot use up the API
// server (and the client's rate limit shared with the watchers), nor
// delay the workloads whose tokens are already known.
type reviewGate struct {
	now   func() time.Time
	qps   rate.Limit
	burst int
	size  int

	mu       sync.Mutex
	entries  map[[sha256.Size]byte]reviewEntry
	limiters map[model.ClusterID]*rate.Limiter
}

// reviewEntry is a remembered answer: an identity, or a refusal (err is
// ErrUnauthenticated or ErrNotServiceAccount, wrapped).
type reviewEntry struct {
	ns, sa  string
	err     error
	expires time.Time
}

func newReviewGate(qps float64, burst, size int, now func() time.Time) *reviewGate {
	return &reviewGate{
		now: now, qps: rate.Limit(qps), burst: burst, size: size,
		entries:  map[[sha256.Size]byte]reviewEntry{},
		limiters: map[model.ClusterID]*rate.Limiter{},
	}
}

// reviewOutcome says how a review was answered, for the metric.
type reviewOutcome string

const (
	reviewSent    reviewOutcome = "reviewed"
	reviewCached  reviewOutcome = "cached"
	reviewLimited reviewOutcome = "limited"
)

func reviewKey(cluster model.ClusterID, token string, audiences []string) [sha256.Size]byte {
	return sha256.Sum256([]byte(string(cluster) + "\x00" + strings.Join(audiences, "\x00") + "\x00\x00" + token))
}

// review answers from the cache, else sends r's review if the cluster's
// budget allows it and remembers a definite answer.
func (g *reviewGate) review(ctx context.Context, cluster model.ClusterID, r TokenReviewer, token string, audiences []string) (ns, sa string, outcome reviewOutcome, err error) {
	key := reviewKey(cluster, token, audiences)
	now := g.now()
	g.mu.Lock()
	if e, ok := g.entries[key]; ok {
		if now.Before(e.expires) {
			g.mu.Unlock()
			return e.ns, e.sa, reviewCached, e.err
		}
		delete(g.entries, key)
	}
	lim, ok := g.limiters[cluster]
	if !ok {
		lim = rate.NewLimiter(g.qps, g.burst)
		g.limiters[cluster] = lim
	}
	allowed := lim.AllowN(now, 1)
	g.mu.Unlock()
	if !allowed {
		return "", "", reviewLimited, fmt.Errorf("%w for cluster %s (at most %v a second, burst %d)", errReviewLimited, cluster, float64(g.qps), g.burst)
	}

	ns, sa, err = r.Review(ctx, token, audiences)
	var ttl time.Duration
	switch {
	case err == nil:
		ttl = ReviewCacheTTL
		if exp, ok := tokenExpiry(token); ok {
			ttl = min(ttl, exp.Sub(now))
		}
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrNotServiceAccount):
		ttl = ReviewNegativeTTL
	}
	if ttl > 0 {
		g.remember(key, reviewEntry{ns: ns, sa: sa, err: err, expires: now.Add(ttl)}, now)
	}
	return ns, sa, reviewSent, err
}

// remember stores an entry, making room first: expired entries go, then,
// if the cache is still full, arbitrary ones (map order).
func (g *reviewGate) remember(key [sha256.Size]byte, e reviewEntry, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.entries) >= g.size {
		for k, old := range g.entries {
			if !now.Before(old.expires) {
				delete(g.entries, k)
			}
		}
		for k := range g.entries {
			if len(g.entries) < g.size {
				break
			}
			delete(g.entries, k)
		}
	}
	g.entries[key] = e
}

// tokenExpiry reads the exp claim of a JWT without verifying it: it may
// only shorten how long an accepted token is remembered.
func tokenExpiry(token string) (time.Time, bool) {
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if !decodeClaims(token, &claims) || claims.Exp == nil {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}
