package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Sink receives every published model snapshot with what changed since the
// previous one it received. Publish is called from the publish loop, one
// call at a time, sinks in registration order; it must not block for long
// (a slow proxy stream is the sink's to drop, not the loop's to wait for).
// The first call a sink gets has Changes.Full set.
type Sink interface {
	Publish(snap *model.Snapshot, changes model.Changes)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(snap *model.Snapshot, changes model.Changes)

// Publish calls f.
func (f SinkFunc) Publish(snap *model.Snapshot, changes model.Changes) { f(snap, changes) }

var _ Sink = SinkFunc(nil)

// Defaults of the publish loop.
const (
	DefaultDebounce    = 5 * time.Millisecond
	DefaultMaxDebounce = 100 * time.Millisecond
)

// publisher is the publish loop: writers into the store signal it (without
// blocking), it waits for a quiet period (debounce) but never longer than
// maxDelay after the first signal, then takes the store's changes and a
// snapshot and hands both to every sink.
type publisher struct {
	store    *model.Store
	sinks    []Sink
	debounce time.Duration
	maxDelay time.Duration
	signal   chan struct{}
	latest   atomic.Pointer[model.Snapshot]
	// open: sinks receive snapshots (from the end of the initial sync on).
	open atomic.Bool

	// Owned by the loop goroutine.
	sentFirst bool

	duration prometheus.Histogram
	count    prometheus.Counter
}

func newPublisher(store *model.Store, sinks []Sink, debounce, maxDelay time.Duration) *publisher {
	return &publisher{
		store:    store,
		sinks:    sinks,
		debounce: debounce,
		maxDelay: maxDelay,
		signal:   make(chan struct{}, 1),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causeway_publish_duration_seconds",
			Help:    "Time to take the model's changes and snapshot and hand them to every sink.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25},
		}),
		count: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_publishes_total",
			Help: "Model snapshots published.",
		}),
	}
}

// notify tells the loop that the store changed. It never blocks.
func (p *publisher) notify() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// openSinks starts handing snapshots to the sinks and publishes at once.
func (p *publisher) openSinks() {
	p.open.Store(true)
	p.notify()
}

// run is the loop; it returns when ctx is done.
func (p *publisher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.signal:
		}
		first := time.Now()
		timer.Reset(p.debounce)
	quiet:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-p.signal:
				// More churn: wait for quiet again, up to maxDelay in all.
				left := p.maxDelay - time.Since(first)
				if left <= 0 {
					timer.Stop()
					break quiet
				}
				timer.Reset(min(p.debounce, left))
			case <-timer.C:
				break quiet
			}
		}
		p.publish()
	}
}

// publish takes the changes and a snapshot and hands them to the sinks.
func (p *publisher) publish() {
	start := time.Now()
	changes := p.store.TakeChanges()
	snap := p.store.Snapshot()
	p.latest.Store(snap)
	if p.open.Load() {
		if !p.sentFirst {
			changes.Full = true
			p.sentFirst = true
		}
		if !changes.Empty() {
			for _, s := range p.sinks {
				s.Publish(snap, changes)
			}
		}
	}
	p.duration.Observe(time.Since(start).Seconds())
	p.count.Inc()
}
