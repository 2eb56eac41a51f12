package leader

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestGateRunsWritersOnlyWhileLeading: a writer starts with a term, stops
// when it ends, and the term is not over before the writer returned.
func TestGateRunsWritersOnlyWhileLeading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		var running atomic.Int32
		var runs atomic.Int32
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.Do(ctx, func(ctx context.Context) {
				running.Add(1)
				runs.Add(1)
				<-ctx.Done()
				time.Sleep(time.Second) // a slow writer: the term waits for it
				running.Add(-1)
			})
		}()
		synctest.Wait()
		if running.Load() != 0 {
			t.Fatal("writer runs before any term")
		}
		for term := 1; term <= 2; term++ {
			tctx, end := context.WithCancel(t.Context())
			led := make(chan struct{})
			go func() { defer close(led); g.lead(tctx) }()
			synctest.Wait()
			if running.Load() != 1 || runs.Load() != int32(term) {
				t.Fatalf("term %d: running %d, runs %d", term, running.Load(), runs.Load())
			}
			end()
			<-led
			if running.Load() != 0 {
				t.Fatalf("term %d ended while its writer still runs", term)
			}
		}
		cancel()
		<-done
	})
}

// TestAlwaysOpenGate: without election the writer runs at once until ctx
// ends.
func TestAlwaysOpenGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := AlwaysOpen()
		ctx, cancel := context.WithCancel(t.Context())
		started := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.Do(ctx, func(ctx context.Context) { close(started); <-ctx.Done() })
		}()
		<-started
		cancel()
		<-done
	})
}

// TestElectorHandsOver: of two electors on one Lease, one leads and runs
// the writer; when its context ends its writer stops before it releases
// the Lease, and the other takes over. At no time do two writers run.
func TestElectorHandsOver(t *testing.T) {
	client := fake.NewClientset()
	log := testkit.DiscardLogger()
	var writing atomic.Int32
	var overlap atomic.Bool
	type replica struct {
		e      *Elector
		cancel context.CancelFunc
		done   chan struct{}
		wrote  atomic.Int32
	}
	replicas := make([]*replica, 2)
	for i, id := range []string{"a", "b"} {
		e, err := New(Config{Client: client, Namespace: "istio-system", Identity: id,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 50 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		r := &replica{e: e, cancel: cancel, done: make(chan struct{})}
		replicas[i] = r
		var wg sync.WaitGroup
		wg.Go(func() {
			e.Gate().Do(ctx, func(ctx context.Context) {
				if writing.Add(1) > 1 {
					overlap.Store(true)
				}
				r.wrote.Add(1)
				<-ctx.Done()
				writing.Add(-1)
			})
		})
		go func() {
			defer close(r.done)
			e.Run(ctx)
			wg.Wait()
		}()
		t.Cleanup(func() { cancel(); <-r.done })
	}
	leaderOf := func() *replica {
		t.Helper()
		for {
			for _, r := range replicas {
				if r.e.Status().IsLeader && r.wrote.Load() > 0 {
					return r
				}
			}
			select {
			case <-t.Context().Done():
				t.Fatal("no leader")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	first := leaderOf()
	var other *replica
	for _, r := range replicas {
		if r != first {
			other = r
		}
	}
	first.cancel()
	<-first.done
	if first.e.Status().IsLeader {
		t.Fatal("the stopped replica still says it leads")
	}
	// Released or already taken by the other, never still held by it.
	l, err := client.CoordinationV1().Leases("istio-system").Get(t.Context(), DefaultLeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := l.Spec.HolderIdentity; h != nil && *h == first.e.cfg.Identity {
		t.Fatalf("lease still held by %s after it stopped", *h)
	}
	if got := leaderOf(); got != other {
		t.Fatal("the other replica did not take over")
	}
	if overlap.Load() {
		t.Fatal("two writers ran at once")
	}
}

func TestCheckDurations(t *testing.T) {
	for _, c := range []struct {
		lease, renew, retry time.Duration
		ok                  bool
	}{
		{15 * time.Second, 10 * time.Second, 2 * time.Second, true},
		{10 * time.Second, 10 * time.Second, 2 * time.Second, false},
		{15 * time.Second, 2 * time.Second, 2 * time.Second, false},
		{15 * time.Second, 10 * time.Second, 0, false},
	} {
		if err := CheckDurations(c.lease, c.renew, c.retry); (err == nil) != c.ok {
			t.Errorf("CheckDurations(%v, %v, %v) = %v", c.lease, c.renew, c.retry, err)
		}
	}
}
