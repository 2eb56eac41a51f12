// Package gatewaydns resolves the hostnames of east-west gateways (a
// LoadBalancer Service's ingress hostnames, meshNetworks gateway addresses
// that are names) for the model, and keeps them fresh. [Resolver.Lookup] is
// the model's Config.Resolve: it answers from a cache and never waits for
// the network. [Resolver.Run] asks the DNS server for every name the model
// wants, again when the answer's TTL runs out (bounded by MinTTL and
// MaxTTL), and calls Changed when an answer differs, so that the model
// resolves again and pushes the affected views. A failed lookup keeps the
// last good addresses and is reported ([Resolver.Warnings]) until a lookup
// succeeds again.
package gatewaydns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults of [Config].
const (
	DefaultRefresh    = 30 * time.Second
	DefaultMinTTL     = 5 * time.Second
	DefaultMaxTTL     = 5 * time.Minute
	DefaultTimeout    = 2 * time.Second
	DefaultResolvConf = "/etc/resolv.conf"
)

// errPending is Lookup's answer for a name not asked yet.
var errPending = errors.New("not resolved yet")

// Config configures a [Resolver].
type Config struct {
	// Servers are the DNS servers asked, HOST:PORT, in order (the next one
	// when one fails). Empty: the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is the resolver configuration read when Servers is empty.
	// Default /etc/resolv.conf.
	ResolvConf string
	// Refresh is how often a name is asked again when its TTL is unknown
	// (the lookup failed). Default 30s.
	Refresh time.Duration
	// MinTTL and MaxTTL bound the TTL of an answer: a name is asked again
	// no sooner than MinTTL and no later than MaxTTL after its answer.
	// Defaults 5s and 5m.
	MinTTL time.Duration
	MaxTTL time.Duration
	// Timeout bounds one query to one server. Default 2s.
	Timeout time.Duration
	// Wanted returns the names the model uses now; the others are
	// forgotten. Required.
	Wanted func() []string
	// Changed is called (from Run's goroutine) after a round of lookups
	// in which an answer differed from the previous one. Required.
	Changed func()
	// Logger receives the resolver's logs. Required.
	Logger *slog.Logger
}

// Resolver resolves gateway hostnames. Create it with [New], run it with
// [Resolver.Run]. Its methods are safe for concurrent use.
type Resolver struct {
	cfg     Config
	servers []string
	// serversErr is why no server is known (ResolvConf unreadable).
	serversErr error
	client     *dns.Client
	kick       chan struct{}
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

// entry is what is known of one name.
type entry struct {
	added time.Time
	// ips are the last good addresses, sorted; nil before the first
	// successful lookup.
	ips        []string
	ttl        time.Duration // of the last good answer
	resolvedAt time.Time
	next       time.Time
	// err is why the latest lookup failed; empty after a success.
	err      string
	failedAt time.Time
}

// New checks cfg and builds the resolver.
func New(cfg Config) (*Resolver, error) {
	switch {
	case cfg.Wanted == nil || cfg.Changed == nil:
		return nil, errors.New("gatewaydns: Config.Wanted and Config.Changed are required")
	case cfg.Logger == nil:
		return nil, errors.New("gatewaydns: Config.Logger is nil")
	case cfg.Refresh < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.Timeout < 0:
		return nil, errors.New("gatewaydns: negative duration in Config")
	}
	cfg.Refresh = cmp.Or(cfg.Refresh, DefaultRefresh)
	cfg.MinTTL = cmp.Or(cfg.MinTTL, DefaultMinTTL)
	cfg.MaxTTL = cmp.Or(cfg.MaxTTL, DefaultMaxTTL)
	if cfg.MaxTTL < cfg.MinTTL {
		return nil, fmt.Errorf("gatewaydns: the largest TTL (%s) is below the smallest (%s): raise --gateway-dns-max-ttl", cfg.MaxTTL, cfg.MinTTL)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ResolvConf = cmp.Or(cfg.ResolvConf, DefaultResolvConf)
	r := &Resolver{
		cfg:     cfg,
		client:  &dns.Client{Timeout: cfg.Timeout},
		kick:    make(chan struct{}, 1),
		now:     time.Now,
		entries: map[string]*entry{},
	}
	for _, s := range cfg.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("gatewaydns: DNS server %q: %w: give HOST:PORT", s, err)
		}
	}
	r.servers = slices.Clone(cfg.Servers)
	if len(r.servers) == 0 {
		r.servers, r.serversErr = resolvConfServers(cfg.ResolvConf)
	}
	return r, nil
}

// resolvConfServers reads the nameservers of a resolv.conf file.
func resolvConfServers(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("no DNS server: read %s: %w: give --gateway-dns-server", path, err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("no DNS server: %s names no nameserver: give --gateway-dns-server", path)
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// Lookup returns the last good addresses of host, from the cache. A name
// not asked yet is queued for Run, which calls Changed once it has an
// answer; until then Lookup fails. An IP address is returned as it is.
func (r *Resolver) Lookup(host string) ([]string, error) {
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{host}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[host]
	if e == nil {
		now := r.now()
		r.entries[host] = &entry{added: now, next: now}
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return nil, errPending
	}
	if e.ips != nil {
		return slices.Clone(e.ips), nil
	}
	if e.err != "" {
		return nil, errors.New(e.err)
	}
	return nil, errPending
}

// Run looks names up when they are due until ctx is done.
func (r *Resolver) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		wait := r.round(ctx)
		if ctx.Err() != nil {
			return
		}
		t.Stop()
		t.Reset(wait)
	}
}

// round looks up every due name, calls Changed if an answer differed, and
// returns the time until the next name is due.
func (r *Resolver) round(ctx context.Context) time.Duration {
	wanted := map[string]bool{}
	for _, h := range r.cfg.Wanted() {
		wanted[h] = true
	}
	now := r.now()
	var due []string
	r.mu.Lock()
	for h, e := range r.entries {
		// A name Lookup just added may not be stored in the model yet.
		if !wanted[h] && now.Sub(e.added) > r.cfg.Refresh {
			delete(r.entries, h)
			continue
		}
		if !e.next.After(now) {
			due = append(due, h)
		}
	}
	r.mu.Unlock()
	slices.Sort(due)

	changed := false
	for _, h := range due {
		ips, ttl, server, err := r.query(ctx, h)
		if ctx.Err() != nil {
			return 0
		}
		changed = r.record(h, ips, ttl, server, err) || changed
	}
	if changed {
		r.cfg.Changed()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	wait := r.cfg.MaxTTL
	now = r.now()
	for _, e := range r.entries {
		wait = min(wait, max(e.next.Sub(now), 0))
	}
	return wait
}

// record stores the outcome of a lookup of h and reports whether what
// Lookup answers changed.
func (r *Resolver) record(h string, ips []string, ttl time.Duration, server string, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[h]
	if e == nil {
		return false
	}
	now := r.now()
	log := r.cfg.Logger.With("host", h)
	if err != nil {
		msg := err.Error()
		if server != "" {
			msg = fmt.Sprintf("%s (DNS server %s)", msg, server)
		}
		first := e.err == ""
		if first {
			e.failedAt = now
			if e.ips != nil {
				log.Info("gateway hostname lookup failed; its last good addresses are kept", "addresses", e.ips, "err", msg)
			} else {
				log.Info("gateway hostname lookup failed; it gives no gateway until it resolves", "err", msg)
			}
		}
		changed := e.ips == nil && e.err != msg
		e.err = msg
		e.next = now.Add(r.cfg.Refresh)
		return changed
	}
	slices.Sort(ips)
	changed := !slices.Equal(e.ips, ips)
	if changed && e.ips != nil {
		log.Info("gateway hostname answers changed", "from", e.ips, "to", ips, "ttl", ttl)
	}
	if e.err != "" && e.ips != nil {
		log.Info("gateway hostname resolves again", "addresses", ips)
	}
	e.ips, e.ttl, e.resolvedAt, e.err = ips, ttl, now, ""
	e.next = now.Add(min(max(ttl, r.cfg.MinTTL), r.cfg.MaxTTL))
	return changed
}

// query asks the servers in order for the A and AAAA records of host and
// returns the addresses, the smallest TTL of the records that led to them,
// and, on failure, the last server asked.
func (r *Resolver) query(ctx context.Context, host string) (ips []string, ttl time.Duration, server string, err error) {
	if r.serversErr != nil {
		return nil, 0, "", r.serversErr
	}
	for _, server = range r.servers {
		ips, ttl, err = r.queryServer(ctx, server, host)
		if err == nil {
			return ips, ttl, server, nil
		}
	}
	return nil, 0, server, err
}

func (r *Resolver) queryServer(ctx context.Context, server, host string) ([]string, time.Duration, error) {
	var ips []string
	ttl := time.Duration(-1)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(host), qt)
		m.RecursionDesired = true
		in, err := r.exchange(ctx, m, server)
		if err != nil {
			return nil, 0, fmt.Errorf("%s query: %w", dns.TypeToString[qt], err)
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, 0, errors.New("no such name (NXDOMAIN)")
		default:
			return nil, 0, fmt.Errorf("%s query answered %s", dns.TypeToString[qt], dns.RcodeToString[in.Rcode])
		}
		for _, rr := range in.Answer {
			var ip net.IP
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			case *dns.CNAME:
			default:
				continue
			}
			d := time.Duration(rr.Header().Ttl) * time.Second
			if ttl < 0 || d < ttl {
				ttl = d
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				ips = append(ips, a.Unmap().String())
			}
		}
	}
	if len(ips) == 0 {
		return nil, 0, errors.New("no A or AAAA record")
	}
	slices.Sort(ips)
	return slices.Compact(ips), max(ttl, 0), nil
}

// exchange sends m over UDP, and again over TCP when the answer was
// truncated. Both are bounded by the client's timeout and by ctx.
func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	in, _, err := r.client.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, err
	}
	if in.Truncated {
		tcp := &dns.Client{Net: "tcp", Timeout: r.cfg.Timeout}
		if in, _, err = tcp.ExchangeContext(ctx, m, server); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Status is what is known of one gateway hostname.
type Status struct {
	Host string `json:"host"`
	// Addresses are the last good addresses, which the model uses.
	Addresses  []string   `json:"addresses,omitempty"`
	TTLSeconds float64    `json:"ttlSeconds,omitempty"`
	ResolvedAt *time.Time `json:"resolvedAt,omitempty"`
	NextLookup time.Time  `json:"nextLookup"`
	// Error is why the latest lookup failed, FailingSince since when.
	Error        string     `json:"error,omitempty"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
}

// Statuses returns what is known of every name, sorted by name.
func (r *Resolver) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.entries))
	for _, h := range slices.Sorted(maps.Keys(r.entries)) {
		e := r.entries[h]
		st := Status{Host: h, Addresses: slices.Clone(e.ips), NextLookup: e.next, Error: e.err}
		if e.ips != nil {
			t := e.resolvedAt
			st.ResolvedAt, st.TTLSeconds = &t, e.ttl.Seconds()
		}
		if e.err != "" {
			t := e.failedAt
			st.FailingSince = &t
		}
		out = append(out, st)
	}
	return out
}

// Warnings says, for /debug/networks, which names fail to resolve now and
// what is used instead.
func (r *Resolver) Warnings() []string {
	var out []string
	for _, st := range r.Statuses() {
		if st.Error == "" {
			continue
		}
		keep := "it gives no gateway until it resolves"
		if len(st.Addresses) > 0 {
			keep = "its last good addresses " + strings.Join(st.Addresses, ", ") + " are kept"
		}
		out = append(out, fmt.Sprintf("gateway hostname %s: lookup failing since %s: %s; %s; asked again at %s",
			st.Host, st.FailingSince.UTC().Format(time.RFC3339), st.Error, keep, st.NextLookup.UTC().Format(time.RFC3339)))
	}
	return out
}
