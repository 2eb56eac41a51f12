package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// startWatches watches, in the config cluster, the Lease and the root
// ConfigMaps of every namespace, from now on, until ctx ends.
func (f *failoverRun) startWatches(ctx context.Context, wg *sync.WaitGroup) error {
	cs := f.w.clusters[0].cs
	leases := cs.CoordinationV1().Leases(systemNamespace)
	ll, err := leases.List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", leaseName).String()})
	if err != nil {
		return fmt.Errorf("bench: list the leader Lease: %w", err)
	}
	for i := range ll.Items {
		f.addLease(&ll.Items[i])
	}
	lw, err := leases.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", leaseName).String(),
		ResourceVersion: ll.ResourceVersion,
	})
	if err != nil {
		return fmt.Errorf("bench: watch the leader Lease: %w", err)
	}
	cms := cs.CoreV1().ConfigMaps("")
	cl, err := cms.List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", rootConfigMap).String(), Limit: 1})
	if err != nil {
		lw.Stop()
		return fmt.Errorf("bench: list root ConfigMaps: %w", err)
	}
	cw, err := cms.Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", rootConfigMap).String(),
		ResourceVersion: cl.ResourceVersion,
	})
	if err != nil {
		lw.Stop()
		return fmt.Errorf("bench: watch root ConfigMaps: %w", err)
	}
	wg.Go(func() {
		f.consume(ctx, lw, func(obj any) {
			if l, ok := obj.(*coordinationv1.Lease); ok {
				f.addLease(l)
			}
		})
	})
	wg.Go(func() {
		f.consume(ctx, cw, func(obj any) {
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				rv, _ := strconv.ParseUint(cm.ResourceVersion, 10, 64)
				f.mu.Lock()
				f.rootWrites = append(f.rootWrites, rootWrite{rv: rv, namespace: cm.Namespace, writer: cm.Annotations[writerAnnotation]})
				f.mu.Unlock()
			}
		})
	})
	return nil
}

// consume hands every added or modified object of w to add until ctx
// ends; a watch that ends early is a failure of the run (a gap would
// hide writes).
func (f *failoverRun) consume(ctx context.Context, w watch.Interface, add func(any)) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				if ctx.Err() == nil {
					f.mu.Lock()
					f.watchErr = errors.New("bench: a watch of the config cluster ended early")
					f.mu.Unlock()
				}
				return
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				add(ev.Object)
			case watch.Error:
				f.mu.Lock()
				f.watchErr = fmt.Errorf("bench: watch of the config cluster: %v", ev.Object)
				f.mu.Unlock()
				return
			}
		}
	}
}

func (f *failoverRun) addLease(l *coordinationv1.Lease) {
	rv, _ := strconv.ParseUint(l.ResourceVersion, 10, 64)
	at := leaseAt{rv: rv, seen: time.Now()}
	sp := l.Spec
	if sp.HolderIdentity != nil {
		at.holder = *sp.HolderIdentity
	}
	if sp.AcquireTime != nil {
		at.acquire = sp.AcquireTime.Time
	}
	if sp.RenewTime != nil {
		at.renew = sp.RenewTime.Time
	}
	if sp.LeaseDurationSeconds != nil {
		at.durationSeconds = *sp.LeaseDurationSeconds
	}
	if sp.LeaseTransitions != nil {
		at.transitions = *sp.LeaseTransitions
	}
	f.mu.Lock()
	f.leases = append(f.leases, at)
	f.mu.Unlock()
}

// makeNamespaces makes a namespace of the config cluster every
// fo.NamespaceEvery until ctx ends, for the leader to publish the root
// into, and returns how many it made.
func (f *failoverRun) makeNamespaces(ctx context.Context) int {
	cs := f.w.clusters[0].cs
	tick := time.NewTicker(f.fo.NamespaceEvery)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: failoverNamespace + strconv.Itoa(n)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err == nil {
			n++
		}
	}
}

// checkRoots waits for the root ConfigMap in every namespace the run made
// and checks each root write seen against the Lease holder at its
// resource version.
func (f *failoverRun) checkRoots(ctx context.Context, fr *FailoverResult) error {
	cs := f.w.clusters[0].cs
	missing := func() []string {
		var out []string
		for i := range fr.NamespacesMade {
			name := failoverNamespace + strconv.Itoa(i)
			if _, err := cs.CoreV1().ConfigMaps(name).Get(ctx, rootConfigMap, metav1.GetOptions{}); err != nil {
				out = append(out, name)
			}
		}
		return out
	}
	_ = f.waitFor(ctx, "root ConfigMaps in the new namespaces", func() bool { return len(missing()) == 0 })
	fr.NamespacesWithoutRoot = missing()
	f.mu.Lock()
	defer f.mu.Unlock()
	fr.RootWrites = len(f.rootWrites)
	fr.RootWritesByNonLeader = nonLeaderWrites(f.leases, f.rootWrites)
	return nil
}

// nonLeaderWrites describes each root write whose writer did not hold the
// Lease at the write's resource version: the holder of the last Lease
// version before it. leases are in resource-version order.
func nonLeaderWrites(leases []leaseAt, writes []rootWrite) []string {
	var out []string
	for _, w := range writes {
		holder := ""
		for _, l := range leases {
			if l.rv > w.rv {
				break
			}
			holder = l.holder
		}
		if w.writer == "" || w.writer != holder {
			out = append(out, fmt.Sprintf("%s/%s at resource version %d written by %q while %q held the Lease", w.namespace, rootConfigMap, w.rv, w.writer, holder))
		}
	}
	return out
}

// checkLease records the holders over time and every change of holder
// made while the previous holder's lease was still valid.
func (f *failoverRun) checkLease(fr *FailoverResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fr.LeaseUpdates = len(f.leases)
	fr.LeaderChanges, fr.Overlaps = leaseHistory(f.leases)
}

// leaseHistory sorts the Lease versions by resource version and returns
// the holders over time and each change of holder made before the
// previous holder's lease expired (its last renewal plus its duration).
func leaseHistory(leases []leaseAt) (changes []LeaderChange, overlaps []string) {
	slices.SortStableFunc(leases, func(a, b leaseAt) int { return compareUint(a.rv, b.rv) })
	var prev *leaseAt
	for i := range leases {
		l := &leases[i]
		if prev == nil || l.holder != prev.holder {
			changes = append(changes, LeaderChange{Holder: l.holder, Seen: l.seen})
		}
		if prev != nil && prev.holder != "" && l.holder != "" && l.holder != prev.holder {
			expires := prev.renew.Add(time.Duration(prev.durationSeconds) * time.Second)
			if l.acquire.Before(expires) {
				overlaps = append(overlaps, fmt.Sprintf("%s took the Lease at %s while %s held it until %s",
					l.holder, l.acquire.Format(time.RFC3339Nano), prev.holder, expires.Format(time.RFC3339Nano)))
			}
		}
		prev = l
	}
	return changes, overlaps
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// failoverFailures lists what makes a failover run invalid.
func (r *Results) failoverFailures() []string {
	fr := r.Failover
	if fr == nil {
		return nil
	}
	var out []string
	for i := range fr.Events {
		ev := &fr.Events[i]
		if len(ev.NotReconverged) > 0 {
			out = append(out, fmt.Sprintf("after %s to %s, %d proxies did not hold a complete view again: %v", ev.Signal, ev.Replica, len(ev.NotReconverged), ev.NotReconverged[:min(5, len(ev.NotReconverged))]))
		}
	}
	for _, o := range fr.Overlaps {
		out = append(out, "two leaders: "+o)
	}
	for _, w := range fr.RootWritesByNonLeader[:min(5, len(fr.RootWritesByNonLeader))] {
		out = append(out, "root ConfigMap not written by the leader: "+w)
	}
	if len(fr.NamespacesWithoutRoot) > 0 {
		out = append(out, fmt.Sprintf("%d namespaces never got the root ConfigMap: %v", len(fr.NamespacesWithoutRoot), fr.NamespacesWithoutRoot[:min(5, len(fr.NamespacesWithoutRoot))]))
	}
	if len(fr.Events) < 2 {
		out = append(out, fmt.Sprintf("the failover sequence stopped after %d of 2 events", len(fr.Events)))
	}
	return out
}

// writeFailover prints a failover run's events and checks.
func (r *Results) writeFailover(w io.Writer) {
	fr := r.Failover
	fmt.Fprintf(w, "failover: %d delta + %d SotW proxies over %v, lease %gs\n", fr.DeltaProxies, fr.SotWProxies, fr.Replicas, fr.LeaseDurationSeconds)
	for i := range fr.Events {
		ev := &fr.Events[i]
		fmt.Fprintf(w, "  %s to %s (leader %t): %d proxies moved; reconnect p50 %.0f ms max %.0f ms; complete view p50 %.0f ms max %.0f ms; %s leads after %.2fs; exited after %.2fs\n",
			ev.Signal, ev.Replica, ev.WasLeader, ev.MovedProxies, ev.Reconnect.P50, ev.Reconnect.Max, ev.Reconverge.P50, ev.Reconverge.Max, ev.NewLeader, ev.LeaderSeconds, ev.ExitSeconds)
	}
	var holders []string
	for _, c := range fr.LeaderChanges {
		holders = append(holders, cmp.Or(c.Holder, "(released)"))
	}
	fmt.Fprintf(w, "  leaders %v over %d Lease writes, %d overlaps; %d root ConfigMap writes, %d not by the leader; %d namespaces made, %d without root\n",
		holders, fr.LeaseUpdates, len(fr.Overlaps), fr.RootWrites, len(fr.RootWritesByNonLeader), fr.NamespacesMade, len(fr.NamespacesWithoutRoot))
	for name, rss := range fr.PeakRSSBytes {
		fmt.Fprintf(w, "  %s peak RSS %.0f MiB\n", name, mibOf(rss))
	}
	fmt.Fprintln(w)
}
