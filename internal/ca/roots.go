package ca

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/internal/model"
)

// rootLabels are the labels Istio gives the root ConfigMaps.
var rootLabels = map[string]string{"istio.io/config": "true"}

// rootPublisher keeps the root ConfigMap of every namespace of one cluster
// equal to the CA's root: event handlers put namespace names on a queue,
// one worker converges each from the listers.
type rootPublisher struct {
	a       *Authority
	cluster model.ClusterID
	client  kubernetes.Interface
	log     *slog.Logger

	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
	queue      workqueue.TypedRateLimitingInterface[string]

	// Worker-only state, for logging a repeated problem once.
	foreign map[string]bool // roots of the cluster's own control plane already reported
	lastErr string
}

// PublishRoot keeps the ConfigMap istio-ca-root-cert (key root-cert.pem) of
// every namespace of a cluster equal to the CA's root until ctx ends: it
// creates it in every namespace, new ones included, restores it when it is
// edited or deleted, and rewrites them all when the root changes. Run it,
// in a goroutine of its own, for each cluster whose workloads get
// certificates from this CA (the config cluster, and remote clusters
// without a control plane of their own); cancel ctx when the cluster goes.
// It returns nil once ctx ends, an error only when it cannot start.
//
// In a cluster that has a control plane of its own (multi-primary), that
// control plane's ConfigMaps win: a ConfigMap whose root was last written
// by field manager causeway-CLUSTER (see [FieldManager]) is left as it is,
// and a different root in it is reported, since it means the clusters do
// not share a root.
func (a *Authority) PublishRoot(ctx context.Context, cluster model.ClusterID, client kubernetes.Interface) error {
	if client == nil {
		return fmt.Errorf("ca: publish the root into cluster %s: no client", cluster)
	}
	p := &rootPublisher{
		a:       a,
		cluster: cluster,
		client:  client,
		log:     a.log.With("cluster", string(cluster)),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		foreign: map[string]bool{},
	}
	nsFactory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripNamespace))
	cmFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", RootConfigMapName).String()
		}))
	nsInformer := nsFactory.Core().V1().Namespaces()
	cmInformer := cmFactory.Core().V1().ConfigMaps()
	p.namespaces = nsInformer.Lister()
	p.configMaps = cmInformer.Lister()
	nsReg, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.enqueueName(obj) },
		UpdateFunc: func(_, obj any) { p.enqueueName(obj) },
	})
	if err != nil {
		return fmt.Errorf("ca: cluster %s: watch namespaces: %w", cluster, err)
	}
	cmReg, err := cmInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.enqueueNamespace,
		UpdateFunc: func(_, obj any) { p.enqueueNamespace(obj) },
		DeleteFunc: p.enqueueNamespace,
	})
	if err != nil {
		return fmt.Errorf("ca: cluster %s: watch ConfigMaps: %w", cluster, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		p.queue.ShutDown()
		wg.Wait()
		nsFactory.Shutdown()
		cmFactory.Shutdown()
	}()
	nsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nsReg.HasSynced, cmReg.HasSynced) {
		return nil
	}
	wg.Go(func() {
		for p.processNext(ctx) {
		}
	})
	// Every namespace again whenever the CA changes (a new root, or the
	// first CA: until then the worker has nothing to publish).
	for {
		st := a.state.Load()
		if st.ca != nil {
			p.enqueueAll()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-st.changed:
		}
	}
}

// stripNamespace keeps what the publisher reads of a Namespace.
func stripNamespace(obj any) (any, error) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.ManagedFields = nil
		ns.Annotations = nil
		ns.Spec = corev1.NamespaceSpec{}
	}
	return obj, nil
}

func (p *rootPublisher) enqueueName(obj any) {
	if m, ok := obj.(metav1.Object); ok {
		p.queue.Add(m.GetName())
	}
}

func (p *rootPublisher) enqueueNamespace(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if m, ok := obj.(metav1.Object); ok && m.GetName() == RootConfigMapName {
		p.queue.Add(m.GetNamespace())
	}
}

func (p *rootPublisher) enqueueAll() {
	all, err := p.namespaces.List(labels.Everything())
	if err != nil {
		return // a lister of the cache never fails
	}
	for _, ns := range all {
		p.queue.Add(ns.Name)
	}
}

func (p *rootPublisher) processNext(ctx context.Context) bool {
	ns, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(ns)
	if err := p.sync(ctx, ns); err != nil {
		if apierrors.IsConflict(err) {
			// Written meanwhile: try again with what the informer brings.
			p.queue.AddRateLimited(ns)
			return true
		}
		p.a.metrics.rootErrors.WithLabelValues(string(p.cluster)).Inc()
		p.logError(ns, err)
		p.queue.AddRateLimited(ns)
		return true
	}
	p.queue.Forget(ns)
	return true
}

// logError logs a failure at info the first time it happens, then at debug
// until another one happens: a cluster that refuses every write would
// otherwise log once per namespace and retry.
func (p *rootPublisher) logError(ns string, err error) {
	level := slog.LevelDebug
	if reason := string(apierrors.ReasonForError(err)) + err.Error(); reason != p.lastErr {
		p.lastErr, level = reason, slog.LevelInfo
	}
	if apierrors.IsForbidden(err) {
		err = fmt.Errorf("%w: grant the control plane get, list, watch, create and update on configmaps in cluster %s", err, p.cluster)
	}
	p.log.Log(context.Background(), level, "root ConfigMap not written; retrying", "namespace", ns, "err", err)
}

// rootAction is what sync does with a namespace's root ConfigMap.
type rootAction int

const (
	rootKeep rootAction = iota
	rootCreate
	rootUpdate
	// rootForeign: the ConfigMap holds another root, written by the
	// cluster's own control plane, which wins.
	rootForeign
)

// decideRoot says what to do with the root ConfigMap cm (nil: missing) of
// a namespace of cluster target, for a CA whose root is root and whose
// field manager is self.
func decideRoot(cm *corev1.ConfigMap, root []byte, self string, target model.ClusterID) rootAction {
	switch {
	case cm == nil:
		return rootCreate
	case cm.Data[RootConfigMapKey] == string(root):
		return rootKeep
	}
	if owner := rootOwner(cm); self != FieldManager(target) && owner == FieldManager(target) {
		return rootForeign
	}
	return rootUpdate
}

// rootOwner returns the field manager that last wrote the root of cm.
func rootOwner(cm *corev1.ConfigMap) string {
	field := `"f:` + RootConfigMapKey + `"`
	for i := range cm.ManagedFields {
		if strings.Contains(cm.ManagedFields[i].FieldsV1.GetRawString(), field) {
			return cm.ManagedFields[i].Manager
		}
	}
	return ""
}

// writerAnnotations returns annotations with WriterAnnotation naming this
// replica (unchanged when it has no name).
func (a *Authority) writerAnnotations(annotations map[string]string) map[string]string {
	if a.cfg.Writer == "" {
		return annotations
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[WriterAnnotation] = a.cfg.Writer
	return annotations
}

// sync converges the root ConfigMap of namespace ns.
func (p *rootPublisher) sync(ctx context.Context, ns string) error {
	st := p.a.state.Load()
	if st.ca == nil {
		return nil // enqueued again once the CA is loaded
	}
	namespace, err := p.namespaces.Get(ns)
	if apierrors.IsNotFound(err) || (err == nil && (namespace.DeletionTimestamp != nil || namespace.Status.Phase == corev1.NamespaceTerminating)) {
		return nil
	}
	if err != nil {
		return err
	}
	cm, err := p.configMaps.ConfigMaps(ns).Get(RootConfigMapName)
	if apierrors.IsNotFound(err) {
		cm, err = nil, nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	switch decideRoot(cm, st.root, p.a.manager, p.cluster) {
	case rootKeep:
		return nil
	case rootForeign:
		p.noteForeign(ns, cm, st.root)
		return nil
	case rootCreate:
		return p.create(ctx, ns, st.root)
	}
	return p.update(ctx, ns, cm, st.root)
}

// noteForeign counts a root ConfigMap of namespace ns written by another
// control plane with another root, and warns once per foreign root.
func (p *rootPublisher) noteForeign(ns string, cm *corev1.ConfigMap, root []byte) {
	p.a.metrics.rootForeign.WithLabelValues(string(p.cluster)).Inc()
	theirs := cm.Data[RootConfigMapKey]
	if !p.foreign[theirs] {
		p.foreign[theirs] = true
		p.log.Warn("cluster has its own control plane with another root: workloads of the two clusters do not trust each other; plug in intermediates of one shared root (causeway certs intermediate) in both",
			"namespace", ns, "writer", rootOwner(cm), "theirRoots", fingerprints([]byte(theirs)), "ourRoots", fingerprints(root))
	}
}

// create creates the root ConfigMap of namespace ns; one that exists
// already, or a namespace that is going, is no error.
func (p *rootPublisher) create(ctx context.Context, ns string, root []byte) error {
	_, err := p.client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RootConfigMapName, Namespace: ns, Labels: maps.Clone(rootLabels), Annotations: p.a.writerAnnotations(nil)},
		Data:       map[string]string{RootConfigMapKey: string(root)},
	}, metav1.CreateOptions{FieldManager: p.a.manager})
	switch {
	case err == nil:
		p.a.metrics.rootWrites.WithLabelValues(string(p.cluster), "create").Inc()
		p.log.Debug("root ConfigMap created", "namespace", ns)
		return nil
	case apierrors.IsAlreadyExists(err):
		return nil // the informer brings it, and its namespace back here
	case apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return nil // the namespace is going
	}
	return fmt.Errorf("create ConfigMap %s/%s: %w", ns, RootConfigMapName, err)
}

// update writes root into the existing root ConfigMap cm of namespace ns,
// with the publisher's labels and writer annotation; one deleted meanwhile
// is no error.
func (p *rootPublisher) update(ctx context.Context, ns string, cm *corev1.ConfigMap, root []byte) error {
	next := cm.DeepCopy()
	if next.Data == nil {
		next.Data = map[string]string{}
	}
	next.Data[RootConfigMapKey] = string(root)
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	maps.Copy(next.Labels, rootLabels)
	next.Annotations = p.a.writerAnnotations(next.Annotations)
	_, err := p.client.CoreV1().ConfigMaps(ns).Update(ctx, next, metav1.UpdateOptions{FieldManager: p.a.manager})
	switch {
	case err == nil:
		p.a.metrics.rootWrites.WithLabelValues(string(p.cluster), "update").Inc()
		p.log.Debug("root ConfigMap updated", "namespace", ns)
		return nil
	case apierrors.IsNotFound(err):
		return nil // deleted meanwhile: its delete event brings it back here
	}
	return fmt.Errorf("update ConfigMap %s/%s: %w", ns, RootConfigMapName, err)
}
