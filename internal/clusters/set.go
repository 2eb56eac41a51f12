// Package clusters keeps the set of clusters Causeway watches: the config
// cluster, and one remote cluster per data key of every Secret labeled
// istio/multiCluster=true in the system namespace (the key is the cluster
// id, the value its kubeconfig, as `istioctl create-remote-secret` writes).
// Each cluster gets its own internal/kube watcher, built through an
// injectable [ClientFactory], and its own health probe.
//
// Staleness is explicit: a cluster whose API server stops answering is
// marked stale and keeps its last-known objects in the model (fail-static)
// unless the [StalePolicy] drops them after a grace; when it answers again
// its watch re-lists and reconciles, and dropped objects are written back.
// A remote secret entry that cannot be used is reported (log, metric,
// [Set.Statuses]) and never disturbs the other clusters.
package clusters

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Store is what the cluster set writes into: the input side of
// *model.Store.
type Store interface {
	kube.Store
	kube.Retainer
	RemoveCluster(c model.ClusterID)
}

var _ Store = (*model.Store)(nil)

// Defaults of [Config].
const (
	DefaultProbeInterval = 5 * time.Second
	DefaultProbeTimeout  = 3 * time.Second
	// DefaultSwapTimeout bounds how long a changed kubeconfig's new watch
	// may take to sync before the change is refused.
	DefaultSwapTimeout = 2 * time.Minute
	// rejectedShown bounds the rejected objects a Status lists.
	rejectedShown = 20
)

// Config configures a [Set].
type Config struct {
	// ClusterID is the config cluster's id (--cluster-id). Required.
	ClusterID model.ClusterID
	// Local reaches the config cluster, which holds the remote secrets.
	// Required.
	Local Clients
	// SystemNamespace holds the remote secrets and the network label.
	// Default istio-system.
	SystemNamespace string
	// Store receives every cluster's objects. Required.
	Store Store
	// Changed, if set, is called after each change to Store; it must not
	// block (the server's publish loop only takes a signal).
	Changed func()
	// NewClients builds a remote cluster's clients from its kubeconfig.
	// Default KubeconfigClients.
	NewClients ClientFactory
	// StalePolicy says what happens to an unreachable cluster's objects.
	StalePolicy StalePolicy
	// ProbeInterval is how often each API server is probed; a failed watch
	// probes at once. Default 5s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe. Default 3s (at most ProbeInterval).
	ProbeTimeout time.Duration
	// SwapTimeout bounds how long the new watch of a changed kubeconfig
	// (a rotated token or CA, a moved server) may take to connect,
	// authenticate and sync; past it the change is refused and the
	// previous kubeconfig kept. Default DefaultSwapTimeout (2m).
	SwapTimeout time.Duration
	// PeerAuthRecheck is how often a cluster that does not serve
	// PeerAuthentications (or may not be read) is asked again. Default
	// kube.DefaultPeerAuthRecheck (1m).
	PeerAuthRecheck time.Duration
	// Discovery limits what every cluster's watcher watches to the
	// namespaces the mesh config's discoverySelectors select; nil: all.
	Discovery *kube.DiscoverySelector
	// Registerer receives the set's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Logger receives the set's logs. Required.
	Logger *slog.Logger
	// OnCluster, if set, runs in a goroutine of its own for every cluster
	// watch the set starts (the config cluster included); ctx ends when
	// that watch stops (the cluster is removed, or replaced by a new
	// kubeconfig). The CA publishes its root into the cluster with it.
	OnCluster func(ctx context.Context, id model.ClusterID, kube kubernetes.Interface)
}

// Set is the set of watched clusters. Create it with [New], run it with
// [Set.Run]. Its methods are safe for concurrent use.
type Set struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	secrets *secretController

	mu       sync.Mutex
	ctx      context.Context // Run's, parent of every cluster's
	closed   bool
	wg       sync.WaitGroup // every goroutine of every instance
	clusters map[model.ClusterID]*cluster
	bad      map[entryKey]*badEntry
}

// cluster is one watched cluster: the instance serving it and, while a
// changed secret's new kubeconfig syncs, the instance that will replace it.
type cluster struct {
	id     model.ClusterID
	secret string // NS/NAME of its remote secret; "" for the config cluster
	cur    *instance
	next   *instance
	// updateErr says why the latest change of its secret entry was refused
	// (the previous kubeconfig is still used); refusedHash is the hash of
	// that kubeconfig, so that a refusal is logged once.
	updateErr   string
	refusedHash [sha256.Size]byte
}

// Client returns the clientset of a watched cluster, false when none is
// watched by that id.
func (s *Set) Client(id model.ClusterID) (kubernetes.Interface, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[id]
	if !ok || c.cur == nil {
		return nil, false
	}
	return c.cur.clients.Kube, true
}

func (c *cluster) source() string {
	if c.secret == "" {
		return "config"
	}
	return "secret " + c.secret
}

// entryKey names one data key of one remote secret.
type entryKey struct {
	secret string
	id     model.ClusterID
}

// badEntry is a remote secret entry that could not be used.
type badEntry struct {
	hash [sha256.Size]byte
	err  string
}

// New checks cfg and builds the set. Nothing runs until [Set.Run].
func New(cfg Config) (*Set, error) {
	switch {
	case cfg.ClusterID == "":
		return nil, errors.New("clusters: Config.ClusterID is empty: set --cluster-id")
	case cfg.Local.Kube == nil:
		return nil, errors.New("clusters: Config.Local.Kube is nil")
	case cfg.Store == nil:
		return nil, errors.New("clusters: Config.Store is nil")
	case cfg.Logger == nil:
		return nil, errors.New("clusters: Config.Logger is nil")
	case cfg.ProbeInterval < 0 || cfg.ProbeTimeout < 0 || cfg.SwapTimeout < 0:
		return nil, errors.New("clusters: negative probe interval, probe timeout or swap timeout")
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "istio-system"
	}
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	if cfg.NewClients == nil {
		cfg.NewClients = KubeconfigClients
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = min(DefaultProbeTimeout, cfg.ProbeInterval)
	}
	if cfg.SwapTimeout == 0 {
		cfg.SwapTimeout = DefaultSwapTimeout
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Set{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  m,
		clusters: map[model.ClusterID]*cluster{},
		bad:      map[entryKey]*badEntry{},
	}
	s.secrets, err = newSecretController(s)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Run watches the config cluster and the remote secrets, and every cluster
// they name, until ctx is done; it returns once every goroutine it started
// has ended. A Set runs once.
func (s *Set) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ctx != nil {
		s.mu.Unlock()
		return errors.New("clusters: Set.Run called twice")
	}
	s.ctx = ctx
	in, err := s.startInstance(s.cfg.ClusterID, s.cfg.Local, [sha256.Size]byte{}, false)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.clusters[s.cfg.ClusterID] = &cluster{id: s.cfg.ClusterID, cur: in}
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { s.secrets.run(ctx) })
	<-ctx.Done()
	wg.Wait()

	s.mu.Lock()
	s.closed = true
	for _, c := range s.clusters {
		c.stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// WaitForSync blocks until the remote secrets were read and every cluster
// they name (and the config cluster) has its initial list in the model, or
// until ctx is done. It returns the clusters that had not synced, sorted,
// and an error when the remote secrets themselves could not be read in time.
func (s *Set) WaitForSync(ctx context.Context) (missing []model.ClusterID, err error) {
	if !kube.WaitSynced(ctx, s.secrets.synced) {
		err = fmt.Errorf("remote secrets in namespace %s not read before the sync timeout: remote clusters may be missing", s.cfg.SystemNamespace)
	}
	s.mu.Lock()
	watchers := make(map[model.ClusterID]*kube.Watcher, len(s.clusters))
	for id, c := range s.clusters {
		watchers[id] = c.cur.watcher
	}
	s.mu.Unlock()
	for id, w := range watchers {
		if !kube.WaitSynced(ctx, w.Synced()) {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing, err
}

// Statuses returns the state of every cluster and of every remote secret
// entry that could not be used, sorted by id then source.
func (s *Set) Statuses() []Status {
	type item struct {
		c   *cluster
		cur *instance
		nxt *instance
		err string
	}
	s.mu.Lock()
	items := make([]item, 0, len(s.clusters))
	for _, c := range s.clusters {
		items = append(items, item{c: c, cur: c.cur, nxt: c.next, err: c.updateErr})
	}
	out := make([]Status, 0, len(s.clusters)+len(s.bad))
	for k, b := range s.bad {
		out = append(out, Status{ID: k.id, Source: "secret " + k.secret, State: StateError, Error: b.err})
	}
	s.mu.Unlock()

	now := time.Now()
	for _, it := range items {
		st := it.cur.status(now)
		st.Source = it.c.source()
		if it.err != "" {
			st.Error = it.err
			st.Credentials = CredentialsFailing
		}
		if it.nxt != nil {
			st.Pending = "a changed kubeconfig is syncing; the previous one is used until it is done"
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Source, b.Source))
	})
	return out
}

// IDs returns the ids of the watched clusters, sorted.
func (s *Set) IDs() []model.ClusterID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.clusters))
}

// removeLocked stops watching c and removes its objects from the model.
// Called with s.mu held.
func (s *Set) removeLocked(c *cluster, why string) {
	delete(s.clusters, c.id)
	c.stop()
	s.cfg.Store.RemoveCluster(c.id)
	s.cfg.Changed()
	s.log.Info("cluster removed", "cluster", string(c.id), "source", c.source(), "why", why)
}

// stop pauses the cluster's watchers (no write into the model after it
// returns) and ends their goroutines.
func (c *cluster) stop() {
	c.cur.stop()
	if c.next != nil {
		c.next.stop()
		c.next = nil
	}
}

// swapLocked makes c's pending instance its current one, in place: the
// previous instance is paused, the new one writes every object it holds over
// the previous one's and removes what only the previous one held (see
// kube.Watcher.Takeover). The cluster's objects never leave the model in
// between, so no proxy sees its endpoints drop. Called with s.mu held.
func (s *Set) swapLocked(c *cluster) {
	old, next := c.cur, c.next
	old.stop()
	next.watcher.Takeover(s.cfg.Store)
	c.cur, c.next = next, nil
	c.updateErr = ""
	s.cfg.Changed()
	s.metrics.swaps.Inc()
	s.log.Info("cluster moved to its changed kubeconfig", "cluster", string(c.id), "source", c.source(), "server", next.clients.Server)
}
