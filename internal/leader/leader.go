// Package leader decides which replica of `causeway serve` writes to the
// clusters. Every replica watches and serves; the writers (the root
// ConfigMap publisher, and whatever else writes to a cluster) run only on
// the replica that holds a Lease in the system namespace of the config
// cluster, elected with client-go's leaderelection. A [Gate] is the seam:
// a writer runs through [Gate.Do], which starts it when this replica
// becomes the leader and stops it when the replica stops leading; the
// lease is given up only after every writer has returned.
package leader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults of [Config]: client-go's usual values (those of
// kube-controller-manager).
const (
	DefaultLeaseName     = "causeway-leader"
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config configures an [Elector].
type Config struct {
	// Client reaches the config cluster, which holds the Lease. Required.
	Client kubernetes.Interface
	// Namespace and Name name the Lease (coordination.k8s.io/v1). Name
	// defaults to DefaultLeaseName; Namespace is required.
	Namespace string
	Name      string
	// Identity names this replica in the Lease (holderIdentity): unique
	// among the replicas, e.g. the pod name. Required.
	Identity string
	// LeaseDuration is how long the other replicas wait, after the
	// leader's last renewal, before taking the lease; RenewDeadline is how
	// long the leader keeps trying to renew before it stops leading;
	// RetryPeriod is the wait between tries. LeaseDuration >
	// RenewDeadline > RetryPeriod (client-go's rule). Defaults above.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// Registerer receives causeway_is_leader; nil leaves it unregistered.
	Registerer prometheus.Registerer
	// Logger receives the elector's logs. Required.
	Logger *slog.Logger
}

// Status is what a replica knows of the election, for /debug/leader.
type Status struct {
	// Enabled is false when leader election is off (--leader-elect=false):
	// the replica then always writes.
	Enabled bool `json:"enabled"`
	// Lease is NAMESPACE/NAME of the Lease.
	Lease string `json:"lease,omitempty"`
	// Identity is this replica's name in the Lease.
	Identity string `json:"identity,omitempty"`
	// Leader is the holder this replica last observed ("" before any).
	Leader string `json:"leader"`
	// IsLeader says whether this replica runs the writers now.
	IsLeader bool `json:"isLeader"`
	// Since is when this replica last started or stopped leading.
	Since time.Time `json:"since,omitzero"`
	// Holder, RenewTime, LeaseDurationSeconds and Transitions are the
	// Lease as read from the config cluster when the status was asked
	// for; LeaseError says why it could not be read.
	Holder               string    `json:"holder,omitempty"`
	RenewTime            time.Time `json:"renewTime,omitzero"`
	LeaseDurationSeconds int32     `json:"leaseDurationSeconds,omitempty"`
	Transitions          int32     `json:"transitions,omitempty"`
	LeaseError           string    `json:"leaseError,omitempty"`
}

// Elector runs the election of one replica and its [Gate].
type Elector struct {
	cfg   Config
	log   *slog.Logger
	gate  *Gate
	lock  resourcelock.Interface
	gauge prometheus.Gauge

	mu     sync.Mutex
	status Status
}

// New checks cfg and builds the elector; nothing runs until [Elector.Run].
func New(cfg Config) (*Elector, error) {
	switch {
	case cfg.Logger == nil:
		return nil, errors.New("leader: Config.Logger is nil")
	case cfg.Client == nil:
		return nil, errors.New("leader: Config.Client is nil")
	case cfg.Namespace == "":
		return nil, errors.New("leader: Config.Namespace is empty")
	case cfg.Identity == "":
		return nil, errors.New("leader: no identity: set --leader-identity (default: $POD_NAME, else the host name)")
	}
	cfg.Name = cmp.Or(cfg.Name, DefaultLeaseName)
	cfg.LeaseDuration = cmp.Or(cfg.LeaseDuration, DefaultLeaseDuration)
	cfg.RenewDeadline = cmp.Or(cfg.RenewDeadline, DefaultRenewDeadline)
	cfg.RetryPeriod = cmp.Or(cfg.RetryPeriod, DefaultRetryPeriod)
	if err := CheckDurations(cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod); err != nil {
		return nil, err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.Namespace, cfg.Name,
		cfg.Client.CoreV1(), cfg.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: cfg.Identity})
	if err != nil {
		return nil, fmt.Errorf("leader: lease %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	e := &Elector{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "leader", "identity", cfg.Identity),
		gate: newGate(),
		lock: lock,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_is_leader",
			Help: "1 while this replica holds the leader Lease and runs the writers (root ConfigMaps), else 0.",
		}),
		status: Status{Enabled: true, Lease: cfg.Namespace + "/" + cfg.Name, Identity: cfg.Identity},
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(e.gauge); err != nil {
			return nil, fmt.Errorf("leader: register metrics: %w", err)
		}
	}
	return e, nil
}

// CheckDurations checks the lease timings as client-go will, with errors
// that name the flags.
func CheckDurations(lease, renew, retry time.Duration) error {
	switch {
	case lease <= 0 || renew <= 0 || retry <= 0:
		return fmt.Errorf("leader election: durations must be positive (lease %v, renew deadline %v, retry period %v)", lease, renew, retry)
	case lease <= renew:
		return fmt.Errorf("leader election: --leader-lease-duration %v must be longer than --leader-renew-deadline %v", lease, renew)
	case float64(renew) <= leaderelection.JitterFactor*float64(retry):
		return fmt.Errorf("leader election: --leader-renew-deadline %v must be longer than %.1f x --leader-retry-period %v", renew, leaderelection.JitterFactor, retry)
	}
	return nil
}

// Gate returns the gate the writers run through.
func (e *Elector) Gate() *Gate { return e.gate }

// Status returns what this replica knows of the election.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// ReadLease returns [Elector.Status] with the Lease as the config
// cluster holds it now.
func (e *Elector) ReadLease(ctx context.Context) Status {
	st := e.Status()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := e.cfg.Client.CoordinationV1().Leases(e.cfg.Namespace).Get(ctx, e.cfg.Name, metav1.GetOptions{})
	if err != nil {
		st.LeaseError = err.Error()
		return st
	}
	sp := l.Spec
	if sp.HolderIdentity != nil {
		st.Holder = *sp.HolderIdentity
	}
	if sp.RenewTime != nil {
		st.RenewTime = sp.RenewTime.Time
	}
	if sp.LeaseDurationSeconds != nil {
		st.LeaseDurationSeconds = *sp.LeaseDurationSeconds
	}
	if sp.LeaseTransitions != nil {
		st.Transitions = *sp.LeaseTransitions
	}
	return st
}

func (e *Elector) setLeading(on bool) {
	e.mu.Lock()
	e.status.IsLeader, e.status.Since = on, time.Now()
	e.mu.Unlock()
	if on {
		e.gauge.Set(1)
	} else {
		e.gauge.Set(0)
	}
}

// Run takes part in the election until ctx ends: when this replica wins,
// the gate opens and the writers run; when it loses the lease, they stop
// and it competes again. When ctx ends while it leads, the writers are
// stopped first and the lease is then released, so another replica takes
// over at its next try instead of waiting LeaseDuration.
func (e *Elector) Run(ctx context.Context) {
	for ctx.Err() == nil {
		e.runTerm(ctx)
	}
}

// runTerm runs one client-go election: acquire, lead, lose (or ctx ends).
func (e *Elector) runTerm(ctx context.Context) {
	// The election's own context ends only after the writers stopped, so
	// that the release (ReleaseOnCancel) follows them.
	electCtx, cancelElect := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelElect()
	var (
		mu       sync.Mutex
		leadDone chan struct{} // set when this term started leading
		over     bool          // runTerm no longer waits: start no term
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            e.lock,
		Name:            e.cfg.Name,
		LeaseDuration:   e.cfg.LeaseDuration,
		RenewDeadline:   e.cfg.RenewDeadline,
		RetryPeriod:     e.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				if over || ctx.Err() != nil || lctx.Err() != nil {
					mu.Unlock()
					return
				}
				done := make(chan struct{})
				leadDone = done
				mu.Unlock()
				defer close(done)
				// The term ends when the lease is lost or ctx ends.
				term, cancel := context.WithCancel(lctx)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				e.setLeading(true)
				e.log.Info("leading: running the writers")
				e.gate.lead(term)
				e.setLeading(false)
				e.log.Info("stopped leading: writers stopped")
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				e.mu.Lock()
				e.status.Leader = identity
				e.mu.Unlock()
				e.log.Info("leader observed", "leader", identity)
			},
		},
	})
	if err != nil {
		// CheckDurations ran in New: only a programming error lands here.
		e.log.Error("leader election not started", "err", err)
		<-ctx.Done()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		le.Run(electCtx)
	}()
	select {
	case <-done:
		// The lease was lost: wait for the writers to stop before
		// competing again.
	case <-ctx.Done():
	}
	mu.Lock()
	ld := leadDone
	over = true // a term that has not started now never does
	mu.Unlock()
	if ld != nil {
		<-ld
	}
	cancelElect()
	<-done
}

// Gate runs the writers while this replica leads. The zero value is not
// usable; get one from [Elector.Gate] or [AlwaysOpen].
type Gate struct {
	mu      sync.Mutex
	cur     *term
	changed chan struct{} // closed when cur changes
}

// term is one period of leadership; wg counts the writers running in it.
type term struct {
	ctx context.Context
	wg  sync.WaitGroup
}

func newGate() *Gate { return &Gate{changed: make(chan struct{})} }

// AlwaysOpen returns a gate that is always open: for a server without
// leader election (a single replica), whose writers always run.
func AlwaysOpen() *Gate {
	g := newGate()
	g.cur = &term{ctx: context.Background()}
	return g
}

// lead opens the gate for a term that lasts until ctx ends, then closes
// it and waits for every writer of the term to return.
func (g *Gate) lead(ctx context.Context) {
	t := &term{ctx: ctx}
	g.set(t)
	<-ctx.Done()
	g.set(nil)
	t.wg.Wait()
}

func (g *Gate) set(t *term) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur = t
	close(g.changed)
	g.changed = make(chan struct{})
}

// Do runs fn during every term of leadership until ctx ends: fn's context
// ends when the term or ctx ends, and the term is not over (the lease not
// released) before fn returns. If fn returns early, Do waits for the next
// term. Do returns when ctx ends.
func (g *Gate) Do(ctx context.Context, fn func(ctx context.Context)) {
	for {
		g.mu.Lock()
		t, changed := g.cur, g.changed
		if t != nil {
			t.wg.Add(1)
		}
		g.mu.Unlock()
		if t == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		runCtx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(t.ctx, cancel)
		fn(runCtx)
		stop()
		cancel()
		t.wg.Done()
		select {
		case <-t.ctx.Done():
		case <-ctx.Done():
			return
		}
	}
}
