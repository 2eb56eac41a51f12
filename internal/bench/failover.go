package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// Names the failover run relies on: the leader Lease `causeway serve`
// elects with, and the root ConfigMap and the annotation naming the
// replica that wrote it (restated, not imported, so that the check does
// not share the code it checks).
const (
	leaseName         = "causeway-leader"
	rootConfigMap     = "istio-ca-root-cert"
	writerAnnotation  = "causeway.io/written-by"
	failoverNamespace = "failover-ns-"
)

// FailoverConfig configures [Failover]; zero fields take the defaults.
type FailoverConfig struct {
	// Rate is the churn, in changes per second, during the whole
	// sequence. Default 10.
	Rate float64
	// Steady is how long the churn runs before each failure and after
	// the last one. Default 3s.
	Steady time.Duration
	// LeaseDuration, RenewDeadline and RetryPeriod are the replicas'
	// --leader-* flags. Defaults 4s, 3s, 500ms: a killed leader is
	// replaced within seconds, and a loaded 2-core machine still renews
	// in time.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// NamespaceEvery is how often a namespace is made in the config
	// cluster, for the leader to publish the root ConfigMap into.
	// Default 500ms.
	NamespaceEvery time.Duration
	// Timeout bounds each wait: proxies reconnected and complete, a new
	// leader, a restarted replica ready. Default 2m.
	Timeout time.Duration
}

func (f FailoverConfig) withDefaults() FailoverConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if f.Rate == 0 {
		f.Rate = 10
	}
	def(&f.Steady, 3*time.Second)
	def(&f.LeaseDuration, 4*time.Second)
	def(&f.RenewDeadline, 3*time.Second)
	// At least a second: client-go's followers compare the Lease record
	// at a second's precision (LeaderElectionRecord's times are
	// metav1.Time), so two renewals within one second look like one,
	// and a follower may count the lease's duration from the first of
	// them, taking over up to a second early by the Lease's own times.
	def(&f.RetryPeriod, time.Second)
	def(&f.NamespaceEvery, 500*time.Millisecond)
	def(&f.Timeout, 2*time.Minute)
	return f
}

// FailoverResult is what [Failover] measured and checked.
type FailoverResult struct {
	Replicas     []string `json:"replicas"`
	DeltaProxies int      `json:"delta_proxies"`
	SotWProxies  int      `json:"sotw_proxies"`
	// LeaseDurationSeconds is the replicas' --leader-lease-duration.
	LeaseDurationSeconds float64 `json:"lease_duration_seconds"`
	// Events are the failures, in order.
	Events []FailoverEvent `json:"events"`
	// LeaderChanges are the Lease's holders over the run, in order.
	LeaderChanges []LeaderChange `json:"leader_changes"`
	// LeaseUpdates counts the Lease writes seen (renewals included).
	LeaseUpdates int `json:"lease_updates"`
	// Overlaps lists each change of holder made while the previous
	// holder's lease was still valid: two leaders at once (must be empty).
	Overlaps []string `json:"leader_overlaps,omitempty"`
	// RootWrites counts the root ConfigMap writes seen in the config
	// cluster; RootWritesByNonLeader lists those whose writer did not hold
	// the Lease at that write (must be empty).
	RootWrites            int      `json:"root_writes"`
	RootWritesByNonLeader []string `json:"root_writes_by_non_leader,omitempty"`
	// NamespacesMade counts the namespaces the run made in the config
	// cluster; NamespacesWithoutRoot lists those that still had no root
	// ConfigMap at the end (must be empty).
	NamespacesMade        int      `json:"namespaces_made"`
	NamespacesWithoutRoot []string `json:"namespaces_without_root,omitempty"`
	// PeakRSSBytes is each replica process's peak resident set (the
	// restarted one's second life).
	PeakRSSBytes map[string]int64 `json:"peak_rss_bytes"`
	// Logs are the replicas' log files (removed with the work folder).
	Logs []string `json:"logs"`
}

// FailoverEvent is one replica going away.
type FailoverEvent struct {
	// Signal is SIGKILL or SIGTERM; Replica the one that got it.
	Signal    string `json:"signal"`
	Replica   string `json:"replica"`
	WasLeader bool   `json:"was_leader"`
	// MovedProxies had their stream on the replica.
	MovedProxies int `json:"moved_proxies"`
	// Reconnect is, per moved proxy, from the signal to its first
	// response from the other replica; Reconverge to its holding a
	// complete view again (every cluster and its endpoints).
	Reconnect  Latency `json:"reconnect"`
	Reconverge Latency `json:"reconverge"`
	// NotReconverged lists moved proxies that did not hold a complete view
	// again within the timeout.
	NotReconverged []string `json:"not_reconverged,omitempty"`
	// NewLeader holds the Lease after the event; LeaderSeconds is from the
	// signal until it took it (when the victim led).
	NewLeader     string  `json:"new_leader"`
	LeaderSeconds float64 `json:"leader_seconds"`
	// ExitSeconds is from the signal to the process's exit.
	ExitSeconds float64 `json:"exit_seconds"`
}

// LeaderChange is a Lease holder as seen by the run's watch.
type LeaderChange struct {
	Holder string    `json:"holder"`
	Seen   time.Time `json:"seen"`
}

// replica is one `causeway serve` of the run.
type replica struct {
	name      string
	xdsAddr   string
	debugAddr string
	args      []string
	logDir    string
	proc      *serveProcess
	lives     int
	peakRSS   int64
	// down: the run stopped it on purpose.
	down bool
	logs []string
}

func (r *replica) start(bin string) error {
	r.lives++
	logPath := filepath.Join(r.logDir, r.name+"-"+strconv.Itoa(r.lives)+".log")
	sp, err := startServe(bin, r.args, logPath)
	if err != nil {
		return fmt.Errorf("bench: replica %s: %w", r.name, err)
	}
	r.proc, r.down = sp, false
	r.logs = append(r.logs, logPath)
	return nil
}

// recordRSS keeps the process's peak resident set while it runs.
func (r *replica) recordRSS() {
	if r.proc == nil || r.proc.exited() != nil {
		return
	}
	if st, err := readProcStats(r.proc.pid()); err == nil {
		r.peakRSS = max(r.peakRSS, st.PeakRSSBytes)
	}
}

// ready asks the replica's /ready.
func (r *replica) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.debugAddr+"/ready", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Failover runs two replicas of `causeway serve` over the two filled
// clusters, with as many delta as state-of-the-world proxies per network
// (cfg.Proxies in all), spread over both replicas, and churn at fo.Rate
// throughout. It SIGKILLs the replica that leads, waits for its proxies to
// reconnect to the other and for that one to lead, restarts it, then
// SIGTERMs the other, and waits again. It then checks every proxy's view
// against the apiservers, that no change was lost, that the Lease never
// changed hands while its holder's lease was valid, and that every root
// ConfigMap write in the config cluster came from the replica that held
// the Lease at that moment (by resource version: one etcd orders both).
// An error means the run could not be done; a run that found problems
// returns Results whose Failures say so.
func Failover(ctx context.Context, cfg Config, fo FailoverConfig) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	fo = fo.withDefaults()
	// One churn phase through the whole sequence; no stall phase.
	cfg.Rates, cfg.Stall, cfg.StallRate = []float64{fo.Rate}, false, 0
	res := &Results{Time: time.Now().UTC(), Machine: readMachine(), Params: paramsOf(cfg)}
	res.Params.Protocol = "delta+sotw"
	w, err := prepare(ctx, cfg, res)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() { w.close(!ok) }()
	f := &failoverRun{cfg: cfg, fo: fo, w: w, res: res}
	if err := f.run(ctx); err != nil {
		return res, err
	}
	res.Machine.LoadAfter = loadAverage()
	ok = len(res.Failures()) == 0
	return res, nil
}

// failoverRun is the state of one [Failover].
type failoverRun struct {
	cfg      Config
	fo       FailoverConfig
	w        *world
	res      *Results
	sh       *shared
	replicas [2]*replica
	proxies  []*proxy
	audience []int
	begin    time.Time

	// Of the watches of the config cluster, ordered by resource version.
	mu         sync.Mutex
	leases     []leaseAt
	rootWrites []rootWrite
	watchErr   error
}

type leaseAt struct {
	rv              uint64
	holder          string
	acquire, renew  time.Time
	durationSeconds int32
	seen            time.Time
	transitions     int32
}

type rootWrite struct {
	rv        uint64
	namespace string
	writer    string
}

func (f *failoverRun) run(ctx context.Context) error {
	w, cfg, fo := f.w, f.cfg, f.fo
	if err := f.prepareReplicas(); err != nil {
		return err
	}
	fr := &FailoverResult{Replicas: []string{"replica-a", "replica-b"}, LeaseDurationSeconds: fo.LeaseDuration.Seconds(), PeakRSSBytes: map[string]int64{}}
	f.res.Failover = fr
	defer f.stopReplicas(fr)

	// Watch the Lease and the root ConfigMaps of the config cluster from
	// before the replicas start.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watches sync.WaitGroup
	defer watches.Wait()
	defer stopWatch()
	if err := f.startWatches(watchCtx, &watches); err != nil {
		return err
	}

	full := expectedViews(w.objects())
	f.sh = newShared(w.clusters, 1)
	addrs := []string{f.replicas[0].xdsAddr, f.replicas[1].xdsAddr}
	proxyCtx, stopProxies := context.WithCancel(ctx)
	defer f.endProxies(stopProxies)
	f.begin = time.Now()
	for _, r := range f.replicas {
		if err := r.start(cfg.Causeway); err != nil {
			return err
		}
	}
	f.startProxies(proxyCtx, full, addrs, fr)
	if err := f.waitStart(ctx); err != nil {
		return err
	}

	// Churn through the whole sequence.
	endChurn, churnBegin := f.startChurn(ctx)
	defer endChurn()
	endNamespaces := f.startNamespaces(ctx, fr)
	defer endNamespaces()

	if err := f.failAndRecover(ctx, fr); err != nil {
		return err
	}

	// Settle: every change delivered to every proxy, or the timeout.
	writing := time.Since(churnBegin)
	endChurn()
	endNamespaces()
	st := f.sh.phases[0]
	_ = f.waitFor(ctx, "every change delivered", func() bool { return st.delivered.Load() >= st.expected.Load() })
	f.recordChurn(st, writing)

	if err := f.verify(ctx, fr); err != nil {
		return err
	}
	stopWatch()
	watches.Wait()
	f.checkLease(fr)
	return nil
}

// startNamespaces makes namespaces in the background, recording how many
// in fr, until the returned func is called: it stops the maker and waits
// for it to end, and may be called more than once.
func (f *failoverRun) startNamespaces(ctx context.Context, fr *FailoverResult) func() {
	nsDone := make(chan struct{})
	nsCtx, stopNS := context.WithCancel(ctx)
	go func() {
		defer close(nsDone)
		fr.NamespacesMade = f.makeNamespaces(nsCtx)
	}()
	return func() { stopNS(); <-nsDone }
}

// stopReplicas stops the replicas still running and records their logs
// and peak RSS in fr.
func (f *failoverRun) stopReplicas(fr *FailoverResult) {
	for _, r := range f.replicas {
		if r.proc != nil {
			r.recordRSS()
			r.proc.stop()
		}
		fr.Logs = append(fr.Logs, r.logs...)
		fr.PeakRSSBytes[r.name] = r.peakRSS
	}
}

// endProxies stops the proxies (stop cancels their context) and waits
// until every one has ended.
func (f *failoverRun) endProxies(stop context.CancelFunc) {
	stop()
	for _, px := range f.proxies {
		<-px.done
	}
}

// verify compares the proxies' EDS with what the objects imply, then
// checks every root ConfigMap write against the Lease holder of its time.
func (f *failoverRun) verify(ctx context.Context, fr *FailoverResult) error {
	sess := &session{w: f.w, sh: f.sh, proxies: f.proxies}
	if err := sess.verify(ctx, &f.res.Verify); err != nil {
		return err
	}
	return f.checkRoots(ctx, fr)
}

// steady lets the churn run for fo.Steady, watching that the replicas
// and proxies are fine.
func (f *failoverRun) steady(ctx context.Context) error {
	t := time.NewTimer(f.fo.Steady)
	defer t.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return f.failure()
		case <-tick.C:
			for _, r := range f.replicas {
				r.recordRSS()
			}
			if err := f.failure(); err != nil {
				return err
			}
		}
	}
}

// failure returns why the run cannot go on: a replica exited on its own,
// a proxy's stream failed other than by a replica going away, a watch
// failed.
func (f *failoverRun) failure() error {
	for _, r := range f.replicas {
		if err := r.proc.exited(); err != nil && !r.down {
			return fmt.Errorf("bench: replica %s: %w", r.name, err)
		}
	}
	for _, px := range f.proxies {
		px.mu.Lock()
		err := px.err
		px.mu.Unlock()
		if err != nil {
			return fmt.Errorf("bench: proxy %s: %w", px.id, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchErr
}

// waitFor polls cond every 20ms until it holds, or fo.Timeout.
func (f *failoverRun) waitFor(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(f.fo.Timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s: not after %v", what, f.fo.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// waitStart waits for every proxy to hold the full, correct view.
func (f *failoverRun) waitStart(ctx context.Context) error {
	fmt.Fprintf(f.cfg.Progress, "bench: failover: 2 replicas started; waiting for %d proxies to hold the full view\n", len(f.proxies))
	var last time.Time
	err := f.waitFor(ctx, "every proxy full at start", func() bool {
		if f.failure() != nil {
			return true
		}
		for _, px := range f.proxies {
			px.mu.Lock()
			at := px.fullAt
			px.mu.Unlock()
			if at.IsZero() {
				return false
			}
			if at.After(last) {
				last = at
			}
		}
		return true
	})
	if err == nil {
		err = f.failure()
	}
	if err != nil {
		return err
	}
	f.res.Start.Complete = true
	f.res.Start.Seconds = last.Sub(f.begin).Seconds()
	for _, px := range f.proxies {
		px.mu.Lock()
		px.expect = nil
		px.mu.Unlock()
	}
	return nil
}

// leaderIndex waits for a replica to hold the Lease and returns it.
func (f *failoverRun) leaderIndex(ctx context.Context) (int, error) {
	idx := -1
	err := f.waitFor(ctx, "a leader", func() bool {
		idx = f.replicaIndex(f.holder())
		return idx >= 0
	})
	return idx, err
}

func (f *failoverRun) replicaIndex(name string) int {
	for i, r := range f.replicas {
		if r.name == name {
			return i
		}
	}
	return -1
}

// holder is the Lease's holder as last seen by the watch.
func (f *failoverRun) holder() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.leases) == 0 {
		return ""
	}
	return f.leases[len(f.leases)-1].holder
}

// fail signals replica i, waits for the proxies that were on it to
// reconnect to the other replica and hold a complete view, and for the
// other replica to lead.
func (f *failoverRun) fail(ctx context.Context, i int, sig syscall.Signal) (FailoverEvent, error) {
	r, other := f.replicas[i], f.replicas[1-i]
	ev := FailoverEvent{Signal: map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM"}[sig], Replica: r.name, WasLeader: f.holder() == r.name}
	r.recordRSS()
	var moved []*proxy
	for _, px := range f.proxies {
		px.mu.Lock()
		if n := len(px.streams); n > 0 && px.streams[n-1].replica == i {
			moved = append(moved, px)
		}
		px.mu.Unlock()
	}
	ev.MovedProxies = len(moved)
	fmt.Fprintf(f.cfg.Progress, "bench: failover: %s to %s (leader: %t, %d proxies)\n", ev.Signal, r.name, ev.WasLeader, len(moved))
	r.down = true // its exit is no failure
	at := time.Now()
	if err := r.proc.cmd.Process.Signal(sig); err != nil {
		return ev, fmt.Errorf("bench: signal %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	var exitAt time.Time
	go func() {
		<-r.proc.done
		exitAt = time.Now()
		close(exited)
	}()
	// The proxies reconnect, and the other replica leads.
	err := f.waitFor(ctx, "proxies of "+r.name+" moved to "+other.name, func() bool {
		for _, px := range moved {
			if s := px.streamSince(at); s == nil || s.complete.IsZero() {
				return false
			}
		}
		return true
	})
	var reconnect, reconverge []time.Duration
	for _, px := range moved {
		s := px.streamSince(at)
		switch {
		case s == nil || s.complete.IsZero():
			ev.NotReconverged = append(ev.NotReconverged, px.id)
			continue
		case s.replica != 1-i:
			return ev, fmt.Errorf("bench: proxy %s reconnected to the replica that went away", px.id)
		}
		reconnect = append(reconnect, s.firstResp.Sub(at))
		reconverge = append(reconverge, s.complete.Sub(at))
	}
	ev.Reconnect, ev.Reconverge = summarize(reconnect), summarize(reconverge)
	if err != nil {
		return ev, err
	}
	if err := f.waitFor(ctx, other.name+" leads", func() bool { return f.holder() == other.name }); err != nil {
		return ev, err
	}
	ev.NewLeader = other.name
	if ev.WasLeader {
		ev.LeaderSeconds = f.leaderSince(other.name, at).Sub(at).Seconds()
	}
	select {
	case <-exited:
	case <-time.After(f.fo.Timeout):
		return ev, fmt.Errorf("bench: %s did not exit %v after %s", r.name, f.fo.Timeout, ev.Signal)
	}
	ev.ExitSeconds = exitAt.Sub(at).Seconds()
	fmt.Fprintf(f.cfg.Progress, "bench: failover: %d proxies moved to %s: reconnect p50 %.0f ms max %.0f ms, complete view p50 %.0f ms max %.0f ms; %s leads after %.2fs\n",
		len(moved), other.name, ev.Reconnect.P50, ev.Reconnect.Max, ev.Reconverge.P50, ev.Reconverge.Max, other.name, ev.LeaderSeconds)
	return ev, nil
}

// leaderSince is when the watch first saw name hold the Lease after t.
func (f *failoverRun) leaderSince(name string, t time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leases {
		if l.holder == name && !l.seen.Before(t) {
			return l.seen
		}
	}
	return t
}

// prepareReplicas writes the config cluster's kubeconfig and the two
// replicas' addresses and arguments.
func (f *failoverRun) prepareReplicas() error {
	w, cfg, fo := f.w, f.cfg, f.fo
	kubeconfig := filepath.Join(w.dir, "cluster1.kubeconfig")
	if err := os.WriteFile(kubeconfig, w.clusters[0].tc.Kubeconfig(), 0o600); err != nil {
		return fmt.Errorf("bench: write the kubeconfig: %w", err)
	}
	for i, name := range []string{"replica-a", "replica-b"} {
		addrs, err := testkit.FreeLoopbackAddrs(2)
		if err != nil {
			return err
		}
		xdsAddr, debugAddr := addrs[0], addrs[1]
		args := append([]string{"serve",
			"--kubeconfig", kubeconfig, "--cluster-id", w.clusters[0].id,
			"--xds-addr", xdsAddr, "--debug-addr", debugAddr, "--xds-tls-addr=", "--webhook-addr=",
			"--leader-identity", name,
			"--leader-lease-duration", fo.LeaseDuration.String(),
			"--leader-renew-deadline", fo.RenewDeadline.String(),
			"--leader-retry-period", fo.RetryPeriod.String(),
		}, cfg.ServeArgs...)
		f.replicas[i] = &replica{name: name, xdsAddr: xdsAddr, debugAddr: debugAddr, args: args, logDir: w.dir}
	}
	return nil
}

// startProxies connects cfg.Proxies proxies per network, delta and SotW
// alternately, spread over the two replicas.
func (f *failoverRun) startProxies(ctx context.Context, full views, addrs []string, fr *FailoverResult) {
	w, cfg := f.w, f.cfg
	f.audience = make([]int, len(w.clusters))
	for ni, bc := range w.clusters {
		for i := range cfg.Proxies {
			proto := ProtocolSotW
			if i%2 == 0 {
				proto = ProtocolDelta
				fr.DeltaProxies++
			} else {
				fr.SotWProxies++
			}
			px := newProxy(f.sh, ni, i, bc.network, bc.id, proto, full[bc.network])
			px.failover = true
			f.proxies = append(f.proxies, px)
			go px.runFailover(ctx, addrs, (i/2)%2)
		}
		f.audience[ni] = cfg.Proxies
	}
}

// failAndRecover runs the sequence: SIGKILL the leader, restart it, then
// SIGTERM the other replica, with the churn steady in between.
func (f *failoverRun) failAndRecover(ctx context.Context, fr *FailoverResult) error {
	cfg := f.cfg
	// 1: SIGKILL the leader; 2: restart it; 3: SIGTERM the other.
	if err := f.steady(ctx); err != nil {
		return err
	}
	victim, err := f.leaderIndex(ctx)
	if err != nil {
		return err
	}
	ev, err := f.fail(ctx, victim, syscall.SIGKILL)
	if err != nil {
		return err
	}
	fr.Events = append(fr.Events, ev)
	if err := f.replicas[victim].start(cfg.Causeway); err != nil {
		return err
	}
	if err := f.waitFor(ctx, "restarted "+f.replicas[victim].name+" ready", func() bool { return f.replicas[victim].ready(ctx) }); err != nil {
		return err
	}
	if err := f.steady(ctx); err != nil {
		return err
	}
	ev, err = f.fail(ctx, 1-victim, syscall.SIGTERM)
	if err != nil {
		return err
	}
	fr.Events = append(fr.Events, ev)
	if err := f.steady(ctx); err != nil {
		return err
	}

	return nil
}

// recordChurn puts the churn's figures, over the writing time, in the
// results.
func (f *failoverRun) recordChurn(st *phaseStats, writing time.Duration) {
	fo, cfg := f.fo, f.cfg
	var lats []time.Duration
	var lost int64
	for _, px := range f.proxies {
		px.mu.Lock()
		if len(px.lat) > 0 {
			lats = append(lats, px.lat[0]...)
		}
		px.mu.Unlock()
		lost += int64(px.undelivered(f.sh.logs[px.network], 0))
	}
	ph := Phase{
		Name: "failover", Rate: fo.Rate, Seconds: writing.Seconds(),
		Changes: st.changes.Load(), WriteErrors: st.writeErrs.Load(), Lagging: st.lagging.Load(),
		Pairs: st.expected.Load(), Delivered: st.delivered.Load(), Lost: lost, Latency: summarize(lats),
	}
	ph.AchievedRate = float64(ph.Changes) / ph.Seconds
	f.res.Churn = []Phase{ph}
	fmt.Fprintf(cfg.Progress, "bench: failover churn: %d changes, %d pairs, %d lost, p99 %.1f ms, max %.1f ms\n",
		ph.Changes, ph.Pairs, ph.Lost, ph.Latency.P99, ph.Latency.Max)

}

// startChurn starts the churn at fo.Rate and returns what ends it (once;
// it waits for the churner) and when it began.
func (f *failoverRun) startChurn(ctx context.Context) (func(), time.Time) {
	w, fo := f.w, f.fo
	stopChurn := make(chan struct{})
	churnDone := make(chan struct{})
	ch := &churner{
		clusters: w.clusters,
		logs:     make([]*changeLog, len(w.clusters)),
		audience: func(i int) int { return f.audience[i] },
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
		stop:     stopChurn,
	}
	for i, bc := range w.clusters {
		ch.logs[i] = f.sh.logs[bc.network]
	}
	churnBegin := time.Now()
	go func() {
		defer close(churnDone)
		ch.run(ctx, 0, fo.Rate, 24*time.Hour, f.sh.phases[0])
	}()
	stopped := false
	endChurn := func() {
		if !stopped {
			stopped = true
			close(stopChurn)
			<-churnDone
		}
	}
	return endChurn, churnBegin
}
