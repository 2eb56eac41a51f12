// Command causeway-bench is Causeway's load harness (package
// internal/bench): two real clusters on two networks, the built causeway
// binary serving them, and P simulated sidecars per network; it measures
// the start to the full view, the latency of every change to every proxy
// that must see it, the server's CPU and peak RSS, and checks every view.
// `make bench` runs it at the target size.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/internal/bench"
)

// floatList is a flag of numbers given as a comma-separated list, repeated,
// or both; the first use replaces the default.
type floatList struct {
	vals []float64
	set  bool
}

func (l *floatList) String() string {
	parts := make([]string, len(l.vals))
	for i, v := range l.vals {
		parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

func (l *floatList) Set(s string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	for part := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", part)
		}
		l.vals = append(l.vals, v)
	}
	return nil
}

// intList is floatList for whole numbers.
type intList struct{ floatList }

func (l *intList) ints() []int {
	out := make([]int, len(l.vals))
	for i, v := range l.vals {
		out[i] = int(v)
	}
	return out
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "causeway-bench:", err)
		os.Exit(1)
	}
}

// options are the flags of causeway-bench.
type options struct {
	cfg       bench.Config
	rates     floatList
	sweepS    intList
	sweepP    intList
	serveArgs stringList
	protocol  string
	out       string
	sweep     bool
	failover  bool
	fo        bench.FailoverConfig
}

func run() error {
	o, err := parseFlags(os.Args[1:])
	if err != nil || o == nil {
		return err // o is nil after -h
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := o.bench(ctx)
	if res != nil {
		if werr := res.WriteJSON(o.out); werr != nil {
			return werr
		}
		if terr := res.WriteTable(os.Stdout); terr != nil {
			return terr
		}
		fmt.Fprintf(os.Stderr, "results written to %s\n", o.out)
	}
	if err != nil {
		return err
	}
	if f := res.Failures(); len(f) > 0 {
		return fmt.Errorf("the run found %d problem(s):\n  %s", len(f), strings.Join(f, "\n  "))
	}
	return nil
}

// parseFlags reads the command line into options; nil options and no
// error after -h.
func parseFlags(args []string) (*options, error) {
	o := &options{
		rates:  floatList{vals: bench.DefaultRates()},
		sweepS: intList{floatList{vals: []float64{100, 1000, 5000}}},
		sweepP: intList{floatList{vals: []float64{50, 200, 500}}},
	}
	fs := flag.NewFlagSet("causeway-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: causeway-bench [flags]\n\nLoad harness of causeway serve against two real kube-apiservers. Flags:\n")
		fs.PrintDefaults()
	}
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every setting is a flag (see -h)", fs.Args())
	}
	o.cfg.Rates, o.cfg.Protocol, o.cfg.ServeArgs = o.rates.vals, bench.Protocol(o.protocol), o.serveArgs
	o.cfg.Progress = os.Stderr
	return o, nil
}

// register adds the flags of causeway-bench to fs.
func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.cfg.Causeway, "causeway", "bin/causeway", "the built causeway binary (make build)")
	fs.IntVar(&o.cfg.Services, "services", bench.DefaultServices, "S: services per cluster (the same in both)")
	fs.IntVar(&o.cfg.Endpoints, "endpoints", bench.DefaultEndpoints, "E: endpoints (pods) per service per cluster")
	fs.IntVar(&o.cfg.Proxies, "proxies", bench.DefaultProxies, "P: simulated sidecars per network")
	fs.Var(&o.rates, "rate", "churn rates in changes/s: a list (10,100) or repeated; one phase each")
	fs.DurationVar(&o.cfg.Duration, "duration", bench.DefaultDuration, "how long each churn phase writes")
	fs.StringVar(&o.protocol, "protocol", string(bench.ProtocolSotW), "xDS variant of the proxies: sotw or delta")
	fs.BoolVar(&o.cfg.Stall, "stall", true, "add a phase in which one proxy stops reading its stream")
	fs.Float64Var(&o.cfg.StallRate, "stall-rate", 0, "rate of the stall phase (default: the highest -rate)")
	fs.DurationVar(&o.cfg.Settle, "settle", bench.DefaultSettle, "after a phase, how long to wait for every change to reach every proxy")
	fs.DurationVar(&o.cfg.StartTimeout, "start-timeout", bench.DefaultStartTimeout, "how long to wait for every proxy to hold the full view")
	fs.BoolVar(&o.cfg.DiscoverySelectors, "discovery-selectors", false, "label the mesh's namespaces and give the server a mesh config whose discoverySelectors select only them")
	fs.IntVar(&o.cfg.Unselected, "unselected", 0, "with -discovery-selectors: add N unselected namespaces per cluster, each holding as many Services, Pods and EndpointSlices as the mesh (N times the mesh's objects)")
	fs.IntVar(&o.cfg.Writers, "writers", bench.DefaultWriters, "parallel writers per cluster while filling")
	fs.Var(&o.serveArgs, "serve-arg", "extra argument of causeway serve (repeatable), e.g. -serve-arg=--debounce=10ms")
	fs.StringVar(&o.cfg.WorkDir, "workdir", "", "folder in which each run makes its own folder for the clusters' files and the server's log, kept (default: a temporary one, removed unless the run fails)")
	fs.StringVar(&o.cfg.ProfileDir, "profile", "", "folder for the server's Go profiles (CPU of each churn phase, heap after start and each phase); read them with go tool pprof -top bin/causeway FILE")
	fs.StringVar(&o.out, "out", "bench/out/latest.json", "where to write the results as JSON (its folder is made; bench/out/ is not tracked: keep a run by copying it into bench/results/ under a dated name)")
	fs.BoolVar(&o.sweep, "sweep", false, "sweep sizes: -sweep-services x -sweep-proxies, one churn phase at the first -rate each")
	fs.Var(&o.sweepS, "sweep-services", "services of the sweep")
	fs.Var(&o.sweepP, "sweep-proxies", "proxies per network of the sweep")
	fs.BoolVar(&o.failover, "failover", false, "failover run: two replicas of causeway serve with leader election, -proxies per network (half delta, half SotW) spread over both, churn at the first -rate; "+
		"SIGKILL the leader, restart it, SIGTERM the new leader; report reconnect and re-converge times, leaders and root ConfigMap writers (the results' failover section)")
	fs.DurationVar(&o.fo.Steady, "failover-steady", 3*time.Second, "failover: churn before each failure and after the last")
	fs.DurationVar(&o.fo.LeaseDuration, "failover-lease", 4*time.Second, "failover: the replicas' --leader-lease-duration (renew deadline 3/4 of it, retry period 1/8)")
}

// bench runs what the flags ask for: a failover run, a sweep of sizes, or
// churn phases at one size.
func (o *options) bench(ctx context.Context) (*bench.Results, error) {
	switch {
	case o.failover:
		o.fo.Rate = o.cfg.Rates[0]
		o.fo.RenewDeadline, o.fo.RetryPeriod = o.fo.LeaseDuration*3/4, o.fo.LeaseDuration/8
		return bench.Failover(ctx, o.cfg, o.fo)
	case o.sweep:
		return bench.Sweep(ctx, o.cfg, o.sweepS.ints(), o.sweepP.ints())
	default:
		return bench.Run(ctx, o.cfg)
	}
}
