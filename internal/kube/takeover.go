package kube

import (
	"github.com/causeway-mesh/causeway/internal/model"
)

// Retainer removes the objects of a cluster that a new watch does not hold:
// *model.Store's RetainCluster.
type Retainer interface {
	RetainCluster(c model.ClusterID, keep func(kind model.ObjectKind, nn model.NamespacedName) bool)
}

var _ Retainer = (*model.Store)(nil)

// Takeover makes w, a watcher started paused, the writer of its cluster in
// place of a previous watch of the same cluster, which the caller has
// paused: every object w's caches hold is written over the previous
// watch's, then the store's objects of the cluster that w's caches do not
// hold are removed through r, and w resumes writing events. The cluster
// never leaves the model in between: an object both watches hold is
// replaced, never deleted and added again. Call it once w has synced.
func (w *Watcher) Takeover(r Retainer) {
	w.mu.Lock()
	for _, k := range w.keys() {
		w.sync(k)
	}
	r.RetainCluster(w.cfg.Cluster, w.holds)
	w.paused = false
	w.mu.Unlock()
	if w.cfg.Changed != nil {
		w.cfg.Changed()
	}
}

// holds reports whether w's caches hold the object. Called with mu held.
func (w *Watcher) holds(k model.ObjectKind, nn model.NamespacedName) bool {
	var key string
	if nn.Namespace == "" {
		key = nn.Name
	} else {
		key = nn.Namespace + "/" + nn.Name
	}
	var k2 kind
	switch k {
	case model.KindNamespace:
		k2 = kindNamespace
	case model.KindNode:
		k2 = kindNode
	case model.KindService:
		k2 = kindService
	case model.KindEndpointSlice:
		k2 = kindEndpointSlice
	case model.KindPod:
		k2 = kindPod
	case model.KindPeerAuthentication:
		pw := w.pa.Load()
		if pw == nil {
			return false
		}
		_, ok, err := pw.informer.GetStore().GetByKey(key)
		return ok && err == nil
	default:
		return false
	}
	inf := w.informers[k2]
	if inf == nil {
		return false
	}
	_, ok, err := inf.GetStore().GetByKey(key)
	return ok && err == nil
}
