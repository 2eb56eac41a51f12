package xds

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/status"
)

// Defaults of the re-send pace (Config.ResendRate, Config.ResendBurst).
const (
	// DefaultResendRate is how many requests per second of one type a
	// stream may have answered at once, after its burst. A proxy asks for
	// each type once when it connects and again only when its
	// subscription changes (a new CDS brings new EDS names): a handful a
	// minute. Publishes are not paced: they answer watches, not requests.
	DefaultResendRate = 5
	// DefaultResendBurst is how many requests of one type a stream may
	// have answered at once before the rate applies.
	DefaultResendBurst = 20
)

// pacer bounds how often one stream's requests of one type are answered at
// once (a response made for the request, not for a publish). A client that
// loops on requests the server must answer (a version of another process
// in each, a subscription that flips) is slowed to the rate, its next
// request waiting on its own stream's goroutine; other streams and the
// publisher never wait for it.
type pacer struct {
	lim *rate.Limiter

	mu sync.Mutex
	// next is when the stream's next request of the type may be looked at.
	next time.Time
	// version is the cache version of the last answer; seen is false
	// until the first.
	version uint64
	seen    bool
}

// newPacer returns nil, no pacing, for a negative rate.
func newPacer(r float64, burst int) *pacer {
	if r < 0 {
		return nil
	}
	return &pacer{lim: rate.NewLimiter(rate.Limit(r), burst)}
}

// wait waits until the stream may be answered again, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	d := time.Until(p.next)
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// answered records that a request was answered at once, at cache version
// v. An answer at a newer version than the stream's last carries changes
// (a publish landed between a response and its ACK, as churn makes
// happen all the time): it is progress, never paced. An answer at a
// version the stream was already answered at is a re-send: it takes a
// token, and the next request waits for the one after it.
func (p *pacer) answered(v uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.seen || v > p.version {
		p.version, p.seen = v, true
		return
	}
	r := p.lim.Reserve()
	p.next = time.Now().Add(r.Delay())
}
