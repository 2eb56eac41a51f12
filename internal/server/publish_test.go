package server

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

// recorder is a sink that records when it was called and with what.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	calls []call
}

type call struct {
	at       time.Duration
	full     bool
	services []model.Host
}

func (r *recorder) Publish(_ *model.Snapshot, c model.Changes) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hs []model.Host
	for h := range c.Services {
		hs = append(hs, h)
	}
	r.calls = append(r.calls, call{at: time.Since(r.start), full: c.Full, services: hs})
}

func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func svc(name string) *model.Service {
	return &model.Service{Cluster: "c1", Namespace: "ns", Name: name, Ports: []model.ServicePort{{Name: "http", Port: 80}}}
}

func TestPublishDebounce(t *testing.T) {
	// The sleeps below advance the bubble's fake clock: they are the
	// debounce timing under test, not waits.
	synctest.Test(t, func(t *testing.T) {
		store := model.NewStore(model.Config{})
		rec := &recorder{start: time.Now()}
		p := newPublisher(store, []Sink{rec}, 5*time.Millisecond, 100*time.Millisecond)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { p.run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		// Before the sinks open, snapshots are kept but not handed out.
		store.UpsertService(svc("a"))
		p.notify()
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("sink called before open: %+v", got)
		}
		if p.latest.Load() == nil || p.latest.Load().Service(model.ServiceHost("ns", "a", "")) == nil {
			t.Fatal("no snapshot kept before open")
		}

		// Opening publishes at once, with Full set.
		rec.start = time.Now()
		p.openSinks()
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if d := cmp.Diff([]call{{at: 5 * time.Millisecond, full: true}}, rec.take(), cmp.AllowUnexported(call{})); d != "" {
			t.Fatalf("first publish (-want +got)\n%s", d)
		}

		// One change: published one debounce later, just that service.
		rec.start = time.Now()
		store.UpsertService(svc("b"))
		p.notify()
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if d := cmp.Diff([]call{{at: 5 * time.Millisecond, services: []model.Host{"b.ns.svc.cluster.local"}}}, rec.take(), cmp.AllowUnexported(call{})); d != "" {
			t.Fatalf("single change (-want +got)\n%s", d)
		}

		// A burst within the quiet period: one publish after the last
		// change plus the debounce.
		rec.start = time.Now()
		for i := range 3 {
			store.UpsertService(svc("c"))
			p.notify()
			if i < 2 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if d := cmp.Diff([]call{{at: 9 * time.Millisecond, services: []model.Host{"c.ns.svc.cluster.local"}}}, rec.take(), cmp.AllowUnexported(call{})); d != "" {
			t.Fatalf("burst (-want +got)\n%s", d)
		}

		// Constant churn (a change every 2ms for 300ms): a publish at
		// least every 100ms.
		rec.start = time.Now()
		for i := range 150 {
			s := svc("d")
			s.Ports[0].Port = uint32(1000 + i)
			store.UpsertService(s)
			p.notify()
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		got := rec.take()
		var at []time.Duration
		for _, c := range got {
			at = append(at, c.at)
		}
		if d := cmp.Diff([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}, at); d != "" {
			t.Fatalf("publish times under churn (-want +got)\n%s", d)
		}

		// A signal with nothing changed calls no sink.
		p.notify()
		time.Sleep(20 * time.Millisecond)
		synctest.Wait()
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("sink called without a change: %+v", got)
		}
	})
}
