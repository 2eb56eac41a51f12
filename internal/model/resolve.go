package model

import (
	"maps"
	"slices"
)

// GatewayHostnames returns, sorted, the hostnames the store resolves with
// Config.Resolve: LoadBalancer ingress hostnames of the Services that may
// give gateways, and meshNetworks gateway addresses that are names.
func (s *Store) GatewayHostnames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string]struct{}{}
	for h := range s.mnAddrs {
		set[h] = struct{}{}
	}
	for _, cs := range s.clusters {
		for _, e := range cs.services {
			for h := range e.lb {
				set[h] = struct{}{}
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// ResolveAgain resolves every gateway hostname again with Config.Resolve
// and, where an answer differs, records a change of gateways (the affected
// views are pushed). For a resolver that caches answers and looks them up
// again on their TTL; it is cheap when Resolve answers from a cache.
func (s *Store) ResolveAgain() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Reading without mu is safe: only mutators, serialized by writeMu,
	// write what is read here.
	type update struct {
		cs *clusterState
		nn NamespacedName
		e  *svcEntry
	}
	var updates []update
	for _, cs := range s.clusters {
		for nn, e := range cs.services {
			if e.lb == nil {
				continue
			}
			if lb := s.resolveAll(e.svc.LoadBalancerHostnames); !maps.EqualFunc(lb, e.lb, sameResolution) {
				updates = append(updates, update{cs, nn, &svcEntry{svc: e.svc, lb: lb}})
			}
		}
	}
	var addrs map[string]resolution
	if len(s.mnAddrs) > 0 {
		addrs = make(map[string]resolution, len(s.mnAddrs))
		for h := range s.mnAddrs {
			addrs[h] = resolve(s.cfg.Resolve, h)
		}
		if maps.EqualFunc(addrs, s.mnAddrs, sameResolution) {
			addrs = nil
		}
	}
	if len(updates) == 0 && addrs == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range updates {
		u.cs.services[u.nn] = u.e
	}
	if addrs != nil {
		s.mnAddrs = addrs
	}
	s.gwDirty = true
}
