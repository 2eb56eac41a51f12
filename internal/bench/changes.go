package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// change is one write of the churn: endpoint slot of an EndpointSlice moved
// to the new address ip, written at t0 (just before the Update call).
type change struct {
	ip    string
	t0    time.Time
	phase int
	// written is how long the Update call took (the API server's answer,
	// the change committed); announced is when the harness's reference
	// watch saw it (see watchRef).
	written   time.Duration
	announced time.Time
	// void marks a change whose write failed: no proxy can see it.
	void bool
}

// series is the changes of one EndpointSlice, in write order (the writes
// of one slice never overlap).
type series struct {
	mu      sync.Mutex
	changes []*change
}

// changeLog is every change of one cluster, by EDS name of the changed
// service. Its map is built before the proxies start and only read after.
type changeLog struct {
	byName map[string]*series
}

func newChangeLog(services int) *changeLog {
	l := &changeLog{byName: make(map[string]*series, services)}
	for i := range services {
		l.byName[clusterName(serviceHost(i), servicePort)] = &series{}
	}
	return l
}

// phaseStats counts, for one phase, the pairs of (change, proxy that must
// see it) expected and delivered.
type phaseStats struct {
	expected  atomic.Int64
	delivered atomic.Int64
	changes   atomic.Int64
	writeErrs atomic.Int64
	// lagging counts changes written more than one interval after they
	// were due: the harness could not keep the asked rate.
	lagging atomic.Int64
}

// deliver records that proxy p received, at now, resource name with the
// endpoint addresses ips: every change of the series up to the last one
// whose address is in ips is delivered to p.
func (s *series) deliver(p *proxy, name string, ips map[string]struct{}, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := p.cursor[name]
	last := -1
	for j := len(s.changes) - 1; j >= cur; j-- {
		if _, ok := ips[s.changes[j].ip]; ok {
			last = j
			break
		}
	}
	if last < 0 {
		return
	}
	for _, c := range s.changes[cur : last+1] {
		if !c.void {
			p.recordDelivery(c.phase, now.Sub(c.t0))
		}
	}
	p.cursor[name] = last + 1
}

// undelivered counts the changes of phase that p has not received. The
// caller holds p.mu.
func (s *series) undelivered(p *proxy, name string, phase int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.changes[min(p.cursor[name], len(s.changes)):] {
		if c.phase == phase && !c.void {
			n++
		}
	}
	return n
}

// churner writes the changes of a phase at a fixed rate.
type churner struct {
	clusters []*benchCluster
	logs     []*changeLog // by cluster, same order
	// audience returns how many proxies must see a change of cluster i now.
	audience func(i int) int
	rng      *rand.Rand
	rngMu    sync.Mutex
	// stop, if not nil, ends the writing early (the changes due are not
	// written), as the end of ctx does, but lets the writes under way
	// finish.
	stop <-chan struct{}
}

// run writes rate x d changes, change n due at n/rate seconds from the
// start, alternating clusters, with enough writers that a slow Update does
// not hold the next one back. Pacing is by that absolute schedule, not by
// a ticker (which drops ticks when the harness is starved of CPU): a late
// change is written at once and counted as lagging.
func (ch *churner) run(ctx context.Context, phase int, rate float64, d time.Duration, st *phaseStats) {
	const writers = 32
	jobs := make(chan int, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for n := range jobs {
				ch.write(ctx, phase, n%len(ch.clusters), st)
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	total := int(rate * d.Seconds())
	begin := time.Now()
	timer := time.NewTimer(0)
	<-timer.C
loop:
	for n := range total {
		due := begin.Add(time.Duration(n) * interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				break loop
			case <-ch.stop:
				break loop
			case <-timer.C:
			}
		} else if -wait > interval {
			st.lagging.Add(1)
		}
		select {
		case jobs <- n:
		case <-ctx.Done():
			break loop
		case <-ch.stop:
			break loop
		}
	}
	timer.Stop()
	close(jobs)
	wg.Wait()
}

// write moves one endpoint of a random idle EndpointSlice of cluster ci to
// a new address.
func (ch *churner) write(ctx context.Context, phase, ci int, st *phaseStats) {
	bc := ch.clusters[ci]
	ch.rngMu.Lock()
	i := ch.rng.IntN(len(bc.slices))
	bc.mu.Lock()
	for tries := 0; bc.busy[i] && tries < len(bc.slices); tries++ {
		i = (i + 1) % len(bc.slices)
	}
	if bc.busy[i] {
		bc.mu.Unlock()
		ch.rngMu.Unlock()
		st.lagging.Add(1)
		return
	}
	bc.busy[i] = true
	old := bc.slices[i]
	slot := ch.rng.IntN(len(old.Endpoints))
	ip := movedIP(bc.index, bc.next)
	bc.next++
	bc.mu.Unlock()
	ch.rngMu.Unlock()

	updated := old.DeepCopy()
	updated.Endpoints[slot].Addresses = []string{ip}
	s := ch.logs[ci].byName[clusterName(serviceHost(i), servicePort)]
	c := &change{ip: ip, phase: phase}
	pairs := int64(ch.audience(ci))

	s.mu.Lock()
	c.t0 = time.Now()
	s.changes = append(s.changes, c)
	s.mu.Unlock()
	st.changes.Add(1)
	st.expected.Add(pairs)
	got, err := bc.cs.DiscoveryV1().EndpointSlices(updated.Namespace).Update(ctx, updated, metav1.UpdateOptions{})

	took := time.Since(c.t0)
	bc.mu.Lock()
	if err == nil {
		bc.slices[i] = got
	}
	bc.busy[i] = false
	bc.mu.Unlock()
	if err != nil {
		s.mu.Lock()
		c.void = true
		s.mu.Unlock()
		st.changes.Add(-1)
		st.expected.Add(-pairs)
		st.writeErrs.Add(1)
		return
	}
	s.mu.Lock()
	c.written = took
	s.mu.Unlock()
}
