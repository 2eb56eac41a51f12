package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// watchRef is the reference the figures are read against: the harness's
// own watch of each cluster's EndpointSlices records when the API server
// announced each change. Write to announcement is the least any watcher,
// the control plane's informers included, can take; the control plane's own
// share of a delivery is what comes after it.
type watchRef struct {
	clusters []*benchCluster
	logs     []*changeLog
	// slot maps an EndpointSlice's name to its service index, per cluster.
	slot []map[string]int
}

func newWatchRef(clusters []*benchCluster, logs []*changeLog) *watchRef {
	r := &watchRef{clusters: clusters, logs: logs, slot: make([]map[string]int, len(clusters))}
	for ci, bc := range clusters {
		bc.mu.Lock()
		m := make(map[string]int, len(bc.slices))
		for i, s := range bc.slices {
			m[s.Name] = i
		}
		bc.mu.Unlock()
		r.slot[ci] = m
	}
	return r
}

// start lists each cluster's EndpointSlices once (for a resource version)
// and watches them from there until ctx ends, re-watching when the API
// server ends a watch.
func (r *watchRef) start(ctx context.Context) error {
	for ci, bc := range r.clusters {
		list, err := bc.cs.DiscoveryV1().EndpointSlices(benchNamespace).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil {
			return fmt.Errorf("bench: list the EndpointSlices of %s for the reference watch: %w", bc.id, err)
		}
		go r.run(ctx, ci, list.ResourceVersion)
	}
	return nil
}

func (r *watchRef) run(ctx context.Context, ci int, rv string) {
	bc := r.clusters[ci]
	for ctx.Err() == nil {
		w, err := bc.cs.DiscoveryV1().EndpointSlices(benchNamespace).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			rv = s.ResourceVersion
			if ev.Type == watch.Modified {
				r.seen(ci, s, time.Now())
			}
		}
		w.Stop()
	}
}

// seen marks the change of slice s whose new address s now holds as
// announced at now.
func (r *watchRef) seen(ci int, s *discoveryv1.EndpointSlice, now time.Time) {
	i, ok := r.slot[ci][s.Name]
	if !ok {
		return
	}
	ser := r.logs[ci].byName[clusterName(serviceHost(i), servicePort)]
	ser.mu.Lock()
	defer ser.mu.Unlock()
	for _, c := range slices.Backward(ser.changes) {
		if !c.announced.IsZero() {
			break
		}
		for _, e := range s.Endpoints {
			if slices.Contains(e.Addresses, c.ip) {
				c.announced = now
				return
			}
		}
	}
}

// phaseRef summarizes, for the changes of one phase, the time from the
// write to the API server's answer and to its watch event.
func phaseRef(logs []*changeLog, phase int) (write, announce Latency) {
	var ws, as []time.Duration
	for _, l := range logs {
		for _, s := range l.byName {
			s.mu.Lock()
			for _, c := range s.changes {
				if c.phase != phase || c.void {
					continue
				}
				if c.written > 0 {
					ws = append(ws, c.written)
				}
				if !c.announced.IsZero() {
					as = append(as, c.announced.Sub(c.t0))
				}
			}
			s.mu.Unlock()
		}
	}
	return summarize(ws), summarize(as)
}
