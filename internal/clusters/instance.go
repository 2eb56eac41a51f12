package clusters

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/model"
)

// instance is one watch of one cluster through one set of clients: a
// watcher, its health probe, and what they found out.
type instance struct {
	id      model.ClusterID
	hash    [sha256.Size]byte // of the kubeconfig it was built from
	clients Clients
	watcher *kube.Watcher
	started time.Time
	cancel  context.CancelFunc
	done    <-chan struct{} // closed when the instance stops
	// unauthorized is closed when the API server first refuses the
	// instance's credentials (a probe answered 401).
	unauthorized     chan struct{}
	unauthorizedOnce sync.Once
	probeNow         chan struct{}

	mu       sync.Mutex
	probed   bool
	live     bool
	lastSeen time.Time
	dropped  bool
	err      string
}

// startInstance builds and starts a watch of cluster id. A paused instance
// fills its caches without writing into the model until it is swapped in.
// Called with s.mu held.
func (s *Set) startInstance(id model.ClusterID, clients Clients, hash [sha256.Size]byte, paused bool) (*instance, error) {
	if s.closed {
		return nil, errors.New("clusters: the cluster set is shutting down")
	}
	in := &instance{
		id:       id,
		hash:     hash,
		clients:  clients,
		started:  time.Now(),
		probeNow: make(chan struct{}, 1),

		unauthorized: make(chan struct{}),
	}
	w, err := kube.New(kube.Config{
		Cluster:         id,
		Client:          clients.Kube,
		Istio:           clients.Istio,
		PeerAuthRecheck: s.cfg.PeerAuthRecheck,
		Discovery:       s.cfg.Discovery,
		Store:           s.cfg.Store,
		SystemNamespace: s.cfg.SystemNamespace,
		Changed:         s.cfg.Changed,
		WatchError:      in.watchError,
		Paused:          paused,
		Logger:          s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("watch cluster %s: %w", id, err)
	}
	in.watcher = w
	ctx, cancel := context.WithCancel(s.ctx)
	in.cancel, in.done = cancel, ctx.Done()
	s.wg.Go(func() { w.Run(ctx) })
	if s.cfg.OnCluster != nil {
		s.wg.Go(func() { s.cfg.OnCluster(ctx, id, clients.Kube) })
	}
	s.wg.Go(func() { s.healthLoop(ctx, in) })
	s.wg.Go(func() {
		select {
		case <-w.Synced():
			s.onSynced(in)
		case <-ctx.Done():
		}
	})
	return in, nil
}

// stop pauses the watcher (no write after it returns) and ends the
// instance's goroutines.
func (in *instance) stop() {
	in.watcher.Pause()
	in.cancel()
}

// watchError records a failed list or watch and asks for a probe now.
func (in *instance) watchError(err error) {
	in.mu.Lock()
	in.err = "watch: " + err.Error()
	in.mu.Unlock()
	select {
	case in.probeNow <- struct{}{}:
	default:
	}
}

func (s *Set) onSynced(in *instance) {
	at, _ := in.watcher.SyncedAt()
	in.mu.Lock()
	if in.live {
		in.err = ""
	}
	in.mu.Unlock()
	d := at.Sub(in.started)
	s.metrics.syncDuration.WithLabelValues(string(in.id)).Observe(d.Seconds())
	s.log.Info("cluster synced", "cluster", string(in.id), "duration", d.Round(time.Millisecond))

	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clusters[in.id]; c != nil && c.next == in && !s.closed {
		s.swapLocked(c)
	}
}

// healthLoop probes the instance's API server every ProbeInterval, and at
// once after a failed watch, until ctx is done.
func (s *Set) healthLoop(ctx context.Context, in *instance) {
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		s.probe(ctx, in)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-in.probeNow:
		}
	}
}

// probe asks the API server whether it answers, records the answer and
// applies the stale policy.
func (s *Set) probe(ctx context.Context, in *instance) {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	err := in.clients.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	in.mu.Lock()
	was, first := in.live, !in.probed
	unseenFor := in.staleAge(now) // before this answer
	in.probed = true
	in.live = err == nil
	if err == nil {
		in.lastSeen = now
		if !was {
			in.err = ""
		}
	} else {
		in.err = "probe: " + err.Error()
	}
	in.mu.Unlock()
	if apierrors.IsUnauthorized(err) {
		in.unauthorizedOnce.Do(func() { close(in.unauthorized) })
	}

	log := s.log.With("cluster", string(in.id))
	switch {
	case err == nil && !was && !first:
		log.Info("cluster reachable again; its watch re-lists and reconciles", "unreachableFor", unseenFor.Round(time.Millisecond))
	case err != nil && (was || first) && s.cfg.StalePolicy.DropAfter > 0:
		log.Info("cluster unreachable; its last-known objects stay in the mesh until the grace ends", "grace", s.cfg.StalePolicy.DropAfter, "err", err)
	case err != nil && (was || first):
		log.Info("cluster unreachable; its last-known objects stay in the mesh", "policy", s.cfg.StalePolicy.String(), "err", err)
	}
	s.applyPolicy(in, now)
}

// staleAge is how old the instance's data may be: the time since the API
// server last answered (since the watch started if it never did). Called
// with in.mu held.
func (in *instance) staleAge(now time.Time) time.Duration {
	if in.live {
		return 0
	}
	if in.lastSeen.IsZero() {
		return now.Sub(in.started)
	}
	return now.Sub(in.lastSeen)
}

// applyPolicy drops the objects of a cluster stale longer than the policy
// allows, and writes them back when it answers again.
func (s *Set) applyPolicy(in *instance, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clusters[in.id]; c == nil || c.cur != in || s.closed {
		return
	}
	in.mu.Lock()
	age := in.staleAge(now)
	drop := !in.live && !in.dropped && s.cfg.StalePolicy.DropAfter > 0 && age >= s.cfg.StalePolicy.DropAfter
	back := in.live && in.dropped
	if drop {
		in.dropped = true
	}
	if back {
		in.dropped = false
	}
	in.mu.Unlock()
	switch {
	case drop:
		in.watcher.Pause()
		s.cfg.Store.RemoveCluster(in.id)
		s.cfg.Changed()
		s.log.Info("stale cluster dropped from the mesh", "cluster", string(in.id), "unreachableFor", age.Round(time.Millisecond), "policy", s.cfg.StalePolicy.String())
	case back:
		in.watcher.Replay()
		s.log.Info("dropped cluster is back in the mesh", "cluster", string(in.id))
	}
}

// status reports the instance's state (Source, Pending and Endpoints are
// the caller's).
func (in *instance) status(now time.Time) Status {
	syncedAt, synced := in.watcher.SyncedAt()
	in.mu.Lock()
	st := Status{
		ID:      in.id,
		Server:  in.clients.Server,
		Synced:  synced,
		Live:    in.live,
		Dropped: in.dropped,
		Error:   in.err,
	}
	if synced {
		st.SyncedAt = &syncedAt
		st.SyncSeconds = roundSeconds(syncedAt.Sub(in.started))
	}
	if !in.lastSeen.IsZero() {
		t := in.lastSeen
		st.LastSeen = &t
	}
	unreachable := in.probed && !in.live
	if unreachable {
		st.StaleSeconds = roundSeconds(in.staleAge(now))
	}
	in.mu.Unlock()

	switch {
	case st.Dropped:
		st.State = StateDropped
	case st.Synced && unreachable:
		st.State = StateStale
	case st.Synced:
		st.State = StateLive
	case unreachable:
		st.State = StateUnreachable
	default:
		st.State = StateSyncing
	}
	counts := in.watcher.Counts()
	st.Objects = &counts
	st.Rejected, st.RejectedCount = in.watcher.Rejected(rejectedShown)
	st.Network = in.watcher.Network()
	if pa, why := in.watcher.PeerAuthentication(); pa != kube.PeerAuthOff {
		st.PeerAuthentication = string(pa)
		st.PeerAuthenticationWhy = why
	}
	return st
}

func roundSeconds(d time.Duration) float64 {
	return d.Round(time.Millisecond).Seconds()
}
