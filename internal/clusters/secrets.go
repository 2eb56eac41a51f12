package clusters

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Istio's remote secret conventions.
const (
	// LabelMultiCluster marks a Secret of the system namespace as a remote
	// secret: one kubeconfig per data key, the key being the cluster id.
	LabelMultiCluster = "istio/multiCluster"
	// AnnotationCluster names the cluster of a remote secret (informative;
	// the data key is what counts).
	AnnotationCluster = "networking.istio.io/cluster"
)

// secretController watches the remote secrets of the config cluster. Its
// event handlers only enqueue the secret's name; sync reads the lister and
// converges the set's remote clusters to what the secret says.
type secretController struct {
	set     *Set
	factory informers.SharedInformerFactory
	lister  corelisters.SecretLister
	hasSync cache.DoneChecker
	queue   workqueue.TypedInterface[cache.ObjectName]
	// synced is closed once the secrets of the initial list are reconciled.
	synced     chan struct{}
	syncedOnce sync.Once
}

func newSecretController(s *Set) (*secretController, error) {
	f := informers.NewSharedInformerFactoryWithOptions(s.cfg.Local.Kube, 0,
		informers.WithNamespace(s.cfg.SystemNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelMultiCluster + "=true" }),
		informers.WithTransform(stripSecret),
	)
	inf := f.Core().V1().Secrets()
	sc := &secretController{
		set:     s,
		factory: f,
		lister:  inf.Lister(),
		queue:   workqueue.NewTyped[cache.ObjectName](),
		synced:  make(chan struct{}),
	}
	enqueue := func(obj any) {
		if name, err := cache.DeletionHandlingObjectToName(obj); err == nil {
			sc.queue.Add(name)
		}
	}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, newObj any) { enqueue(newObj) },
		DeleteFunc: enqueue,
	})
	if err != nil {
		return nil, fmt.Errorf("clusters: watch remote secrets: %w", err)
	}
	sc.hasSync = reg.HasSyncedChecker()
	return sc, nil
}

// stripSecret keeps of a remote secret only its name and data.
func stripSecret(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		s.ManagedFields = nil
		s.Annotations = nil
		s.OwnerReferences = nil
		s.StringData = nil
	}
	return obj, nil
}

func (sc *secretController) run(ctx context.Context) {
	sc.factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Go(func() {
		if cache.WaitFor(ctx, "", sc.hasSync) {
			sc.queue.Add(cache.ObjectName{}) // the barrier: follows the initial list
		}
	})
	wg.Go(func() {
		for sc.processNext() {
		}
	})
	<-ctx.Done()
	sc.queue.ShutDown()
	wg.Wait()
	sc.factory.Shutdown()
}

func (sc *secretController) processNext() bool {
	name, shutdown := sc.queue.Get()
	if shutdown {
		return false
	}
	defer sc.queue.Done(name)
	if name == (cache.ObjectName{}) {
		sc.syncedOnce.Do(func() { close(sc.synced) })
		return true
	}
	desired := map[model.ClusterID][]byte{}
	secret, err := sc.lister.Secrets(name.Namespace).Get(name.Name)
	// The label is checked again: a watch may deliver a secret that just
	// lost it as an update rather than a deletion.
	if err == nil && secret.Labels[LabelMultiCluster] == "true" {
		for k, v := range secret.Data {
			desired[model.ClusterID(k)] = v
		}
	}
	for _, retry := range sc.set.reconcileSecret(name.String(), desired) {
		if n, err := cache.ParseObjectName(retry); err == nil {
			sc.queue.Add(n)
		}
	}
	return true
}

// reconcileSecret makes the remote clusters of secret (NS/NAME) be those of
// desired (cluster id to kubeconfig; empty when the secret is gone). It
// returns the other secrets to reconcile again: those whose entries
// collided with a cluster id that is now free.
func (s *Set) reconcileSecret(secret string, desired map[model.ClusterID][]byte) (retry []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var freed []model.ClusterID
	for id, c := range s.clusters {
		if _, ok := desired[id]; !ok && c.secret == secret {
			s.removeLocked(c, "no longer in its remote secret")
			freed = append(freed, id)
		}
	}
	for k := range s.bad {
		if _, ok := desired[k.id]; !ok && k.secret == secret {
			delete(s.bad, k)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(desired)) {
		s.reconcileEntry(secret, id, desired[id])
	}
	for k := range s.bad {
		if k.secret != secret && slices.Contains(freed, k.id) && !slices.Contains(retry, k.secret) {
			retry = append(retry, k.secret)
		}
	}
	return retry
}

// reconcileEntry converges one data key of one remote secret. Called with
// s.mu held.
func (s *Set) reconcileEntry(secret string, id model.ClusterID, kubeconfig []byte) {
	h := sha256.Sum256(kubeconfig)
	bk := entryKey{secret: secret, id: id}
	log := s.log.With("cluster", string(id), "secret", secret)
	c := s.clusters[id]
	if c != nil && c.secret != secret {
		owner := "remote secret " + c.secret
		if c.secret == "" {
			owner = "the config cluster (--cluster-id)"
		}
		s.setBad(bk, h, fmt.Errorf("cluster id %q is already taken by %s: give this cluster another id (its data key)", id, owner))
		return
	}
	delete(s.bad, bk)

	if c != nil { // a change of an entry of this secret
		switch {
		case c.cur.hash == h:
			if c.next != nil {
				c.next.stop()
				c.next = nil
			}
			c.updateErr, c.refusedHash = "", [sha256.Size]byte{}
			return
		case c.next != nil && c.next.hash == h:
			return
		}
		clients, err := s.cfg.NewClients(id, kubeconfig)
		if err != nil {
			s.refuseChangeLocked(c, h, err)
			return
		}
		next, err := s.startInstance(id, clients, h, true)
		if err != nil {
			s.refuseChangeLocked(c, h, err)
			return
		}
		if c.next != nil {
			c.next.stop()
		}
		c.next = next
		s.wg.Go(func() { s.awaitSwap(next) })
		log.Info("remote secret changed; the cluster moves to the new kubeconfig once its watch has synced", "server", clients.Server, "timeout", s.cfg.SwapTimeout)
		return
	}

	clients, err := s.cfg.NewClients(id, kubeconfig)
	if err != nil {
		s.setBad(bk, h, err)
		return
	}
	in, err := s.startInstance(id, clients, h, false)
	if err != nil {
		s.setBad(bk, h, err)
		return
	}
	s.clusters[id] = &cluster{id: id, secret: secret, cur: in}
	log.Info("remote cluster added", "server", clients.Server)
}

// setBad records an entry that cannot be used; a new or different error is
// logged and counted. Called with s.mu held.
func (s *Set) setBad(k entryKey, h [sha256.Size]byte, err error) {
	if b := s.bad[k]; b != nil && b.hash == h && b.err == err.Error() {
		return
	}
	s.bad[k] = &badEntry{hash: h, err: err.Error()}
	s.metrics.secretErrors.Inc()
	s.log.Info("remote secret entry refused; other clusters are not affected", "cluster", string(k.id), "secret", k.secret, "err", err)
}
