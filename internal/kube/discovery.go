package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/causeway-mesh/causeway/internal/model"
)

// DiscoverySelector is the compiled form of the mesh config's
// discoverySelectors: a namespace is selected when its labels match any of
// them. A nil *DiscoverySelector selects every namespace.
//
// A watcher with a selector runs the Service, EndpointSlice and Pod
// informers per selected namespace, not cluster-wide: the API server cannot
// filter a list or watch by the labels of the objects' namespace, so this
// is the only way that an unselected namespace's objects are never
// received, decoded or cached. The Namespace and Node informers stay
// cluster-wide (a namespace's labels decide; Nodes are cluster-scoped).
type DiscoverySelector struct {
	sels []labels.Selector
	// keys are the label keys the selectors read: the Namespace informer's
	// transform keeps them (and the network label), nothing else.
	keys []string
}

// NewDiscoverySelector compiles discoverySelectors. An empty list returns
// nil: every namespace is selected.
func NewDiscoverySelector(in []model.NamespaceSelector) (*DiscoverySelector, error) {
	if len(in) == 0 {
		return nil, nil
	}
	d := &DiscoverySelector{}
	keys := map[string]struct{}{}
	for i, s := range in {
		sel := labels.NewSelector()
		for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
			r, err := labels.NewRequirement(k, selection.Equals, []string{s.MatchLabels[k]})
			if err != nil {
				return nil, fmt.Errorf("discoverySelectors[%d].matchLabels: %w", i, err)
			}
			sel = sel.Add(*r)
			keys[k] = struct{}{}
		}
		for j, e := range s.MatchExpressions {
			var op selection.Operator
			switch e.Operator {
			case "In":
				op = selection.In
			case "NotIn":
				op = selection.NotIn
			case "Exists":
				op = selection.Exists
			case "DoesNotExist":
				op = selection.DoesNotExist
			default:
				return nil, fmt.Errorf("discoverySelectors[%d].matchExpressions[%d]: operator %q: want In, NotIn, Exists or DoesNotExist", i, j, e.Operator)
			}
			r, err := labels.NewRequirement(e.Key, op, e.Values)
			if err != nil {
				return nil, fmt.Errorf("discoverySelectors[%d].matchExpressions[%d]: %w", i, j, err)
			}
			sel = sel.Add(*r)
			keys[e.Key] = struct{}{}
		}
		d.sels = append(d.sels, sel)
	}
	d.keys = slices.Sorted(maps.Keys(keys))
	return d, nil
}

// Selects reports whether a namespace with these labels is selected.
func (d *DiscoverySelector) Selects(l map[string]string) bool {
	if d == nil {
		return true
	}
	set := labels.Set(l)
	for _, s := range d.sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// String is the selectors as Kubernetes prints them, for logs.
func (d *DiscoverySelector) String() string {
	if d == nil {
		return "all namespaces"
	}
	out := make([]string, len(d.sels))
	for i, s := range d.sels {
		out[i] = "{" + s.String() + "}"
	}
	return fmt.Sprint(out)
}

// scopedKinds are the kinds watched per namespace under a selector.
var scopedKinds = [...]kind{kindService, kindEndpointSlice, kindPod}

// nsScope is the running informers of one selected namespace.
type nsScope struct {
	factory   informers.SharedInformerFactory
	informers [kindBarrier]cache.SharedIndexInformer // only scopedKinds set
	synced    []cache.DoneChecker
	cancel    context.CancelFunc
	stopped   chan struct{} // closed when the scope is stopped
}

func (sc *nsScope) hasSynced() bool {
	for _, c := range sc.synced {
		select {
		case <-c.Done():
		default:
			return false
		}
	}
	return true
}

// scopes are a watcher's per-namespace informers, under a selector.
type scopes struct {
	mu     sync.Mutex
	ctx    context.Context // Run's; nil before Run
	byNS   map[string]*nsScope
	ending sync.WaitGroup // factory shutdowns of stopped scopes
}

// rescope makes the informers of namespace ns follow the Namespace cache:
// running if the namespace exists and is selected, stopped otherwise. On a
// stop it puts the keys of every object the namespace's informers held on
// the queue: their sync finds them gone and deletes them from the store,
// one event each, as if they had been deleted. Safe from any goroutine.
func (w *Watcher) rescope(name string) {
	if w.cfg.Discovery == nil {
		return
	}
	s := &w.scopes
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read under the lock: two callers (the worker and syncScopes) must
	// not apply decisions from two reads in the wrong order.
	ns, err := w.namespaces.Get(name)
	want := err == nil && w.cfg.Discovery.Selects(ns.Labels)
	if err != nil && !apierrors.IsNotFound(err) {
		w.log.Info("namespace lister failed; treating the namespace as gone", "namespace", name, "err", err)
	}
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	sc, have := s.byNS[name]
	switch {
	case want && !have:
		sc, err := w.newScope(name)
		if err != nil {
			// Only a programming error (a handler added twice) gets here.
			w.log.Info("namespace not watched", "namespace", name, "err", err)
			return
		}
		s.byNS[name] = sc
		sc.factory.Start(sc.stopCh(s.ctx))
		w.log.Debug("namespace selected: watching it", "namespace", name)
	case !want && have:
		delete(s.byNS, name)
		sc.cancel()
		close(sc.stopped)
		s.ending.Go(sc.factory.Shutdown)
		for _, k := range scopedKinds {
			for _, key := range sc.informers[k].GetStore().ListKeys() {
				if n, err := cache.ParseObjectName(key); err == nil {
					w.queue.Add(keyOf(k, n))
				}
			}
		}
		w.log.Debug("namespace not selected any more: its objects leave the mesh", "namespace", name)
	}
}

func keyOf(k kind, n cache.ObjectName) key { return key{kind: k, namespace: n.Namespace, name: n.Name} }

// stopCh returns a stop channel for the scope's factory: closed when the
// scope is stopped or ctx is done.
func (sc *nsScope) stopCh(ctx context.Context) <-chan struct{} {
	sctx, cancel := context.WithCancel(ctx)
	sc.cancel = cancel
	return sctx.Done()
}

// newScope builds (but does not start) the informers of one namespace.
func (w *Watcher) newScope(ns string) (*nsScope, error) {
	f := informers.NewSharedInformerFactoryWithOptions(w.cfg.Client, 0,
		informers.WithNamespace(ns), informers.WithTransform(w.strip))
	sc := &nsScope{factory: f, stopped: make(chan struct{})}
	sc.informers[kindService] = f.Core().V1().Services().Informer()
	sc.informers[kindEndpointSlice] = f.Discovery().V1().EndpointSlices().Informer()
	sc.informers[kindPod] = f.Core().V1().Pods().Informer()
	for _, k := range scopedKinds {
		inf := sc.informers[k]
		reg, err := inf.AddEventHandler(w.handler(k))
		if err != nil {
			return nil, fmt.Errorf("add %s handler of namespace %s: %w", k, ns, err)
		}
		sc.synced = append(sc.synced, reg.HasSyncedChecker())
		if err := inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
			return nil, fmt.Errorf("set %s watch error handler of namespace %s: %w", k, ns, err)
		}
	}
	return sc, nil
}

// startScopes makes the scopes usable (rescope does nothing before) and
// returns a function that waits for their end; both are no-ops without a
// selector.
func (w *Watcher) startScopes(ctx context.Context) (wait func()) {
	if w.cfg.Discovery == nil {
		return func() {}
	}
	s := &w.scopes
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		for name, sc := range s.byNS {
			delete(s.byNS, name)
			sc.cancel()
			close(sc.stopped)
			s.ending.Go(sc.factory.Shutdown)
		}
		s.mu.Unlock()
		s.ending.Wait()
	}
}

// syncScopes starts the informers of every namespace selected now (the
// Namespace cache has synced) and waits until each has synced or was
// stopped since. It reports false if ctx ended first.
func (w *Watcher) syncScopes(ctx context.Context) bool {
	if w.cfg.Discovery == nil {
		return true
	}
	nss, err := w.namespaces.List(labels.Everything())
	if err != nil {
		w.log.Info("namespace lister failed", "err", err)
	}
	for _, ns := range nss {
		w.rescope(ns.Name)
	}
	s := &w.scopes
	s.mu.Lock()
	pending := make([]*nsScope, 0, len(s.byNS))
	for _, sc := range s.byNS {
		pending = append(pending, sc)
	}
	s.mu.Unlock()
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		pending = slices.DeleteFunc(pending, func(sc *nsScope) bool {
			select {
			case <-sc.stopped:
				return true
			default:
				return sc.hasSynced()
			}
		})
		return len(pending) == 0, nil
	})
	return err == nil
}

// indexer returns the cache of kind k that holds namespace ns's objects,
// or nil when that namespace is not watched.
func (w *Watcher) indexer(k kind, ns string) cache.Indexer {
	if inf := w.informers[k]; inf != nil {
		return inf.GetIndexer()
	}
	if w.cfg.Discovery == nil {
		return nil
	}
	w.scopes.mu.Lock()
	defer w.scopes.mu.Unlock()
	if sc := w.scopes.byNS[ns]; sc != nil {
		return sc.informers[k].GetIndexer()
	}
	return nil
}

// cached returns the object of kind k named ns/name from its cache, as T;
// a NotFound error when it is not there (or its namespace not watched).
func cached[T any](w *Watcher, k kind, resource, ns, name string) (T, error) {
	var zero T
	idx := w.indexer(k, ns)
	if idx == nil {
		return zero, apierrors.NewNotFound(corev1.Resource(resource), name)
	}
	obj, exists, err := idx.GetByKey(ns + "/" + name)
	switch {
	case err != nil:
		return zero, err
	case !exists:
		return zero, apierrors.NewNotFound(corev1.Resource(resource), name)
	}
	t, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("the %s cache holds a %T", k, obj)
	}
	return t, nil
}

// scopedStores returns the caches of kind k: the cluster-wide one, or one
// per watched namespace.
func (w *Watcher) scopedStores(k kind) []cache.Store {
	if inf := w.informers[k]; inf != nil {
		return []cache.Store{inf.GetStore()}
	}
	if w.cfg.Discovery == nil {
		return nil
	}
	w.scopes.mu.Lock()
	defer w.scopes.mu.Unlock()
	out := make([]cache.Store, 0, len(w.scopes.byNS))
	for _, sc := range w.scopes.byNS {
		out = append(out, sc.informers[k].GetStore())
	}
	return out
}

// WatchedNamespaces returns, sorted, the namespaces whose Services,
// EndpointSlices and Pods the watcher watches; nil means every namespace
// (no discovery selectors).
func (w *Watcher) WatchedNamespaces() []string {
	if w.cfg.Discovery == nil {
		return nil
	}
	w.scopes.mu.Lock()
	defer w.scopes.mu.Unlock()
	return slices.Sorted(maps.Keys(w.scopes.byNS))
}

// strip is the watcher's transform: the package's strip, except that a
// Namespace keeps the labels the discovery selectors read.
func (w *Watcher) strip(obj any) (any, error) {
	if ns, ok := obj.(*corev1.Namespace); ok && w.cfg.Discovery != nil {
		keep := append([]string{model.LabelNetwork}, w.cfg.Discovery.keys...)
		stripMeta(&ns.ObjectMeta, keep, nil)
		ns.Spec = corev1.NamespaceSpec{}
		ns.Status = corev1.NamespaceStatus{}
		return ns, nil
	}
	return strip(obj)
}
