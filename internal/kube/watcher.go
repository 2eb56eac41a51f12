// Package kube watches one Kubernetes cluster and keeps the mesh model in
// step with it. A [Watcher] runs client-go informers for Namespaces, Nodes,
// Services, EndpointSlices and Pods (stripped by a transform to the few
// fields the model reads; Pods become slimPods) and, where the cluster
// serves them, an istio.io/client-go informer for Istio's
// PeerAuthentications (see peerauth.go), and its event handlers only
// put keys on a work queue; one sync function reads the informer caches for
// a key, converts what it finds with internal/kubeconv and upserts or
// deletes it in the store. With discovery selectors (the mesh config's
// discoverySelectors, see discovery.go) the Service, EndpointSlice and Pod
// informers run per selected namespace instead of cluster-wide, so that
// unselected namespaces' objects are never received or cached. The watcher
// knows nothing of other clusters,
// secrets or staleness: those are internal/clusters' business, which starts
// one watcher per cluster and may pause it (its data dropped from the model)
// and replay it later.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Store is what a watcher writes into: the input side of *model.Store.
type Store interface {
	UpsertService(svc *model.Service)
	DeleteService(key model.ObjectKey)
	UpsertEndpointSlice(es *model.EndpointSlice)
	DeleteEndpointSlice(key model.ObjectKey)
	UpsertPod(p *model.Pod)
	DeletePod(key model.ObjectKey)
	UpsertNode(n *model.Node)
	DeleteNode(cluster model.ClusterID, name string)
	UpsertNamespace(ns *model.Namespace)
	DeleteNamespace(cluster model.ClusterID, name string)
	UpsertPeerAuthentication(p *model.PeerAuthentication)
	DeletePeerAuthentication(key model.ObjectKey)
}

var _ Store = (*model.Store)(nil)

// Config configures a [Watcher].
type Config struct {
	// Cluster is the id the cluster's objects get in the model.
	Cluster model.ClusterID
	// Client reads the cluster (a client-go fake clientset in unit tests).
	Client kubernetes.Interface
	// Istio reads the cluster's Istio objects (security.istio.io/v1
	// PeerAuthentications). Nil: none are read, and every workload of the
	// cluster is PERMISSIVE.
	Istio istioclient.Interface
	// PeerAuthRecheck is how often discovery is asked again whether the
	// cluster serves PeerAuthentications while it does not (Istio's CRDs
	// are not installed) or the watcher may not list them. Default
	// DefaultPeerAuthRecheck (1m).
	PeerAuthRecheck time.Duration
	// Store receives the cluster's objects.
	Store Store
	// SystemNamespace is the namespace whose topology.istio.io/network label
	// is the cluster's default network; [Watcher.Network] reads it.
	// Default istio-system.
	SystemNamespace string
	// Changed, if set, is called after each write into Store. It is called
	// from the watcher's worker and must not block.
	Changed func()
	// WatchError, if set, is called when a list or watch of the cluster
	// fails (not for the routine end of a watch). It must return quickly.
	WatchError func(error)
	// Discovery, if set, limits the Services, EndpointSlices and Pods
	// watched to the namespaces it selects (the mesh config's
	// discoverySelectors), with informers per selected namespace that
	// start and stop as namespaces are labeled (see discovery.go). Nil:
	// every namespace, with one cluster-wide informer per kind.
	Discovery *DiscoverySelector
	// Paused starts the watcher without writing into Store: its caches fill
	// and [Watcher.Synced] closes as usual, and [Watcher.Replay] writes them
	// out. Used to build a replacement watcher before swapping it in.
	Paused bool
	// Logger receives the watcher's logs. Required.
	Logger *slog.Logger
}

// Counts are the numbers of objects a watcher holds, by kind.
type Counts struct {
	Namespaces     int `json:"namespaces"`
	Nodes          int `json:"nodes"`
	Services       int `json:"services"`
	EndpointSlices int `json:"endpointSlices"`
	Pods           int `json:"pods"`
	// PeerAuthentications is 0 while they are not watched (see
	// [Watcher.PeerAuthentication]).
	PeerAuthentications int `json:"peerAuthentications"`
}

// kind is the kind of object a queue key names.
type kind uint8

const (
	kindNamespace kind = iota
	kindNode
	kindService
	kindEndpointSlice
	kindPod
	// kindPeerAuthentication's informer is not in Watcher.informers (that
	// entry stays nil): it starts later, if at all (Watcher.pa).
	kindPeerAuthentication
	// kindBarrier marks the end of the initial list in the queue: once the
	// worker reaches it, every object of the initial list is in the store.
	kindBarrier
)

func (k kind) String() string {
	switch k {
	case kindNamespace:
		return "namespace"
	case kindNode:
		return "node"
	case kindService:
		return "service"
	case kindEndpointSlice:
		return "endpointslice"
	case kindPod:
		return "pod"
	case kindPeerAuthentication:
		return "peerauthentication"
	}
	return "barrier"
}

// key is what the work queue holds: an object of one kind, by name.
type key struct {
	kind      kind
	namespace string
	name      string
}

func (k key) String() string {
	if k.namespace == "" {
		return k.kind.String() + " " + k.name
	}
	return k.kind.String() + " " + k.namespace + "/" + k.name
}

// Watcher keeps the model in step with one cluster. Create it with [New],
// run it with [Watcher.Run].
type Watcher struct {
	cfg Config
	log *slog.Logger

	factory informers.SharedInformerFactory
	// informers are the cluster-wide informers; with Config.Discovery,
	// those of Services, EndpointSlices and Pods are nil and scopes holds
	// them per namespace.
	informers  [kindBarrier]cache.SharedIndexInformer
	namespaces corelisters.NamespaceLister
	nodes      corelisters.NodeLister
	synced     []cache.DoneChecker
	scopes     scopes

	queue      workqueue.TypedInterface[key]
	syncedOnce sync.Once
	syncedCh   chan struct{}
	syncedAt   time.Time // set before syncedCh is closed

	// mu serializes writes into the store with Pause and Replay, so that no
	// write lands after Pause returns.
	mu       sync.Mutex
	paused   bool
	rejected map[key]string
	// ignored holds, per Service, the gateway labels and annotations last
	// logged as ignored, so each is logged once.
	ignored map[key]string

	// pa is the PeerAuthentication informer once started; paStatus says
	// why it is not.
	pa       atomic.Pointer[peerAuthWatch]
	paStatus peerAuthStatus
}

// New builds a watcher for the cluster cfg.Client reads. Nothing runs until
// [Watcher.Run].
func New(cfg Config) (*Watcher, error) {
	switch {
	case cfg.Cluster == "":
		return nil, errors.New("kube: Config.Cluster is empty")
	case cfg.Client == nil:
		return nil, fmt.Errorf("kube: cluster %s: Config.Client is nil", cfg.Cluster)
	case cfg.Store == nil:
		return nil, fmt.Errorf("kube: cluster %s: Config.Store is nil", cfg.Cluster)
	case cfg.Logger == nil:
		return nil, fmt.Errorf("kube: cluster %s: Config.Logger is nil", cfg.Cluster)
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "istio-system"
	}
	if cfg.PeerAuthRecheck <= 0 {
		cfg.PeerAuthRecheck = DefaultPeerAuthRecheck
	}
	w := &Watcher{
		cfg:      cfg,
		log:      cfg.Logger.With("cluster", string(cfg.Cluster)),
		queue:    workqueue.NewTyped[key](),
		syncedCh: make(chan struct{}),
		paused:   cfg.Paused,
		rejected: map[key]string{},
		ignored:  map[key]string{},
		scopes:   scopes{byNS: map[string]*nsScope{}},
	}
	w.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(w.strip))
	w.paStatus.state = PeerAuthChecking
	core := w.factory.Core().V1()
	w.namespaces = core.Namespaces().Lister()
	w.nodes = core.Nodes().Lister()
	w.informers[kindNamespace] = core.Namespaces().Informer()
	w.informers[kindNode] = core.Nodes().Informer()
	if cfg.Discovery == nil {
		w.informers[kindService] = core.Services().Informer()
		w.informers[kindEndpointSlice] = w.factory.Discovery().V1().EndpointSlices().Informer()
		w.informers[kindPod] = core.Pods().Informer()
	}
	for k, inf := range w.informers {
		if inf == nil {
			continue
		}
		reg, err := inf.AddEventHandler(w.handler(kind(k)))
		if err != nil {
			return nil, fmt.Errorf("kube: cluster %s: add %s handler: %w", cfg.Cluster, kind(k), err)
		}
		w.synced = append(w.synced, reg.HasSyncedChecker())
		if err := inf.SetWatchErrorHandlerWithContext(w.watchError); err != nil {
			return nil, fmt.Errorf("kube: cluster %s: set %s watch error handler: %w", cfg.Cluster, kind(k), err)
		}
	}
	return w, nil
}

// handler returns the event handler of one kind: it only enqueues keys.
func (w *Watcher) handler(k kind) cache.ResourceEventHandler {
	enqueue := func(obj any) {
		name, err := cache.DeletionHandlingObjectToName(obj)
		if err != nil {
			w.log.Debug("event without a name", "kind", k.String(), "err", err)
			return
		}
		w.queue.Add(key{kind: k, namespace: name.Namespace, name: name.Name})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			if changed(oldObj, newObj) {
				enqueue(newObj)
			}
		},
		DeleteFunc: enqueue,
	}
}

func (w *Watcher) watchError(_ context.Context, r *cache.Reflector, err error) {
	// The end of a watch (EOF) and an expired resourceVersion are routine:
	// the reflector re-watches or re-lists on its own.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return
	}
	w.log.Debug("watch failed", "reflector", r.TypeDescription(), "err", err)
	if w.cfg.WatchError != nil {
		w.cfg.WatchError(err)
	}
}

// Run starts the informers and the worker and blocks until ctx is done and
// every goroutine the watcher started has ended. A watcher runs once.
func (w *Watcher) Run(ctx context.Context) {
	endScopes := w.startScopes(ctx)
	w.factory.Start(ctx.Done())
	var wg sync.WaitGroup
	paDecided := make(chan struct{})
	wg.Go(func() { w.runPeerAuth(ctx, paDecided) })
	wg.Go(func() {
		if !cache.WaitFor(ctx, "", w.synced...) || !w.syncScopes(ctx) {
			return
		}
		select {
		case <-paDecided:
			w.queue.Add(key{kind: kindBarrier})
		case <-ctx.Done():
		}
	})
	wg.Go(func() {
		for w.processNext() {
		}
	})
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
	endScopes()
	w.factory.Shutdown()
}

// Synced is closed once the initial list of every kind is in the store (or,
// for a paused watcher, in its caches).
func (w *Watcher) Synced() <-chan struct{} { return w.syncedCh }

// HasSynced reports whether [Watcher.Synced] is closed.
func (w *Watcher) HasSynced() bool {
	select {
	case <-w.syncedCh:
		return true
	default:
		return false
	}
}

// WaitSynced waits until synced is closed or ctx is done and reports
// whether synced is closed. When both are, synced wins: once ctx is done,
// select picks at random among ready cases, so synced is checked again.
func WaitSynced(ctx context.Context, synced <-chan struct{}) bool {
	select {
	case <-synced:
		return true
	case <-ctx.Done():
		select {
		case <-synced:
			return true
		default:
			return false
		}
	}
}

// SyncedAt returns when [Watcher.Synced] was closed; ok is false before.
func (w *Watcher) SyncedAt() (at time.Time, ok bool) {
	select {
	case <-w.syncedCh:
		return w.syncedAt, true
	default:
		return time.Time{}, false
	}
}

func (w *Watcher) processNext() bool {
	k, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(k)
	if k.kind == kindNamespace {
		// The namespace's informers follow its labels even while the
		// watcher is paused: the caches must be right for Replay.
		w.rescope(k.name)
	}
	if k.kind == kindBarrier {
		w.syncedOnce.Do(func() {
			w.syncedAt = time.Now()
			close(w.syncedCh)
		})
		return true
	}
	w.mu.Lock()
	wrote := !w.paused
	if wrote {
		w.sync(k)
	}
	w.mu.Unlock()
	if wrote && w.cfg.Changed != nil {
		w.cfg.Changed()
	}
	return true
}

// sync makes the store hold what the listers hold for k: the one place
// where the watcher writes. Called with mu held.
func (w *Watcher) sync(k key) {
	id := w.cfg.Cluster
	ok := model.ObjectKey{Cluster: id, NamespacedName: model.NamespacedName{Namespace: k.namespace, Name: k.name}}
	s := w.cfg.Store
	switch k.kind {
	case kindNamespace:
		ns, err := w.namespaces.Get(k.name)
		if w.gone(k, err) {
			s.DeleteNamespace(id, k.name)
			return
		}
		s.UpsertNamespace(kubeconv.Namespace(id, ns))
	case kindNode:
		n, err := w.nodes.Get(k.name)
		if w.gone(k, err) {
			s.DeleteNode(id, k.name)
			return
		}
		s.UpsertNode(kubeconv.Node(id, n))
	case kindPod:
		p, err := w.pod(k.namespace, k.name)
		if w.gone(k, err) {
			s.DeletePod(ok)
			return
		}
		s.UpsertPod(kubeconv.Pod(id, p))
	case kindService:
		w.syncService(k, ok)
	case kindEndpointSlice:
		w.syncEndpointSlice(k, ok)
	case kindPeerAuthentication:
		w.syncPeerAuth(k)
	}
}

// syncService makes the store hold the Service of k (object key ok), or
// not hold it when it is gone or rejected. Called with mu held.
func (w *Watcher) syncService(k key, ok model.ObjectKey) {
	id := w.cfg.Cluster
	svc, err := cached[*corev1.Service](w, kindService, "services", k.namespace, k.name)
	if w.gone(k, err) {
		delete(w.ignored, k)
		w.cfg.Store.DeleteService(ok)
		return
	}
	m, err := kubeconv.Service(id, svc)
	if err != nil {
		w.reject(k, err)
		w.cfg.Store.DeleteService(ok)
		return
	}
	delete(w.rejected, k)
	w.noteIgnored(k, m.Ignored)
	w.cfg.Store.UpsertService(m)
}

// syncEndpointSlice makes the store hold the EndpointSlice of k (object key
// ok), or not hold it when it is gone, not a Service's, or rejected. Called
// with mu held.
func (w *Watcher) syncEndpointSlice(k key, ok model.ObjectKey) {
	id := w.cfg.Cluster
	es, err := cached[*discoveryv1.EndpointSlice](w, kindEndpointSlice, "endpointslices", k.namespace, k.name)
	if w.gone(k, err) {
		w.cfg.Store.DeleteEndpointSlice(ok)
		return
	}
	m, err := kubeconv.EndpointSlice(id, es)
	switch {
	case errors.Is(err, kubeconv.ErrNoServiceName), errors.Is(err, kubeconv.ErrFQDNSlice):
		// Not a slice of a Service the mesh serves: not an error.
		w.log.Debug("endpointslice skipped", "endpointslice", k.namespace+"/"+k.name, "err", err)
		w.cfg.Store.DeleteEndpointSlice(ok)
		return
	case err != nil:
		w.reject(k, err)
		w.cfg.Store.DeleteEndpointSlice(ok)
		return
	}
	delete(w.rejected, k)
	w.cfg.Store.UpsertEndpointSlice(m)
}

// pod reads a Pod from the Pod informer's cache, which holds slimPods (see
// strip): client-go's Pod lister would expect *corev1.Pod.
func (w *Watcher) pod(namespace, name string) (*corev1.Pod, error) {
	p, err := cached[*slimPod](w, kindPod, "pods", namespace, name)
	if err != nil {
		return nil, err
	}
	return p.pod(), nil
}

// gone reports whether the object of k is no longer in its lister (a lister
// fails on nothing else).
func (w *Watcher) gone(k key, err error) bool {
	if err == nil {
		return false
	}
	if !apierrors.IsNotFound(err) {
		w.log.Info("lister failed; treating the object as deleted", "object", k.String(), "err", err)
	}
	delete(w.rejected, k)
	return true
}

// reject records an object the model cannot take: it is left out of the
// model (a previous valid version included) until it is fixed.
func (w *Watcher) reject(k key, err error) {
	if _, seen := w.rejected[k]; !seen {
		w.log.Info("object rejected; it is left out of the mesh until fixed", "object", k.String(), "err", err)
	}
	w.rejected[k] = err.Error()
}

// noteIgnored logs, once per distinct set, the gateway labels and
// annotations of a Service that were ignored; the model reports them in
// /debug/networks and a metric.
func (w *Watcher) noteIgnored(k key, ignored []string) {
	if len(ignored) == 0 {
		delete(w.ignored, k)
		return
	}
	joined := strings.Join(ignored, "; ")
	if w.ignored[k] == joined {
		return
	}
	w.ignored[k] = joined
	w.log.Info("gateway label or annotation ignored; the Service is kept with the default", "object", k.String(), "err", joined)
}

// Pause stops all writes into the store; when it returns, no write is in
// flight. The caller may then remove the cluster from the store. Events keep
// filling the caches; [Watcher.Replay] writes them out.
func (w *Watcher) Pause() {
	w.mu.Lock()
	w.paused = true
	w.mu.Unlock()
}

// Paused reports whether the watcher is paused.
func (w *Watcher) Paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.paused
}

// Replay writes every object the caches hold into the store, in the
// calling goroutine, and resumes writing events: the way back after the
// cluster's objects were removed from the store (or for a watcher started
// paused). Objects gone from the caches are not deleted: the caller removed
// the cluster from the store first.
func (w *Watcher) Replay() {
	w.mu.Lock()
	for _, k := range w.keys() {
		w.sync(k)
	}
	w.paused = false
	w.mu.Unlock()
	if w.cfg.Changed != nil {
		w.cfg.Changed()
	}
}

// keys lists the keys of every cached object, namespaces and nodes first
// (they decide networks and localities of the rest).
func (w *Watcher) keys() []key {
	var out []key
	add := func(k kind, st cache.Store) {
		for _, s := range st.ListKeys() {
			name, err := cache.ParseObjectName(s)
			if err != nil {
				continue
			}
			out = append(out, key{kind: k, namespace: name.Namespace, name: name.Name})
		}
	}
	for k := range kindPeerAuthentication {
		for _, st := range w.scopedStores(k) {
			add(k, st)
		}
	}
	if pw := w.pa.Load(); pw != nil {
		add(kindPeerAuthentication, pw.informer.GetStore())
	}
	return out
}

// Counts returns how many objects of each kind the caches hold.
func (w *Watcher) Counts() Counts {
	n := func(k kind) int {
		total := 0
		for _, st := range w.scopedStores(k) {
			total += len(st.ListKeys())
		}
		return total
	}
	c := Counts{
		Namespaces:     n(kindNamespace),
		Nodes:          n(kindNode),
		Services:       n(kindService),
		EndpointSlices: n(kindEndpointSlice),
		Pods:           n(kindPod),
	}
	if pw := w.pa.Load(); pw != nil {
		c.PeerAuthentications = len(pw.informer.GetStore().ListKeys())
	}
	return c
}

// Rejected returns, sorted, the objects the model could not take and why
// (at most limit of them; limit <= 0 means all), and how many there are.
func (w *Watcher) Rejected(limit int) (errs []string, total int) {
	w.mu.Lock()
	for _, e := range w.rejected {
		errs = append(errs, e)
	}
	w.mu.Unlock()
	slices.Sort(errs)
	total = len(errs)
	if limit > 0 && len(errs) > limit {
		errs = errs[:limit]
	}
	return errs, total
}

// Network returns the topology.istio.io/network label of the cluster's
// system namespace: the cluster's default network ("" when unlabeled or
// not seen yet).
func (w *Watcher) Network() model.NetworkID {
	ns, err := w.namespaces.Get(w.cfg.SystemNamespace)
	if err != nil {
		return ""
	}
	return model.NetworkID(ns.Labels[model.LabelNetwork])
}
