package model

import (
	"cmp"
	"maps"
	"slices"
)

// UpsertPeerAuthentication stores a PeerAuthentication of its cluster.
// Its cluster is recorded in Changes.PeerAuthentication if it differs
// from the stored one.
func (s *Store) UpsertPeerAuthentication(p *PeerAuthentication) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	nn := NamespacedName{Namespace: p.Namespace, Name: p.Name}
	if old := s.peerAuth[p.Cluster][nn]; old != nil && samePeerAuth(old, p) {
		return
	}
	if s.peerAuth == nil {
		s.peerAuth = map[ClusterID]map[NamespacedName]*PeerAuthentication{}
	}
	m := s.peerAuth[p.Cluster]
	if m == nil {
		m = map[NamespacedName]*PeerAuthentication{}
		s.peerAuth[p.Cluster] = m
	}
	m[nn] = p
	s.freezePeerAuth(p.Cluster)
}

// DeletePeerAuthentication removes a PeerAuthentication.
func (s *Store) DeletePeerAuthentication(key ObjectKey) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.peerAuth[key.Cluster]
	if _, ok := m[key.NamespacedName]; !ok {
		return
	}
	delete(m, key.NamespacedName)
	if len(m) == 0 {
		delete(s.peerAuth, key.Cluster)
	}
	s.freezePeerAuth(key.Cluster)
}

// freezePeerAuth publishes cluster c's policies anew (the map of frozen
// slices is copied: published snapshots keep theirs) and records the
// change. Called with s.mu held.
func (s *Store) freezePeerAuth(c ClusterID) {
	frozen := maps.Clone(s.peerAuthFrozen)
	if frozen == nil {
		frozen = map[ClusterID][]PeerAuthentication{}
	}
	if m := s.peerAuth[c]; len(m) > 0 {
		list := make([]PeerAuthentication, 0, len(m))
		for _, p := range m {
			list = append(list, *p)
		}
		slices.SortFunc(list, func(a, b PeerAuthentication) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		frozen[c] = list
	} else {
		delete(frozen, c)
	}
	s.peerAuthFrozen = frozen
	// An endpoint of a DISABLE workload does not speak mesh mTLS: the
	// cluster's services are rebuilt (flush records those that differ).
	if cs := s.clusters[c]; cs != nil {
		for nn := range cs.services {
			s.dirty[nn] = struct{}{}
		}
	}
	if s.changes.PeerAuthentication == nil {
		s.changes.PeerAuthentication = map[ClusterID]struct{}{}
	}
	s.changes.PeerAuthentication[c] = struct{}{}
	s.sinceLast = true
}

func samePeerAuth(a, b *PeerAuthentication) bool {
	return a.Cluster == b.Cluster && a.Namespace == b.Namespace && a.Name == b.Name && a.Created.Equal(b.Created) &&
		a.Mode == b.Mode && maps.Equal(a.Selector, b.Selector) && (a.Selector == nil) == (b.Selector == nil) &&
		maps.Equal(a.PortLevel, b.PortLevel)
}
