package xds

import (
	"context"
	"sync"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	// DefaultSendBudgetWait is how long a response may wait for its share
	// (Config.SendBudgetWait) before its stream is closed. Waiting is
	// normal when many proxies connect together: with 1,000 proxies on a
	// mesh of 5,000 services the last in the queue waited longer than 30 s
	// (see timedStream.SendMsg); two minutes leaves room for that.
	DefaultSendBudgetWait = 2 * time.Minute
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
//
// One client connection holds at most connLimit of the budget at once: its
// streams' further large responses wait in a queue of the connection's
// own, not in the shared one. A client that opens thousands of streams on
// a connection and reads none of them (3,000 did keep a new sidecar's
// first CDS waiting for more than a minute) thus takes connLimit, and
// other proxies find the rest. A response that waits longer than wait for
// its shares fails its stream (ResourceExhausted), freeing its place.
type sendBudget struct {
	sem       *semaphore.Weighted
	limit     int64
	connLimit int64
	wait      time.Duration
	m         *metrics

	mu    sync.Mutex
	conns map[string]*connBudget
}

// connBudget is one client connection's share of the budget.
type connBudget struct {
	key   string
	sem   *semaphore.Weighted
	limit int64
	// streams counts the streams of the connection (sendBudget.mu).
	streams int
}

// newSendBudget returns nil, no budget, for limit < 0. connLimit < 0
// means no per-connection bound; wait bounds the wait for a share.
func newSendBudget(limit, connLimit int64, wait time.Duration, m *metrics) *sendBudget {
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = DefaultSendBudget
	}
	if connLimit == 0 {
		connLimit = max(limit/8, largeResponse)
	}
	if wait <= 0 {
		wait = DefaultSendBudgetWait
	}
	return &sendBudget{sem: semaphore.NewWeighted(limit), limit: limit, connLimit: connLimit, wait: wait, m: m,
		conns: make(map[string]*connBudget)}
}

// conn returns the share of connection key (the client's address), for a
// new stream of it; give it back with leave.
func (b *sendBudget) conn(key string) *connBudget {
	if b == nil || b.connLimit < 0 || key == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cb := b.conns[key]
	if cb == nil {
		cb = &connBudget{key: key, sem: semaphore.NewWeighted(b.connLimit), limit: b.connLimit}
		b.conns[key] = cb
	}
	cb.streams++
	return cb
}

// leave forgets a stream of cb's connection; the last one frees it.
func (b *sendBudget) leave(cb *connBudget) {
	if cb == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cb.streams--
	if cb.streams == 0 && b.conns[cb.key] == cb {
		delete(b.conns, cb.key)
	}
}

// hold is one response's share of the budget.
type hold struct {
	n     int64
	cn    int64 // the connection's share, of cb
	cb    *connBudget
	once  sync.Once
	b     *sendBudget
	timer *time.Timer
}

// release gives the share back, once; the maxHold timer calls it.
func (h *hold) release() {
	h.once.Do(func() {
		h.b.sem.Release(h.n)
		if h.cb != nil {
			h.cb.sem.Release(h.cn)
		}
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
	b *sendBudget
	// cb is the share of the stream's connection; nil: no bound.
	cb *connBudget
	mu sync.Mutex
	by map[string][]*hold
}

// take waits, if m is a large response, for its share of the budget (its
// connection's first, then the shared one) and records it under its type.
// It returns ctx's error if ctx ends first, and a ResourceExhausted status
// if the wait passes the budget's wait.
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
	var cn int64
	if s.cb != nil {
		cn = min(n, s.cb.limit)
	}
	gotConn := s.cb == nil || s.cb.sem.TryAcquire(cn)
	if !gotConn || !s.b.sem.TryAcquire(n) {
		s.b.m.sendBudgetWaits.Inc()
		if err := s.wait(ctx, n, cn, gotConn); err != nil {
			return err
		}
	}
	s.b.m.sendBudgetBytes.Add(float64(n))
	h := &hold{n: n, cn: cn, cb: s.cb, b: s.b}
	h.timer = time.AfterFunc(maxHold, h.release)
	s.mu.Lock()
	if s.by == nil {
		s.by = make(map[string][]*hold)
	}
	s.by[typeURL] = append(s.by[typeURL], h)
	s.mu.Unlock()
	return nil
}

// wait waits for n of the shared budget and, unless gotConn, cn of the
// connection's, for at most the budget's wait.
func (s *streamHolds) wait(ctx context.Context, n, cn int64, gotConn bool) error {
	wctx, cancel := context.WithTimeout(ctx, s.b.wait)
	defer cancel()
	err := func() error {
		if !gotConn {
			if err := s.cb.sem.Acquire(wctx, cn); err != nil {
				return err
			}
			gotConn = true
		}
		return s.b.sem.Acquire(wctx, n)
	}()
	if err == nil {
		return nil
	}
	if gotConn && s.cb != nil {
		s.cb.sem.Release(cn)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.b.m.sendBudgetTimeouts.Inc()
	return status.Errorf(codes.ResourceExhausted,
		"a %d-byte xDS response waited longer than %s for the send budget (--xds-send-budget), held by responses to "+
			"other clients or to this connection's other streams that were not read; closing the stream: reconnect, "+
			"and read every stream the client opens", n, s.b.wait)
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
