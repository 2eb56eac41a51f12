package bench

import (
	"context"
	"fmt"
	"time"
)

// SweepPoint is one size of a sweep.
type SweepPoint struct {
	Services     int     `json:"services"`
	Proxies      int     `json:"proxies_per_network"`
	StartSeconds float64 `json:"start_seconds"`
	Rate         float64 `json:"rate"`
	Latency      Latency `json:"latency"`
	Changes      int64   `json:"changes"`
	Lost         int64   `json:"lost"`
	WrongViews   int     `json:"wrong_views"`
	// BytesPerChange counts the bytes every proxy received per change;
	// BytesPerChangePerProxy divides it by the proxies that must see a
	// change (P: a change is local to one network).
	BytesPerChange         float64 `json:"bytes_per_change"`
	BytesPerChangePerProxy float64 `json:"bytes_per_change_per_proxy"`
	CPUPer1000             float64 `json:"server_cpu_seconds_per_1000_changes"`
	StartCPU               float64 `json:"start_cpu_seconds"`
	PeakRSSBytes           int64   `json:"peak_rss_bytes"`
	Error                  string  `json:"error,omitempty"`
}

// Sweep measures every size of services x proxies: per number of services
// it fills the clusters once, then per number of proxies it starts a fresh
// server, waits for the full view and churns at the first of cfg.Rates for
// cfg.Duration. A size that fails is recorded with its error and the sweep
// goes on.
func Sweep(ctx context.Context, cfg Config, services, proxies []int) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(services) == 0 || len(proxies) == 0 {
		return nil, fmt.Errorf("bench: sweep needs at least one number of services and of proxies")
	}
	res := &Results{Time: time.Now().UTC(), Machine: readMachine(), Params: paramsOf(cfg)}
	res.Params.Rates = cfg.Rates[:1]
	res.Params.Stall = false
	for _, s := range services {
		c := cfg
		c.Services = s
		if c, err = c.withDefaults(); err != nil {
			return res, err
		}
		w, err := prepare(ctx, c, &Results{})
		if err != nil {
			return res, err
		}
		for _, p := range proxies {
			point := SweepPoint{Services: s, Proxies: p, Rate: c.Rates[0]}
			r := &Results{Params: paramsOf(c)}
			if err := w.measure(ctx, c, p, c.Rates[:1], false, r); err != nil {
				point.Error = err.Error()
			}
			point.StartSeconds, point.StartCPU, point.PeakRSSBytes = r.Start.Seconds, r.Start.ServerCPU, r.Server.PeakRSSBytes
			point.WrongViews = r.Verify.WrongViews + len(r.Verify.ProxyErrors)
			if len(r.Churn) > 0 {
				ph := r.Churn[0]
				point.Latency, point.Changes, point.Lost = ph.Latency, ph.Changes, ph.Lost
				point.BytesPerChange, point.CPUPer1000 = ph.BytesPerChange, ph.CPUPer1000
				point.BytesPerChangePerProxy = ph.BytesPerChange / float64(p)
			}
			res.Sweep = append(res.Sweep, point)
			fmt.Fprintf(c.Progress, "bench: sweep S=%d P=%d: start %.2fs, p50 %.2f ms, p99 %.2f ms, %.0f bytes/change, peak RSS %.0f MiB %s\n",
				s, p, point.StartSeconds, point.Latency.P50, point.Latency.P99, point.BytesPerChange, mibOf(point.PeakRSSBytes), point.Error)
			if ctx.Err() != nil {
				w.close(false)
				return res, ctx.Err()
			}
		}
		w.close(false)
	}
	res.Machine.LoadAfter = loadAverage()
	res.addNotes()
	return res, nil
}
