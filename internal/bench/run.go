package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// world is the two filled clusters of a run.
type world struct {
	env      *testenv.Env
	clusters []*benchCluster
	dir      string
	ownDir   bool
}

// prepare starts the clusters and fills them; the caller closes the world.
func prepare(ctx context.Context, cfg Config, res *Results) (*world, error) {
	// A fresh folder per run, under WorkDir when given (and then kept):
	// two runs never share etcd data, kubeconfigs or logs.
	if cfg.WorkDir != "" {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: create the work folder: %w", err)
		}
	}
	dir, err := os.MkdirTemp(cfg.WorkDir, "causeway-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: create a work folder: %w", err)
	}
	w := &world{dir: dir, ownDir: cfg.WorkDir == ""}
	fmt.Fprintf(cfg.Progress, "bench: starting 2 clusters in %s\n", w.dir)
	env, err := testenv.Launch(ctx, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}, Dir: filepath.Join(w.dir, "clusters"), EtcdInMemory: true})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	w.env = env
	res.Fill.ClustersSeconds = env.StartupTime.Seconds()
	for i, c := range env.Clusters {
		bc, err := newBenchCluster(c, i+1)
		if err != nil {
			w.close(false)
			return nil, err
		}
		w.clusters = append(w.clusters, bc)
	}

	begin := time.Now()
	cnts := make([]*fillCounters, len(w.clusters))
	for i := range cnts {
		cnts[i] = &fillCounters{total: objectsPerCluster(cfg.Services, cfg.Endpoints, cfg.Unselected)}
	}
	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		progress(progCtx, cfg.Progress, "fill", begin, cnts)
	}()
	errs := make([]error, len(w.clusters))
	var wg sync.WaitGroup
	for i, bc := range w.clusters {
		wg.Go(func() {
			errs[i] = bc.fill(ctx, cfg.Services, cfg.Endpoints, cfg.Writers, cfg.DiscoverySelectors, cfg.Unselected, cnts[i])
		})
	}
	wg.Wait()
	stopProgress()
	<-progDone
	if err := errors.Join(errs...); err != nil {
		w.close(false)
		return nil, fmt.Errorf("bench: %w\n%s", err, env.Logs())
	}
	if err := joinRemote(ctx, w.clusters[0], w.clusters[1]); err != nil {
		w.close(false)
		return nil, fmt.Errorf("bench: %w", err)
	}
	for _, c := range cnts {
		res.Fill.Objects += c.done.Load()
	}
	res.Fill.Seconds = time.Since(begin).Seconds()
	res.Fill.WritesPerSec = float64(res.Fill.Objects) / res.Fill.Seconds
	return w, nil
}

// close stops the clusters; the work folder is removed if the harness made
// it and keep is false.
func (w *world) close(keep bool) {
	if w.env != nil {
		w.env.Close()
	}
	if w.ownDir && !keep {
		_ = os.RemoveAll(w.dir)
	}
}

// objects is the harness's record of both clusters.
func (w *world) objects() []clusterObjects {
	out := make([]clusterObjects, len(w.clusters))
	for i, bc := range w.clusters {
		out[i] = bc.objects()
	}
	return out
}

// Run starts the clusters, fills them, measures the server (start, churn
// at each rate, a stalled proxy) and checks every proxy's final view. An
// error means the run could not be done; a run that was done but found
// lost changes or wrong views returns its Results, whose Failures say so.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	res := &Results{Time: time.Now().UTC(), Machine: readMachine(), Params: paramsOf(cfg)}
	w, err := prepare(ctx, cfg, res)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		w.close(!ok)
		if ok && w.ownDir {
			res.Server.Log = "(removed with the work folder; give a work folder to keep it)"
		}
	}()
	if err := w.measure(ctx, cfg, cfg.Proxies, cfg.Rates, cfg.Stall, res); err != nil {
		return res, err
	}
	res.Machine.LoadAfter = loadAverage()
	res.evaluate()
	res.addNotes()
	ok = len(res.Failures()) == 0
	return res, nil
}

// session is one server process and its proxies.
type session struct {
	cfg     Config
	w       *world
	sh      *shared
	serve   *serveProcess
	proxies []*proxy // network 1's, then network 2's
	perNet  int
	// running are the proxies whose goroutine was started.
	running []*proxy
	conns   []func() error
	// audience counts, per cluster, the proxies whose deliveries count.
	audience []atomic.Int64
	cancel   context.CancelFunc
	begin    time.Time
	// phase is the index of the next phase in sh.phases.
	phase int
	// prof fetches the server's profiles; nil without Config.ProfileDir.
	prof *profiler
	// harnessCPU0 is the harness's CPU time when the server started.
	harnessCPU0 float64
}

// measure runs one server with p proxies per network over the world:
// start, a churn phase per rate, the stall phase, and the final check.
func (w *world) measure(ctx context.Context, cfg Config, p int, rates []float64, stall bool, res *Results) (err error) {
	phases := len(rates)
	if stall {
		phases++
	}
	s, err := w.startSession(ctx, cfg, p, phases)
	if err != nil {
		return err
	}
	defer s.close()
	res.Server.PID, res.Server.Log = s.serve.pid(), s.serve.logPath

	if err := s.waitFull(ctx, res); err != nil {
		return err
	}
	if err := s.prof.heap(ctx, "start"); err != nil {
		return err
	}
	logs := make([]*changeLog, len(s.w.clusters))
	for i, bc := range s.w.clusters {
		logs[i] = s.sh.logs[bc.network]
	}
	if err := newWatchRef(s.w.clusters, logs).start(ctx); err != nil {
		return err
	}
	var targetCPU = res.Start.ServerCPU
	for _, rate := range rates {
		cpuDone := s.prof.cpu(ctx, "churn-"+strconv.FormatFloat(rate, 'f', -1, 64), cfg.Duration)
		ph, err := s.churnPhase(ctx, "churn", rate, nil)
		if err != nil {
			return err
		}
		if err := cpuDone(); err != nil {
			return err
		}
		if err := s.prof.heap(ctx, "churn-"+strconv.FormatFloat(rate, 'f', -1, 64)); err != nil {
			return err
		}
		res.Churn = append(res.Churn, ph)
		if rate == 10 || rate == 100 {
			targetCPU += ph.ServerCPU
		}
	}
	res.Server.TargetCPU = targetCPU
	if stall {
		st, err := s.stallPhase(ctx, res)
		if err != nil {
			return err
		}
		res.Stall = st
	}
	if err := s.verify(ctx, &res.Verify); err != nil {
		return err
	}
	final, err := readProcStats(s.serve.pid())
	if err != nil {
		return err
	}
	res.Server.CPUSeconds, res.Server.PeakRSSBytes = final.CPUSeconds, final.PeakRSSBytes
	return nil
}

// startSession computes the full view, starts the server and connects the
// proxies (they retry until the server listens). phases is how many churn
// phases the session will run.
func (w *world) startSession(ctx context.Context, cfg Config, p, phases int) (*session, error) {
	kubeconfig := filepath.Join(w.dir, "cluster1.kubeconfig")
	if err := os.WriteFile(kubeconfig, w.clusters[0].tc.Kubeconfig(), 0o600); err != nil {
		return nil, fmt.Errorf("bench: write the kubeconfig: %w", err)
	}
	addrs, err := testkit.FreeLoopbackAddrs(2)
	if err != nil {
		return nil, err
	}
	xdsAddr, debugAddr := addrs[0], addrs[1]
	full := expectedViews(w.objects())
	sh := newShared(w.clusters, phases)
	ctx, cancel := context.WithCancel(ctx)
	s := &session{cfg: cfg, w: w, sh: sh, cancel: cancel, perNet: p, audience: make([]atomic.Int64, len(w.clusters))}
	if s.prof, err = newProfiler(cfg.ProfileDir, debugAddr); err != nil {
		cancel()
		return nil, err
	}
	for ni, bc := range w.clusters {
		for i := range p {
			s.proxies = append(s.proxies, newProxy(sh, ni, i, bc.network, bc.id, cfg.Protocol, full[bc.network]))
		}
		s.audience[ni].Store(int64(p))
	}

	// Plaintext xDS on a free port; the secure port (xDS over TLS and the
	// CA) and the injection webhook are off, so that runs never collide on
	// their fixed default ports.
	args := append([]string{"serve", "--drain-duration=0",
		"--kubeconfig", kubeconfig, "--cluster-id", w.clusters[0].id,
		"--xds-addr", xdsAddr, "--debug-addr", debugAddr, "--xds-tls-addr=", "--webhook-addr=",
		// A phase's CPU profile lasts the whole phase.
		"--profile-max-seconds", "3600",
	}, cfg.ServeArgs...)
	if cfg.DiscoverySelectors {
		mc := filepath.Join(w.dir, "mesh-config.yaml")
		sel := "discoverySelectors:\n- matchLabels:\n    " + meshLabel + ": \"true\"\n"
		if err := os.WriteFile(mc, []byte(sel), 0o600); err != nil {
			cancel()
			return nil, fmt.Errorf("bench: write the mesh config: %w", err)
		}
		args = append(args, "--mesh-config", mc)
	}
	logPath := filepath.Join(w.dir, "serve-"+strconv.FormatInt(time.Now().UnixMilli(), 10)+".log")
	s.harnessCPU0 = selfCPU()
	s.begin = time.Now()
	if s.serve, err = startServe(cfg.Causeway, args, logPath); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: %w", err)
	}
	stallIndex := p - 1 // the last proxy of network 1, stallPhase's victim
	for i, px := range s.proxies {
		conn, err := px.dial(xdsAddr, i == stallIndex)
		if err != nil {
			s.close()
			return nil, err
		}
		s.conns = append(s.conns, conn.Close)
		s.running = append(s.running, px)
		go px.run(ctx, conn)
	}
	return s, nil
}

// close ends the proxies and the server.
func (s *session) close() {
	s.cancel()
	for _, px := range s.proxies {
		px.resume()
	}
	for _, c := range s.conns {
		_ = c()
	}
	for _, px := range s.running {
		<-px.done
	}
	s.serve.stop()
}

// failure returns why the session cannot go on: the server exited, or a
// proxy's stream failed (other than an excluded one).
func (s *session) failure() error {
	if err := s.serve.exited(); err != nil {
		return err
	}
	for _, px := range s.proxies {
		px.mu.Lock()
		err, excluded := px.err, px.excluded
		px.mu.Unlock()
		if err != nil && !excluded {
			return fmt.Errorf("proxy %s: %w (server log: %s)", px.id, err, s.serve.logPath)
		}
	}
	return nil
}

func (s *session) bytesReceived() int64 {
	var n int64
	for _, px := range s.proxies {
		n += px.bytes.Load()
	}
	return n
}

// waitFull waits for every proxy to hold the full, correct view.
func (s *session) waitFull(ctx context.Context, res *Results) error {
	fmt.Fprintf(s.cfg.Progress, "bench: server started (pid %d, log %s); waiting for %d proxies to hold the full view\n",
		s.serve.pid(), s.serve.logPath, len(s.proxies))
	deadline := time.Now().Add(s.cfg.StartTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		full := 0
		var last time.Time
		times := make([]time.Duration, 0, len(s.proxies))
		for _, px := range s.proxies {
			px.mu.Lock()
			at := px.fullAt
			px.mu.Unlock()
			if !at.IsZero() {
				full++
				times = append(times, at.Sub(s.begin))
				if at.After(last) {
					last = at
				}
			}
		}
		if full == len(s.proxies) {
			slices.Sort(times)
			res.Start.Complete = true
			res.Start.Seconds = last.Sub(s.begin).Seconds()
			res.Start.ProxyP50 = percentile(times, 50).Seconds()
			break
		}
		if err := s.failure(); err != nil {
			return fmt.Errorf("bench: during start: %w", err)
		}
		if time.Now().After(deadline) {
			res.Start.Seconds = time.Since(s.begin).Seconds()
			return fmt.Errorf("bench: after %v only %d of %d proxies hold the full view (server log: %s)",
				s.cfg.StartTimeout, full, len(s.proxies), s.serve.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	st, err := readProcStats(s.serve.pid())
	if err != nil {
		return err
	}
	res.Start.ServerCPU, res.Start.ServerRSS = st.CPUSeconds, st.RSSBytes
	res.Start.HarnessCPU = selfCPU() - s.harnessCPU0
	res.Start.BytesReceived = s.bytesReceived()
	for _, px := range s.proxies {
		px.mu.Lock()
		px.expect = nil
		px.mu.Unlock()
	}
	fmt.Fprintf(s.cfg.Progress, "bench: start: %.2fs to every proxy full (server %.1f CPU-s, %.0f MiB)\n",
		res.Start.Seconds, st.CPUSeconds, mibOf(st.RSSBytes))
	return nil
}

// churnPhase writes changes at rate for the configured duration, waits for
// every pair to be delivered (or the settle timeout), and summarizes.
// Proxies in skip do not count.
func (s *session) churnPhase(ctx context.Context, name string, rate float64, skip *proxy) (Phase, error) {
	if s.phase == len(s.sh.phases) {
		return Phase{}, errors.New("bench: more phases than the session was made for")
	}
	phase := s.phase
	s.phase++
	st := s.sh.phases[phase]
	before, err := readProcStats(s.serve.pid())
	if err != nil {
		return Phase{}, err
	}
	bytesBefore, harnessBefore := s.bytesReceived(), selfCPU()
	fmt.Fprintf(s.cfg.Progress, "bench: %s at %g/s for %v\n", name, rate, s.cfg.Duration)
	ch := &churner{
		clusters: s.w.clusters,
		logs:     make([]*changeLog, len(s.w.clusters)),
		audience: func(i int) int { return int(s.audience[i].Load()) },
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(phase))),
	}
	for i, bc := range s.w.clusters {
		ch.logs[i] = s.sh.logs[bc.network]
	}
	begin := time.Now()
	ch.run(ctx, phase, rate, s.cfg.Duration, st)
	writing := time.Since(begin)
	if err := ctx.Err(); err != nil {
		return Phase{}, err
	}

	// Settle: every pair delivered, or the timeout.
	deadline := time.Now().Add(s.cfg.Settle)
	for st.delivered.Load() < st.expected.Load() && time.Now().Before(deadline) {
		if err := s.failure(); err != nil {
			return Phase{}, fmt.Errorf("bench: %s at %g/s: %w", name, rate, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	after, err := readProcStats(s.serve.pid())
	if err != nil {
		return Phase{}, err
	}
	var lats []time.Duration
	var lost int64
	for _, px := range s.proxies {
		if px == skip {
			continue
		}
		px.mu.Lock()
		excluded := px.excluded
		if phase < len(px.lat) {
			lats = append(lats, px.lat[phase]...)
		}
		px.mu.Unlock()
		if !excluded {
			lost += int64(px.undelivered(s.sh.logs[px.network], phase))
		}
	}
	ph := Phase{
		Name:          name,
		Rate:          rate,
		Seconds:       writing.Seconds(),
		Changes:       st.changes.Load(),
		WriteErrors:   st.writeErrs.Load(),
		Lagging:       st.lagging.Load(),
		Pairs:         st.expected.Load(),
		Delivered:     st.delivered.Load(),
		Lost:          lost,
		Latency:       summarize(lats),
		BytesReceived: s.bytesReceived() - bytesBefore,
		ServerCPU:     after.CPUSeconds - before.CPUSeconds,
		ServerRSS:     after.RSSBytes,
		HarnessCPU:    selfCPU() - harnessBefore,
	}
	ph.WriteLatency, ph.WatchLatency = phaseRef(ch.logs, phase)
	ph.AchievedRate = float64(ph.Changes) / ph.Seconds
	if ph.Changes > 0 {
		ph.BytesPerChange = float64(ph.BytesReceived) / float64(ph.Changes)
		ph.CPUPer1000 = ph.ServerCPU / float64(ph.Changes) * 1000
	}
	fmt.Fprintf(s.cfg.Progress, "bench: %s at %g/s: %d changes, %d pairs, %d lost, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %.1f CPU-s; API server watch p50 %.2f ms, p99 %.2f ms\n",
		name, rate, ph.Changes, ph.Pairs, ph.Lost, ph.Latency.P50, ph.Latency.P99, ph.Latency.Max, ph.ServerCPU, ph.WatchLatency.P50, ph.WatchLatency.P99)
	return ph, nil
}

// stallPhase stops one proxy of network 1 from reading and churns at the
// stall rate; the others' latency is compared with the phase at that rate.
func (s *session) stallPhase(ctx context.Context, res *Results) (*Stall, error) {
	victim := s.proxies[s.perNet-1]
	victim.mu.Lock()
	victim.excluded = true
	victim.mu.Unlock()
	s.audience[0].Add(-1)
	victim.stall()
	stalledAt := time.Now()
	ph, err := s.churnPhase(ctx, "stalled", s.cfg.StallRate, victim)
	if err != nil {
		return nil, err
	}
	st := &Stall{Phase: ph, StalledProxy: victim.id}
	if base := res.phaseAt(s.cfg.StallRate); base != nil {
		st.BaselineP99 = base.Latency.P99
	}
	// Let it read again: if the server closed its stream, it drains what
	// was buffered and ends.
	st.StalledSeconds = time.Since(stalledAt).Seconds()
	victim.resume()
	select {
	case <-victim.done:
		st.StreamEnded = true
		victim.mu.Lock()
		if victim.err != nil {
			st.StreamError = victim.err.Error()
		}
		victim.mu.Unlock()
	case <-time.After(3 * time.Second):
	}
	return st, nil
}

// verify compares every counted proxy's EDS with what the objects listed
// from the apiservers imply.
func (s *session) verify(ctx context.Context, v *Verify) error {
	listed := make([]clusterObjects, len(s.w.clusters))
	for i, bc := range s.w.clusters {
		objs, err := bc.listObjects(ctx, s.cfg.DiscoverySelectors)
		if err != nil {
			return fmt.Errorf("bench: verify: %w", err)
		}
		listed[i] = objs
	}
	want := expectedViews(listed)
	mine := expectedViews(s.w.objects())
	for n, vs := range want {
		for _, d := range viewDiff(vs, mine[n]) {
			v.HarnessDrift = append(v.HarnessDrift, "network "+n+": "+d)
		}
	}
	v.HarnessDrift = v.HarnessDrift[:min(len(v.HarnessDrift), 5)]
	for _, px := range s.proxies {
		px.mu.Lock()
		excluded, perr := px.excluded, px.err
		px.mu.Unlock()
		if excluded {
			continue
		}
		if perr != nil {
			v.ProxyErrors = append(v.ProxyErrors, px.id+": "+perr.Error())
		}
		v.Proxies++
		diff := viewDiff(want[px.network], px.view())
		if len(diff) == 0 {
			continue
		}
		v.WrongViews++
		v.WrongResources += len(diff)
		if len(v.Examples) < 5 {
			v.Examples = append(v.Examples, fmt.Sprintf("%s (%s): %s", px.id, px.network, diff[0]))
		}
	}
	v.DistinctResources = s.sh.intern.size()
	return nil
}
