package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"time"
)

// Protocol is the xDS variant the simulated proxies speak.
type Protocol string

// Protocols of the simulated proxies.
const (
	ProtocolSotW  Protocol = "sotw"
	ProtocolDelta Protocol = "delta"
)

// Defaults of [Config]: the target size of the issue.
const (
	DefaultServices     = 1000
	DefaultEndpoints    = 10
	DefaultProxies      = 100
	DefaultDuration     = 30 * time.Second
	DefaultSettle       = 30 * time.Second
	DefaultStartTimeout = 5 * time.Minute
	DefaultWriters      = 32
)

// DefaultRates are the churn rates of a run, in changes per second.
func DefaultRates() []float64 { return []float64{10, 100} }

// maxPodsPerCluster keeps pod addresses inside one /16 per cluster.
const maxPodsPerCluster = 1 << 16

// Config configures [Run] and [Sweep].
type Config struct {
	// Causeway is the path of the built causeway binary. Required.
	Causeway string
	// Services and Endpoints are S and E: each cluster holds S Services of
	// E endpoints each (the same Services in both clusters).
	Services  int
	Endpoints int
	// Proxies is P, the simulated sidecars per network.
	Proxies int
	// Rates are the churn rates, one phase each, in changes per second.
	Rates []float64
	// Duration is how long each churn phase writes.
	Duration time.Duration
	// Protocol is sotw or delta.
	Protocol Protocol
	// Stall adds a phase at StallRate in which one proxy stops reading its
	// stream. StallRate zero means the highest of Rates.
	Stall     bool
	StallRate float64
	// Settle bounds the wait, after a phase, for every pair to be delivered.
	Settle time.Duration
	// StartTimeout bounds the wait for every proxy to hold the full view.
	StartTimeout time.Duration
	// DiscoverySelectors labels the namespaces of the mesh (the bench
	// namespace, the system namespace and default) and gives the server a
	// mesh config whose discoverySelectors select exactly them.
	DiscoverySelectors bool
	// Unselected adds, in each cluster, Unselected times the mesh's
	// objects (S Services with E Pods and an EndpointSlice each, per
	// namespace) in Unselected namespaces that the discovery selectors do
	// not select. It needs DiscoverySelectors.
	Unselected int
	// Writers is how many parallel writers fill each cluster.
	Writers int
	// ServeArgs are extra arguments of `causeway serve` (e.g. --debounce=10ms).
	ServeArgs []string
	// WorkDir is where each run makes its own folder for the clusters'
	// files and the server's log, kept; empty means the system's temporary
	// folder, and the run's folder is removed at the end unless it failed.
	WorkDir string
	// ProfileDir, if set, receives the server's Go profiles from its debug
	// API: heap-start.pprof once every proxy is full, and for each churn
	// phase cpu-churn-RATE.pprof (the whole phase) and heap-churn-RATE.pprof.
	ProfileDir string
	// Progress receives progress lines (filling, phases); nil discards them.
	Progress io.Writer
}

// withDefaults fills the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Causeway == "" {
		return c, errors.New("bench: no causeway binary: build it (make build) and pass its path")
	}
	c.Services = cmp.Or(c.Services, DefaultServices)
	c.Endpoints = cmp.Or(c.Endpoints, DefaultEndpoints)
	c.Proxies = cmp.Or(c.Proxies, DefaultProxies)
	if len(c.Rates) == 0 {
		c.Rates = DefaultRates()
	}
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Protocol = cmp.Or(c.Protocol, ProtocolSotW)
	c.Settle = cmp.Or(c.Settle, DefaultSettle)
	c.StartTimeout = cmp.Or(c.StartTimeout, DefaultStartTimeout)
	c.Writers = cmp.Or(c.Writers, DefaultWriters)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.Services < 1 || c.Endpoints < 1 || c.Proxies < 1:
		return c, fmt.Errorf("bench: services %d, endpoints %d, proxies %d: each must be at least 1", c.Services, c.Endpoints, c.Proxies)
	case c.Services*c.Endpoints > maxPodsPerCluster:
		return c, fmt.Errorf("bench: %d services x %d endpoints is over %d pods per cluster; lower -services or -endpoints", c.Services, c.Endpoints, maxPodsPerCluster)
	case c.Protocol != ProtocolSotW && c.Protocol != ProtocolDelta:
		return c, fmt.Errorf("bench: protocol %q: want sotw or delta", c.Protocol)
	case c.Unselected < 0 || c.Unselected > 0 && !c.DiscoverySelectors:
		return c, fmt.Errorf("bench: unselected %d: want 0, or more with discovery selectors on", c.Unselected)
	case c.Services*c.Endpoints*(1+c.Unselected) > 4*maxPodsPerCluster:
		return c, fmt.Errorf("bench: %d services x %d endpoints x %d namespaces is too many pods per cluster; lower -unselected", c.Services, c.Endpoints, 1+c.Unselected)
	case c.Duration < 0 || c.Settle < 0 || c.StartTimeout < 0 || c.Writers < 0:
		return c, errors.New("bench: negative duration or writer count")
	}
	for _, r := range c.Rates {
		if r <= 0 || r > 10000 {
			return c, fmt.Errorf("bench: rate %v: want a number of changes per second in (0, 10000]", r)
		}
	}
	if c.Stall && c.StallRate == 0 {
		for _, r := range c.Rates {
			c.StallRate = max(c.StallRate, r)
		}
	}
	return c, nil
}
