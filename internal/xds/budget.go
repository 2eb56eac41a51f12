package xds

import (
	"context"
	"sync"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"
)

// Defaults of the send budget.
const (
	// DefaultSendBudget is how many bytes of large responses may be in
	// flight at once across all streams (Config.SendBudget).
	DefaultSendBudget = 64 << 20
	// largeResponse is the size from which a response takes from the
	// budget: the first full CDS or EDS of a large mesh, not the small
	// responses of churn, which never wait.
	largeResponse = 128 << 10
	// maxHold bounds how long a response holds its share when its client
	// neither acknowledges it nor ends the stream.
	maxHold = 5 * time.Second
)

// sendBudget bounds the bytes of large responses in flight, so that a
// control plane's memory does not grow with the number of proxies that
// connect at once. gRPC marshals a response into a buffer that lives until
// the transport has written the last byte of it, which is as slow as the
// client reads; 200 proxies that connect together to a mesh of 2,000
// services would otherwise hold 200 copies of a 1 MB CDS and of a 1 MB EDS
// response at once. A large response takes its size from the budget before
// it is marshaled and gives it back when its client answers it (the next
// request of its type on the stream: an ACK or a NACK, sent only once the
// whole response arrived), when the stream ends, or after maxHold.
// Requests are served in order (FIFO), so nobody starves.
type sendBudget struct {
	sem   *semaphore.Weighted
	limit int64
	m     *metrics
}

// newSendBudget returns nil, no budget, for limit < 0.
func newSendBudget(limit int64, m *metrics) *sendBudget {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = DefaultSendBudget
	}
	return &sendBudget{sem: semaphore.NewWeighted(limit), limit: limit, m: m}
}

// hold is one response's share of the budget.
type hold struct {
	n     int64
	once  sync.Once
	b     *sendBudget
	timer *time.Timer
}

// release gives the share back, once; the maxHold timer calls it.
func (h *hold) release() {
	h.once.Do(func() {
		h.b.sem.Release(h.n)
		h.b.m.sendBudgetBytes.Sub(float64(h.n))
	})
}

// give releases the share from the stream's side (the caller got h from
// streamHolds under its lock, after timer was set) and stops the timer.
func (h *hold) give() {
	h.timer.Stop()
	h.release()
}

// streamHolds are the shares a stream holds, by type URL.
type streamHolds struct {
	b  *sendBudget
	mu sync.Mutex
	by map[string][]*hold
}

// take waits, if m is a large response, for its share of the budget and
// records it under its type; it returns an error only when ctx ends first.
func (s *streamHolds) take(ctx context.Context, m any) error {
	if s == nil || s.b == nil {
		return nil
	}
	var typeURL string
	var size int
	switch r := m.(type) {
	case *discoverygrpc.DiscoveryResponse:
		typeURL, size = r.GetTypeUrl(), proto.Size(r)
	case *discoverygrpc.DeltaDiscoveryResponse:
		typeURL, size = r.GetTypeUrl(), proto.Size(r)
	default:
		return nil
	}
	if size < largeResponse {
		return nil
	}
	n := min(int64(size), s.b.limit)
	if !s.b.sem.TryAcquire(n) {
		s.b.m.sendBudgetWaits.Inc()
		if err := s.b.sem.Acquire(ctx, n); err != nil {
			return err
		}
	}
	s.b.m.sendBudgetBytes.Add(float64(n))
	h := &hold{n: n, b: s.b}
	h.timer = time.AfterFunc(maxHold, h.release)
	s.mu.Lock()
	if s.by == nil {
		s.by = make(map[string][]*hold)
	}
	s.by[typeURL] = append(s.by[typeURL], h)
	s.mu.Unlock()
	return nil
}

// answered gives back the shares of typeURL's responses: the client sent
// a request of that type after them.
func (s *streamHolds) answered(typeURL string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	hs := s.by[typeURL]
	delete(s.by, typeURL)
	s.mu.Unlock()
	for _, h := range hs {
		h.give()
	}
}

// releaseAll gives back every share: the stream ended.
func (s *streamHolds) releaseAll() {
	if s == nil {
		return
	}
	s.mu.Lock()
	by := s.by
	s.by = nil
	s.mu.Unlock()
	for _, hs := range by {
		for _, h := range hs {
			h.give()
		}
	}
}

// requestType returns the type URL of an ADS request that answers an
// earlier response (it carries that response's nonce), or "".
func requestType(m any) string {
	switch r := m.(type) {
	case *discoverygrpc.DiscoveryRequest:
		if r.GetResponseNonce() != "" {
			return r.GetTypeUrl()
		}
	case *discoverygrpc.DeltaDiscoveryRequest:
		if r.GetResponseNonce() != "" {
			return r.GetTypeUrl()
		}
	}
	return ""
}
