package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is what a run measured, as written to JSON.
type Results struct {
	Time    time.Time `json:"time"`
	Machine Machine   `json:"machine"`
	Params  Params    `json:"params"`
	Fill    Fill      `json:"fill"`
	Start   Start     `json:"start"`
	Churn   []Phase   `json:"churn"`
	Stall   *Stall    `json:"stall,omitempty"`
	Verify  Verify    `json:"verify"`
	Server  Server    `json:"server"`
	Targets []Target  `json:"targets"`
	// Failover holds a failover run's events and checks (see [Failover]);
	// nil otherwise.
	Failover *FailoverResult `json:"failover,omitempty"`
	// Sweep holds the points of a sweep (see [Sweep]); empty otherwise.
	Sweep []SweepPoint `json:"sweep,omitempty"`
	// Notes are facts a reader needs to judge the figures.
	Notes []string `json:"notes,omitempty"`
}

// Params are the exact parameters of the run.
type Params struct {
	Services        int       `json:"services"`
	Endpoints       int       `json:"endpoints"`
	ProxiesPerNet   int       `json:"proxies_per_network"`
	Networks        int       `json:"networks"`
	Rates           []float64 `json:"rates"`
	DurationSeconds float64   `json:"duration_seconds"`
	Protocol        Protocol  `json:"protocol"`
	Stall           bool      `json:"stall"`
	StallRate       float64   `json:"stall_rate,omitempty"`
	SettleSeconds   float64   `json:"settle_seconds"`
	ServeArgs       []string  `json:"serve_args"`
	// DiscoverySelectors and Unselected: see Config.
	DiscoverySelectors bool `json:"discovery_selectors,omitempty"`
	Unselected         int  `json:"unselected,omitempty"`
}

func paramsOf(cfg Config) Params {
	args := cfg.ServeArgs
	if args == nil {
		args = []string{}
	}
	return Params{
		Services: cfg.Services, Endpoints: cfg.Endpoints, ProxiesPerNet: cfg.Proxies, Networks: 2,
		Rates: cfg.Rates, DurationSeconds: cfg.Duration.Seconds(), Protocol: cfg.Protocol,
		Stall: cfg.Stall, StallRate: cfg.StallRate, SettleSeconds: cfg.Settle.Seconds(), ServeArgs: args,
		DiscoverySelectors: cfg.DiscoverySelectors, Unselected: cfg.Unselected,
	}
}

// Fill is the writing of the clusters.
type Fill struct {
	Objects      int64   `json:"writes"`
	Seconds      float64 `json:"seconds"`
	WritesPerSec float64 `json:"writes_per_second"`
	// ClustersSeconds is how long the etcd and apiservers took to start.
	ClustersSeconds float64 `json:"clusters_start_seconds"`
}

// Start is the time from starting the server to every proxy holding the
// full, correct view.
type Start struct {
	// Seconds is the time until the last proxy was full; ProxyP50 the
	// median over proxies.
	Seconds       float64 `json:"seconds"`
	ProxyP50      float64 `json:"proxy_p50_seconds"`
	Complete      bool    `json:"complete"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	ServerRSS     int64   `json:"server_rss_bytes"`
	BytesReceived int64   `json:"bytes_received"`
	HarnessCPU    float64 `json:"harness_cpu_seconds"`
}

// Phase is one churn phase.
type Phase struct {
	Name    string  `json:"name"`
	Rate    float64 `json:"rate"`
	Seconds float64 `json:"seconds"`
	// AchievedRate is Changes / Seconds.
	AchievedRate float64 `json:"achieved_rate"`
	Changes      int64   `json:"changes"`
	WriteErrors  int64   `json:"write_errors"`
	// Lagging counts changes the harness could not write on time.
	Lagging   int64   `json:"lagging"`
	Pairs     int64   `json:"pairs"`
	Delivered int64   `json:"delivered"`
	Lost      int64   `json:"lost"`
	Latency   Latency `json:"latency"`
	// WriteLatency is the time of the harness's Update calls (the API
	// server's answer); WatchLatency from the write to the harness's own
	// watch event of it: what the API server takes before any watcher can
	// know, to read Latency against.
	WriteLatency Latency `json:"write_latency"`
	WatchLatency Latency `json:"watch_latency"`
	// BytesReceived counts the wire bytes of every response every proxy
	// received during the phase (settling included).
	BytesReceived  int64   `json:"bytes_received"`
	BytesPerChange float64 `json:"bytes_per_change"`
	ServerCPU      float64 `json:"server_cpu_seconds"`
	CPUPer1000     float64 `json:"server_cpu_seconds_per_1000_changes"`
	ServerRSS      int64   `json:"server_rss_bytes"`
	// HarnessCPU is the harness's own CPU time in the phase: on a small
	// machine it competes with the server.
	HarnessCPU float64 `json:"harness_cpu_seconds"`
}

// Stall is the phase with one proxy that stopped reading.
type Stall struct {
	Phase
	StalledProxy string `json:"stalled_proxy"`
	// BaselineP99 is the p99 of the churn phase at the same rate, without
	// a stalled proxy (0 when no phase ran at that rate).
	BaselineP99 float64 `json:"baseline_p99_ms"`
	// StreamEnded says whether the stalled proxy's stream had ended (the
	// server closed it) when it read again after the phase; StreamError is
	// what it read then.
	StreamEnded bool   `json:"stream_ended"`
	StreamError string `json:"stream_error,omitempty"`
	// StalledSeconds is how long the proxy did not read.
	StalledSeconds float64 `json:"stalled_seconds"`
}

// Verify is the final check of every proxy's EDS against what the objects
// in the apiservers imply.
type Verify struct {
	Proxies        int      `json:"proxies"`
	WrongViews     int      `json:"wrong_views"`
	WrongResources int      `json:"wrong_resources"`
	Examples       []string `json:"examples,omitempty"`
	// HarnessDrift lists differences between the harness's own record of
	// what it wrote and what the apiservers hold (a harness bug if any).
	HarnessDrift []string `json:"harness_drift,omitempty"`
	// ProxyErrors are streams that failed (other than the stalled one).
	ProxyErrors []string `json:"proxy_errors,omitempty"`
	// DistinctResources is how many distinct resource bodies the proxies
	// received (decoded once each).
	DistinctResources int `json:"distinct_resources"`
}

// Server is the server process over the whole run.
type Server struct {
	PID          int     `json:"pid"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	// TargetCPU is the CPU of the start and of the churn phases at 10/s and
	// 100/s (what the CPU target bounds).
	TargetCPU float64 `json:"target_cpu_seconds"`
	Log       string  `json:"log"`
}

// Target is one target of the issue, checked.
type Target struct {
	Name  string  `json:"name"`
	Limit string  `json:"limit"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Pass  bool    `json:"pass"`
	// Applies is false when the run was not at the size the target is set
	// for (S=1000, E=10, P=100).
	Applies bool `json:"applies"`
}

// targetSize reports whether the run is at the size the targets are for.
func (r *Results) targetSize() bool {
	p := r.Params
	return p.Services == 1000 && p.Endpoints == 10 && p.ProxiesPerNet == 100
}

// phaseAt returns the churn phase at rate, if one ran.
func (r *Results) phaseAt(rate float64) *Phase {
	for i := range r.Churn {
		if r.Churn[i].Rate == rate {
			return &r.Churn[i]
		}
	}
	return nil
}

// evaluate fills Targets.
func (r *Results) evaluate() {
	applies := r.targetSize()
	add := func(name, limit, unit string, value float64, pass bool) {
		r.Targets = append(r.Targets, Target{Name: name, Limit: limit, Value: value, Unit: unit, Pass: pass, Applies: applies})
	}
	add("start to every proxy full and correct", "<= 5", "s", r.Start.Seconds, r.Start.Complete && r.Start.Seconds <= 5)
	for _, t := range []struct {
		rate  float64
		limit float64
	}{{10, 20}, {100, 50}} {
		if ph := r.phaseAt(t.rate); ph != nil {
			add(fmt.Sprintf("churn %g/s p99", t.rate), fmt.Sprintf("<= %g", t.limit), "ms", ph.Latency.P99, ph.Latency.P99 <= t.limit && ph.Lost == 0)
		}
	}
	var lost int64
	for i := range r.Churn {
		lost += r.Churn[i].Lost
	}
	if r.Stall != nil {
		lost += r.Stall.Lost
	}
	add("changes lost", "= 0", "pairs", float64(lost), lost == 0)
	add("wrong views", "= 0", "proxies", float64(r.Verify.WrongViews), r.Verify.WrongViews == 0 && len(r.Verify.ProxyErrors) == 0)
	mib := float64(r.Server.PeakRSSBytes) / (1 << 20)
	add("server peak RSS", "<= 300", "MiB", mib, mib <= 300)
	add("server CPU, start + 10/s + 100/s phases", "<= 30", "CPU-s", r.Server.TargetCPU, r.Server.TargetCPU <= 30)
	if r.Stall != nil && r.Stall.BaselineP99 > 0 {
		// "Must not move": within 2x of the baseline, or under 5 ms extra.
		limit := max(2*r.Stall.BaselineP99, r.Stall.BaselineP99+5)
		add(fmt.Sprintf("others' p99 with a stalled proxy at %g/s", r.Stall.Rate), fmt.Sprintf("<= %.1f (baseline %.1f)", limit, r.Stall.BaselineP99),
			"ms", r.Stall.Latency.P99, r.Stall.Latency.P99 <= limit && r.Stall.Lost == 0)
	}
}

// addNotes records what a reader needs to weigh the figures.
func (r *Results) addNotes() {
	m := r.Machine
	if load := max(m.LoadBefore, m.LoadAfter); load > float64(m.Cores) {
		r.Notes = append(r.Notes, fmt.Sprintf(
			"the machine was shared and loaded (one-minute load %.1f before, %.1f after, on %d cores): etcd, two apiservers, the harness and other work ran beside the server, so latencies include waiting for a CPU",
			m.LoadBefore, m.LoadAfter, m.Cores))
	}
	for i := range r.Churn {
		ph := &r.Churn[i]
		if ph.Lagging > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s at %g/s: %d changes were written more than one interval late (achieved %.1f/s)", ph.Name, ph.Rate, ph.Lagging, ph.AchievedRate))
		}
	}
}

// Failures lists what makes the run invalid whatever the timing: lost
// changes, wrong views, failed streams, failed writes, an incomplete start.
func (r *Results) Failures() []string {
	if len(r.Sweep) > 0 {
		return r.sweepFailures()
	}
	var out []string
	if !r.Start.Complete {
		out = append(out, "not every proxy reached the full, correct view at start")
	}
	phases := r.Churn
	if r.Stall != nil {
		phases = append(append([]Phase(nil), phases...), r.Stall.Phase)
	}
	for i := range phases {
		ph := &phases[i]
		if ph.Lost > 0 {
			out = append(out, fmt.Sprintf("%s at %g/s: %d of %d pairs never delivered", ph.Name, ph.Rate, ph.Lost, ph.Pairs))
		}
		if ph.WriteErrors > 0 {
			out = append(out, fmt.Sprintf("%s at %g/s: %d writes failed", ph.Name, ph.Rate, ph.WriteErrors))
		}
	}
	if r.Verify.WrongViews > 0 {
		out = append(out, fmt.Sprintf("%d proxies hold a wrong view (%d resources): %s", r.Verify.WrongViews, r.Verify.WrongResources, strings.Join(r.Verify.Examples, "; ")))
	}
	for _, e := range r.Verify.ProxyErrors {
		out = append(out, "proxy stream failed: "+e)
	}
	for _, d := range r.Verify.HarnessDrift {
		out = append(out, "harness record differs from the apiservers: "+d)
	}
	return append(out, r.failoverFailures()...)
}

// sweepFailures is Failures for a sweep: each point's error, lost pairs
// and wrong views.
func (r *Results) sweepFailures() []string {
	var out []string
	for i := range r.Sweep {
		p := &r.Sweep[i]
		at := fmt.Sprintf("S=%d P=%d", p.Services, p.Proxies)
		if p.Error != "" {
			out = append(out, at+": "+p.Error)
		}
		if p.Lost > 0 {
			out = append(out, fmt.Sprintf("%s: %d changes never delivered", at, p.Lost))
		}
		if p.WrongViews > 0 {
			out = append(out, fmt.Sprintf("%s: %d proxies hold a wrong view", at, p.WrongViews))
		}
	}
	return out
}

// WriteJSON writes r, indented, to path (its folder is created).
func (r *Results) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// WriteTable writes r as human-readable tables.
func (r *Results) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	m, p := r.Machine, r.Params
	fmt.Fprintf(tw, "machine\t%d cores, %.1f GiB, %s, load %.2f before / %.2f after, %s\n",
		m.Cores, float64(m.MemoryBytes)/(1<<30), m.CPUModel, m.LoadBefore, m.LoadAfter, m.GoVersion)
	fmt.Fprintf(tw, "params\tS=%d services x E=%d endpoints, P=%d proxies x %d networks, rates %v/s, %gs each, %s, stall %t, settle %gs, serve args %q\n",
		p.Services, p.Endpoints, p.ProxiesPerNet, p.Networks, p.Rates, p.DurationSeconds, p.Protocol, p.Stall, p.SettleSeconds, p.ServeArgs)
	if r.Fill.Objects > 0 {
		fmt.Fprintf(tw, "fill\t%d writes in %.1fs (%.0f/s); clusters started in %.1fs\n", r.Fill.Objects, r.Fill.Seconds, r.Fill.WritesPerSec, r.Fill.ClustersSeconds)
	}
	if len(r.Sweep) > 0 {
		// A sweep has no single run: only its points.
		if err := tw.Flush(); err != nil {
			return err
		}
		return r.writeSweep(w, tw)
	}
	fmt.Fprintf(tw, "start\t%.2fs to every proxy full (median proxy %.2fs, complete %t); server %.1f CPU-s, RSS %.0f MiB; %.1f MiB received; harness %.1f CPU-s\n",
		r.Start.Seconds, r.Start.ProxyP50, r.Start.Complete, r.Start.ServerCPU, mibOf(r.Start.ServerRSS), mibOf(r.Start.BytesReceived), r.Start.HarnessCPU)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	phases := r.Churn
	if r.Stall != nil {
		phases = append(append([]Phase(nil), phases...), r.Stall.Phase)
	}
	if len(phases) > 0 {
		fmt.Fprintln(tw, "phase\trate/s\tachieved\tchanges\tpairs\tlost\tp50 ms\tp90 ms\tp99 ms\tmax ms\tbytes/change\tserver CPU-s\tCPU-s/1k changes\tRSS MiB\tharness CPU-s\tlagging\twrite errors")
		for i := range phases {
			ph := &phases[i]
			fmt.Fprintf(tw, "%s\t%g\t%.1f\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.2f\t%.2f\t%.0f\t%.2f\t%d\t%d\n",
				ph.Name, ph.Rate, ph.AchievedRate, ph.Changes, ph.Pairs, ph.Lost, ph.Latency.P50, ph.Latency.P90, ph.Latency.P99, ph.Latency.Max,
				ph.BytesPerChange, ph.ServerCPU, ph.CPUPer1000, mibOf(ph.ServerRSS), ph.HarnessCPU, ph.Lagging, ph.WriteErrors)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "the API server's own share (the harness's Update call; from the write to the harness's own watch event):")
		fmt.Fprintln(tw, "phase	rate/s	write p50 ms	write p99 ms	watch p50 ms	watch p99 ms	watch max ms")
		for i := range phases {
			ph := &phases[i]
			fmt.Fprintf(tw, "%s\t%g\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", ph.Name, ph.Rate,
				ph.WriteLatency.P50, ph.WriteLatency.P99, ph.WatchLatency.P50, ph.WatchLatency.P99, ph.WatchLatency.Max)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Stall != nil {
		fmt.Fprintf(w, "stalled proxy %s: others' p99 %.2f ms vs %.2f ms without; stalled %.0fs, its stream ended by then: %t %s\n",
			r.Stall.StalledProxy, r.Stall.Latency.P99, r.Stall.BaselineP99, r.Stall.StalledSeconds, r.Stall.StreamEnded, r.Stall.StreamError)
	}
	fmt.Fprintf(w, "verify: %d proxies checked, %d wrong views (%d resources), %d distinct resources decoded\n",
		r.Verify.Proxies, r.Verify.WrongViews, r.Verify.WrongResources, r.Verify.DistinctResources)
	for _, e := range r.Verify.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if r.Failover != nil {
		r.writeFailover(w)
	} else {
		fmt.Fprintf(w, "server: %.1f CPU-s in all, %.1f CPU-s for start + 10/s + 100/s, peak RSS %.0f MiB (log %s)\n\n",
			r.Server.CPUSeconds, r.Server.TargetCPU, mibOf(r.Server.PeakRSSBytes), r.Server.Log)
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(tw, "target\tlimit\tvalue\tresult")
		for _, t := range r.Targets {
			res := "PASS"
			if !t.Pass {
				res = "FAIL"
			}
			if !t.Applies {
				res += " (not the target size)"
			}
			fmt.Fprintf(tw, "%s\t%s %s\t%.2f %s\t%s\n", t.Name, t.Limit, t.Unit, t.Value, t.Unit, res)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return r.writeSweep(w, tw)
}

// writeSweep writes the sweep's points, if any, and the notes.
func (r *Results) writeSweep(w io.Writer, tw *tabwriter.Writer) error {
	if len(r.Sweep) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "S\tP/net\tstart s\trate/s\tp50 ms\tp99 ms\tlost\twrong\tbytes/change\tbytes/change/proxy\tCPU-s/1k changes\tpeak RSS MiB")
		for i := range r.Sweep {
			s := &r.Sweep[i]
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%g\t%.2f\t%.2f\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.0f\n",
				s.Services, s.Proxies, s.StartSeconds, s.Rate, s.Latency.P50, s.Latency.P99, s.Lost, s.WrongViews,
				s.BytesPerChange, s.BytesPerChangePerProxy, s.CPUPer1000, mibOf(s.PeakRSSBytes))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func mibOf(b int64) float64 { return float64(b) / (1 << 20) }
