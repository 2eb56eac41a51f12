package model

// ObjectKind names a kind of a cluster's objects in the store, for
// [Store.RetainCluster].
type ObjectKind uint8

// The kinds of a cluster's objects.
const (
	KindNamespace ObjectKind = iota
	KindNode
	KindService
	KindEndpointSlice
	KindPod
	KindPeerAuthentication
)

// String names the kind as Kubernetes does.
func (k ObjectKind) String() string {
	switch k {
	case KindNamespace:
		return "Namespace"
	case KindNode:
		return "Node"
	case KindService:
		return "Service"
	case KindEndpointSlice:
		return "EndpointSlice"
	case KindPod:
		return "Pod"
	case KindPeerAuthentication:
		return "PeerAuthentication"
	}
	return "unknown"
}

// RetainCluster removes every object of cluster c for which keep returns
// false (cluster-scoped objects have an empty Namespace). Of namespaces the
// store holds only the system namespace's network label.
//
// It is the second half of moving a cluster to a new watch in place (a
// rotated kubeconfig): the new watch first upserts every object it holds
// over the old watch's, then removes what the old watch left and the new
// one does not hold. No snapshot in between lacks an object both watches
// hold, unlike RemoveCluster followed by a replay.
//
// keep is called with the store's locks held: it must not call the store.
// The caller must be the only writer of c's objects until it returns.
func (s *Store) RetainCluster(c ClusterID, keep func(kind ObjectKind, nn NamespacedName) bool) {
	type gone struct {
		kind ObjectKind
		nn   NamespacedName
	}
	var drop []gone
	s.writeMu.Lock()
	s.mu.Lock()
	if cs := s.clusters[c]; cs != nil {
		sys := NamespacedName{Name: s.cfg.SystemNamespace}
		if cs.network != "" && !keep(KindNamespace, sys) {
			drop = append(drop, gone{KindNamespace, sys})
		}
		for name := range cs.nodes {
			if nn := (NamespacedName{Name: name}); !keep(KindNode, nn) {
				drop = append(drop, gone{KindNode, nn})
			}
		}
		for nn := range cs.services {
			if !keep(KindService, nn) {
				drop = append(drop, gone{KindService, nn})
			}
		}
		for nn := range cs.slices {
			if !keep(KindEndpointSlice, nn) {
				drop = append(drop, gone{KindEndpointSlice, nn})
			}
		}
		for nn := range cs.pods {
			if !keep(KindPod, nn) {
				drop = append(drop, gone{KindPod, nn})
			}
		}
	}
	for nn := range s.peerAuth[c] {
		if !keep(KindPeerAuthentication, nn) {
			drop = append(drop, gone{KindPeerAuthentication, nn})
		}
	}
	s.mu.Unlock()
	s.writeMu.Unlock()

	// The caller is the only writer of c: what was found gone stays gone.
	for _, g := range drop {
		key := ObjectKey{Cluster: c, NamespacedName: g.nn}
		switch g.kind {
		case KindNamespace:
			s.DeleteNamespace(c, g.nn.Name)
		case KindNode:
			s.DeleteNode(c, g.nn.Name)
		case KindService:
			s.DeleteService(key)
		case KindEndpointSlice:
			s.DeleteEndpointSlice(key)
		case KindPod:
			s.DeletePod(key)
		case KindPeerAuthentication:
			s.DeletePeerAuthentication(key)
		}
	}
}
