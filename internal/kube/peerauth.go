package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	securityv1client "istio.io/client-go/pkg/clientset/versioned/typed/security/v1"
	securitylisters "istio.io/client-go/pkg/listers/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
)

// DefaultPeerAuthRecheck is how often a watcher asks again whether a
// cluster serves PeerAuthentications, while it does not (or may not be
// read).
const DefaultPeerAuthRecheck = time.Minute

// peerAuthGroupVersion is where Istio serves PeerAuthentication.
var peerAuthGroupVersion = securityv1.SchemeGroupVersion.String()

const peerAuthResource = "peerauthentications"

// PeerAuthState says whether a watcher reads the cluster's
// PeerAuthentications.
type PeerAuthState string

// The states of a watcher's PeerAuthentication watch.
const (
	// PeerAuthOff: the watcher has no Istio client (Config.Istio nil).
	PeerAuthOff PeerAuthState = "off"
	// PeerAuthChecking: discovery has not answered yet.
	PeerAuthChecking PeerAuthState = "checking"
	// PeerAuthWatching: the informer runs.
	PeerAuthWatching PeerAuthState = "watching"
	// PeerAuthAbsent: the cluster does not serve security.istio.io/v1
	// peerauthentications (Istio's CRDs are not installed). Asked again
	// every Config.PeerAuthRecheck.
	PeerAuthAbsent PeerAuthState = "absent"
	// PeerAuthForbidden: served, but the watcher's account may not list
	// them. Asked again every Config.PeerAuthRecheck.
	PeerAuthForbidden PeerAuthState = "forbidden"
)

// peerAuthWatch is the running PeerAuthentication informer.
type peerAuthWatch struct {
	informer cache.SharedIndexInformer
	lister   securitylisters.PeerAuthenticationLister
}

// peerAuthStatus is what PeerAuthentication reports; guarded by its mutex.
type peerAuthStatus struct {
	mu     sync.Mutex
	state  PeerAuthState
	detail string
}

func (s *peerAuthStatus) set(st PeerAuthState, detail string) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = s.state != st
	s.state, s.detail = st, detail
	return changed
}

// PeerAuthentication reports whether the watcher reads the cluster's
// PeerAuthentications, and a sentence for the user when it does not.
func (w *Watcher) PeerAuthentication() (PeerAuthState, string) {
	w.paStatus.mu.Lock()
	defer w.paStatus.mu.Unlock()
	return w.paStatus.state, w.paStatus.detail
}

// runPeerAuth decides whether the cluster serves PeerAuthentications and,
// once it does, runs their informer until ctx is done. decided is closed
// once the answer is known: the informer has synced, or the API is absent
// or forbidden (the cluster is then served without its policies: every
// workload PERMISSIVE, Istio's default). While absent or forbidden it asks
// again every Config.PeerAuthRecheck, so installing Istio's CRDs (or
// granting the right) later needs no restart. A failed question (the API
// server does not answer) is asked again within a second and leaves
// decided open, as the other kinds' informers would not sync either.
func (w *Watcher) runPeerAuth(ctx context.Context, decided chan<- struct{}) {
	var once sync.Once
	decide := func() { once.Do(func() { close(decided) }) }
	if w.cfg.Istio == nil {
		w.paStatus.set(PeerAuthOff, "no Istio client: PeerAuthentications are not read")
		decide()
		return
	}
	for {
		st, err := w.peerAuthServed(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := w.cfg.PeerAuthRecheck
		switch {
		case err != nil:
			w.log.Debug("peerauthentication discovery failed; asking again", "err", err)
			wait = min(wait, time.Second)
		case st == PeerAuthWatching:
			pw, err := w.newPeerAuthWatch()
			if err != nil {
				// Only a programming error (a handler on a stopped
				// informer) gets here.
				w.log.Info("peerauthentication watch not started", "err", err)
				w.paStatus.set(PeerAuthForbidden, err.Error())
				decide()
				return
			}
			w.pa.Store(pw)
			var wg sync.WaitGroup
			wg.Go(func() { pw.informer.RunWithContext(ctx) })
			if cache.WaitForCacheSync(ctx.Done(), pw.informer.HasSynced) {
				w.paStatus.set(PeerAuthWatching, "")
				w.log.Info("peerauthentications watched", "count", len(pw.informer.GetStore().ListKeys()))
				decide()
			}
			wg.Wait()
			return
		case st == PeerAuthAbsent:
			if w.paStatus.set(st, fmt.Sprintf("%s %s is not served (Istio's CRDs are not installed): every workload of the cluster is PERMISSIVE; asked again every %s", peerAuthGroupVersion, peerAuthResource, w.cfg.PeerAuthRecheck)) {
				w.log.Info("peerauthentications not served; the cluster's workloads are PERMISSIVE until Istio's CRDs are installed", "groupVersion", peerAuthGroupVersion, "recheck", w.cfg.PeerAuthRecheck)
			}
			decide()
		case st == PeerAuthForbidden:
			if w.paStatus.set(st, fmt.Sprintf("the control plane's account may not list %s.%s: grant get, list and watch on them (causeway remote-secret create does), else every workload of the cluster is PERMISSIVE; asked again every %s", peerAuthResource, securityv1.SchemeGroupVersion.Group, w.cfg.PeerAuthRecheck)) {
				w.log.Info("peerauthentications may not be listed; the cluster's workloads are PERMISSIVE until the right is granted", "recheck", w.cfg.PeerAuthRecheck)
			}
			decide()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// maxDiscoveryBytes bounds the discovery document of one group version
// (Istio's security.istio.io/v1 lists three resources in about 1 KB).
const maxDiscoveryBytes = 1 << 20

// peerAuthServed asks the API server whether it serves PeerAuthentications
// (discovery of security.istio.io/v1) and whether the watcher may list
// them: PeerAuthWatching, PeerAuthAbsent or PeerAuthForbidden, or an
// error when it did not answer.
func (w *Watcher) peerAuthServed(ctx context.Context) (PeerAuthState, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	served, err := w.discoverPeerAuth(ctx)
	switch {
	case err != nil:
		return "", err
	case !served:
		return PeerAuthAbsent, nil
	}
	_, err = w.cfg.Istio.SecurityV1().PeerAuthentications(metav1.NamespaceAll).List(ctx, metav1.ListOptions{Limit: 1})
	switch {
	case err == nil:
		return PeerAuthWatching, nil
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return PeerAuthForbidden, nil
	case apierrors.IsNotFound(err):
		// Removed between the two questions.
		return PeerAuthAbsent, nil
	}
	return "", fmt.Errorf("list %s: %w", peerAuthResource, err)
}

// discoverPeerAuth reads the discovery document of security.istio.io/v1
// (through the clientset's REST client, with ctx; a client-go fake
// clientset has none and answers from its Resources).
func (w *Watcher) discoverPeerAuth(ctx context.Context) (bool, error) {
	var list metav1.APIResourceList
	if rc := w.cfg.Istio.Discovery().RESTClient(); rc != nil {
		body, err := rc.Get().AbsPath("/apis", peerAuthGroupVersion).Do(ctx).Raw()
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("discovery of %s: %w", peerAuthGroupVersion, err)
		case len(body) > maxDiscoveryBytes:
			return false, fmt.Errorf("discovery of %s: %d bytes, more than %d", peerAuthGroupVersion, len(body), maxDiscoveryBytes)
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return false, fmt.Errorf("discovery of %s: %w", peerAuthGroupVersion, err)
		}
	} else {
		l, err := w.cfg.Istio.Discovery().ServerResourcesForGroupVersion(peerAuthGroupVersion)
		switch {
		case apierrors.IsNotFound(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("discovery of %s: %w", peerAuthGroupVersion, err)
		}
		list = *l
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == peerAuthResource }), nil
}

// newPeerAuthWatch builds the PeerAuthentication informer of every
// namespace, its handler enqueuing keys as the other kinds' do. Its list
// and watch honour the informer's context (istio.io/client-go's generated
// informer uses context.TODO), and it tells the reflector whether the
// client supports streaming lists (client-go fakes do not).
func (w *Watcher) newPeerAuthWatch() (*peerAuthWatch, error) {
	pas := func() securityv1client.PeerAuthenticationInterface {
		return w.cfg.Istio.SecurityV1().PeerAuthentications(metav1.NamespaceAll)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return pas().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pas().Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, w.cfg.Istio),
		&securityv1.PeerAuthentication{}, cache.SharedIndexInformerOptions{
			Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		})
	if err := inf.SetTransform(strip); err != nil {
		return nil, fmt.Errorf("set peerauthentication transform: %w", err)
	}
	if _, err := inf.AddEventHandler(w.handler(kindPeerAuthentication)); err != nil {
		return nil, fmt.Errorf("add peerauthentication handler: %w", err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(w.peerAuthWatchError); err != nil {
		return nil, fmt.Errorf("set peerauthentication watch error handler: %w", err)
	}
	return &peerAuthWatch{informer: inf, lister: securitylisters.NewPeerAuthenticationLister(inf.GetIndexer())}, nil
}

// peerAuthWatchError: a PeerAuthentication list that fails with NotFound
// means the CRD was removed (its objects were deleted first, and the
// informer saw those deletions); the reflector keeps trying and resumes if
// the CRD comes back. That is not the cluster's failure.
func (w *Watcher) peerAuthWatchError(ctx context.Context, r *cache.Reflector, err error) {
	if apierrors.IsNotFound(err) {
		w.log.Debug("peerauthentications not served any more", "err", err)
		return
	}
	w.watchError(ctx, r, err)
}

// syncPeerAuth makes the store hold what the lister holds for k. Called
// with mu held.
func (w *Watcher) syncPeerAuth(k key) {
	pw := w.pa.Load()
	ok := model.ObjectKey{Cluster: w.cfg.Cluster, NamespacedName: model.NamespacedName{Namespace: k.namespace, Name: k.name}}
	if pw == nil {
		w.cfg.Store.DeletePeerAuthentication(ok)
		return
	}
	pa, err := pw.lister.PeerAuthentications(k.namespace).Get(k.name)
	if w.gone(k, err) {
		w.cfg.Store.DeletePeerAuthentication(ok)
		return
	}
	w.cfg.Store.UpsertPeerAuthentication(kubeconv.PeerAuthentication(w.cfg.Cluster, pa))
}
