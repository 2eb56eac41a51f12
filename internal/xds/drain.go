package xds

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errDraining ends the streams a drain closes, and refuses the streams that
// open during one: Unavailable, which Envoy and grpc-go answer by opening a
// new stream, after their back-off, on a new connection (the old one got a
// GOAWAY), which the Service sends to another replica.
var errDraining = status.Error(codes.Unavailable,
	"the control plane is draining (shutting down): reconnect, to another replica")

// drainer tracks the server's open ADS streams, so that a drain can refuse
// new ones and end the open ones a few at a time.
type drainer struct {
	// pause waits until t, or returns ctx's error when ctx ends first;
	// tests replace it to step a drain by hand.
	pause func(ctx context.Context, t time.Time) error

	mu       sync.Mutex
	draining bool
	seq      uint64
	streams  map[*drainStream]struct{}
}

// drainStream is one open ADS stream as the drainer sees it.
type drainStream struct {
	seq uint64
	// closing is closed when a drain ends the stream.
	closing chan struct{}
	// wake reaches the stream's handler (nil until the stream is wrapped;
	// a stream wrapped after its drain sees closing when it makes its
	// first watch or send).
	wake atomic.Pointer[drainWake]
	once sync.Once
}

// close ends the stream: its sends and watches fail from now on, and an
// idle handler is woken to find out.
func (ds *drainStream) close() {
	ds.once.Do(func() {
		close(ds.closing)
		if w := ds.wake.Load(); w != nil {
			w.wake()
		}
	})
}

func newDrainer() *drainer {
	return &drainer{pause: sleepUntil, streams: make(map[*drainStream]struct{})}
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// join registers a new stream; during a drain it refuses it.
func (d *drainer) join() (*drainStream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return nil, errDraining
	}
	d.seq++
	ds := &drainStream{seq: d.seq, closing: make(chan struct{})}
	d.streams[ds] = struct{}{}
	return ds, nil
}

// leave forgets a stream that ended.
func (d *drainer) leave(ds *drainStream) {
	d.mu.Lock()
	delete(d.streams, ds)
	d.mu.Unlock()
}

// start marks the drainer draining and returns the open streams, oldest
// first.
func (d *drainer) start() []*drainStream {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	open := make([]*drainStream, 0, len(d.streams))
	for ds := range d.streams {
		open = append(open, ds)
	}
	slices.SortFunc(open, func(a, b *drainStream) int { return cmp.Compare(a.seq, b.seq) })
	return open
}

// Drain refuses every new ADS stream from now on (Unavailable) and ends
// the open ones, oldest first, spread evenly over window: of n streams,
// the i-th (from 0) ends i*window/n after the start, with Unavailable, so
// that their proxies reconnect to another replica a few at a time rather
// than all at once. A window of zero or less ends every stream at once;
// so does ctx ending before the schedule is through. Drain returns the
// number of streams it ended, once it told the last one to end; the
// streams' handlers return at once, and gRPC's GracefulStop, which the
// caller runs beside Drain to send every connection a GOAWAY, returns
// after them.
//
// A drain cannot be undone: the server is on its way out.
func (s *Server) Drain(ctx context.Context, window time.Duration) int {
	open := s.drain.start()
	s.log.Info("draining xDS streams", "streams", len(open), "window", window)
	if len(open) == 0 {
		return 0
	}
	begin := time.Now()
	for i, ds := range open {
		if window > 0 && i > 0 {
			at := begin.Add(window * time.Duration(i) / time.Duration(len(open)))
			if err := s.drain.pause(ctx, at); err != nil {
				s.log.Info("drain window over; ending the remaining xDS streams at once", "remaining", len(open)-i)
				for _, rest := range open[i:] {
					rest.close()
				}
				break
			}
		}
		ds.close()
	}
	s.metrics.drained.WithLabelValues("closed").Add(float64(len(open)))
	return len(open)
}
