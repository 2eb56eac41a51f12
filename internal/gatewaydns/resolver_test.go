package gatewaydns

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway-mesh/causeway/internal/gatewaydns/dnstest"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type harness struct {
	r       *Resolver
	dns     *dnstest.Server
	changes atomic.Int64
	mu      sync.Mutex
	wanted  []string
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{dns: dnstest.Start(t)}
	cfg.Servers = []string{h.dns.Addr}
	cfg.Wanted = func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		return slices.Clone(h.wanted)
	}
	cfg.Changed = func() { h.changes.Add(1) }
	cfg.Logger = testkit.DiscardLogger()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (h *harness) want(names ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wanted = names
}

func (h *harness) lookup(name string) string {
	ips, err := h.r.Lookup(name)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(ips, ",")
}

// TestResolverFollowsAnswers: a name is asked once looked up, again when
// its TTL (bounded) runs out; a changed answer calls Changed; a failure
// keeps the last good addresses and is reported until the name resolves
// again.
func TestResolverFollowsAnswers(t *testing.T) {
	h := start(t, Config{MinTTL: 20 * time.Millisecond, MaxTTL: 50 * time.Millisecond, Refresh: 30 * time.Millisecond})
	const name = "gw.example.test"
	h.want(name)
	h.dns.Set(name, 3600, "192.0.2.1", "2001:db8::1")

	if got := h.lookup(name); got != "error: not resolved yet" {
		t.Fatalf("first lookup: got %q, want not resolved yet", got)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "first answer", func() string {
		if got := h.lookup(name); got != "192.0.2.1,2001:db8::1" {
			return got
		}
		return ""
	})
	if h.changes.Load() < 1 {
		t.Error("Changed was not called after the first answer")
	}
	// The TTL of 3600s is bounded by MaxTTL.
	st := h.r.Statuses()
	if len(st) != 1 || st[0].NextLookup.Sub(*st[0].ResolvedAt) != 50*time.Millisecond || st[0].TTLSeconds != 3600 {
		t.Errorf("status: %+v, want the next lookup MaxTTL after the answer", st)
	}

	before := h.changes.Load()
	h.dns.Set(name, 0, "192.0.2.2")
	testkit.Eventually(t, testkit.WaitTimeout, "changed answer", func() string {
		if got := h.lookup(name); got != "192.0.2.2" {
			return got
		}
		return ""
	})
	if h.changes.Load() == before {
		t.Error("Changed was not called after the answer changed")
	}
	// A TTL of 0 is bounded by MinTTL.
	st = h.r.Statuses()
	if d := st[0].NextLookup.Sub(*st[0].ResolvedAt); d != 20*time.Millisecond {
		t.Errorf("next lookup %s after the answer, want MinTTL", d)
	}

	h.dns.Fail(true)
	testkit.Eventually(t, testkit.WaitTimeout, "failure reported", func() string {
		w := h.r.Warnings()
		if len(w) != 1 || !strings.Contains(w[0], "SERVFAIL") || !strings.Contains(w[0], "last good addresses 192.0.2.2 are kept") {
			return strings.Join(w, "; ")
		}
		return ""
	})
	if got := h.lookup(name); got != "192.0.2.2" {
		t.Errorf("lookup while failing: got %q, want the last good 192.0.2.2", got)
	}
	h.dns.Set(name, 0, "192.0.2.3")
	h.dns.Fail(false)
	testkit.Eventually(t, testkit.WaitTimeout, "recovered", func() string {
		if got := h.lookup(name); got != "192.0.2.3" {
			return got
		}
		if w := h.r.Warnings(); len(w) > 0 {
			return strings.Join(w, "; ")
		}
		return ""
	})

	// A name no longer wanted is forgotten.
	h.want()
	testkit.Eventually(t, testkit.WaitTimeout, "forgotten", func() string {
		if st := h.r.Statuses(); len(st) > 0 {
			return st[0].Host
		}
		return ""
	})
}

// TestResolverNameNeverResolved: a name that never resolves fails Lookup
// with the reason and is asked again every Refresh.
func TestResolverNameNeverResolved(t *testing.T) {
	h := start(t, Config{Refresh: 20 * time.Millisecond})
	h.want("missing.example.test")
	_, _ = h.r.Lookup("missing.example.test")
	testkit.Eventually(t, testkit.WaitTimeout, "NXDOMAIN reported", func() string {
		if got := h.lookup("missing.example.test"); !strings.Contains(got, "NXDOMAIN") {
			return got
		}
		return ""
	})
	n := h.dns.Queries()
	testkit.Eventually(t, testkit.WaitTimeout, "asked again", func() string {
		if h.dns.Queries() < n+2 {
			return "no new query"
		}
		return ""
	})
}

func TestNewChecksConfig(t *testing.T) {
	base := Config{Wanted: func() []string { return nil }, Changed: func() {}, Logger: testkit.DiscardLogger()}
	for name, mod := range map[string]func(*Config){
		"no Wanted":        func(c *Config) { c.Wanted = nil },
		"bad server":       func(c *Config) { c.Servers = []string{"127.0.0.1"} },
		"max below min":    func(c *Config) { c.MinTTL, c.MaxTTL = time.Minute, time.Second },
		"negative refresh": func(c *Config) { c.Refresh = -1 },
	} {
		cfg := base
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	// No resolv.conf: every lookup fails and says what to do.
	cfg := base
	cfg.ResolvConf = t.TempDir() + "/none"
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.query(t.Context(), "x.example.test"); err == nil || !strings.Contains(err.Error(), "--gateway-dns-server") {
		t.Errorf("lookup without a DNS server: %v", err)
	}
}
