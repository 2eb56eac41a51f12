package xds

import (
	"slices"
	"strings"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// Compaction of a sentRecord: its changes are folded into its base once
// they number more than a quarter of the base plus compactSlack.
const compactSlack = 64

// sentRecord is what a stream was sent of one type and still has, by name,
// for proxy-config and /debug/proxies. It is kept small because there is
// one per stream and type and each holds the whole mesh: a map of 2,000
// names per type cost 55 KB per stream, 22 MB for 200 proxies. The
// resources are the view cache's own (a delta response carries them; a
// SotW response's are found through its cachedResources), so the record
// holds pointers only: a base sorted by name, 8 bytes a resource, and the
// changes since the base by name, folded into a new base when they grow.
type sentRecord struct {
	// base is sorted by name, names unique.
	base []*discoverygrpc.Resource
	// over holds what changed since base: a nil value is a removal of a
	// name of base.
	over map[string]*discoverygrpc.Resource
	// n is how many resources the stream has.
	n int
}

func compareName(r *discoverygrpc.Resource, name string) int {
	return strings.Compare(r.GetName(), name)
}

func (s *sentRecord) inBase(name string) bool {
	_, ok := slices.BinarySearchFunc(s.base, name, compareName)
	return ok
}

func (s *sentRecord) has(name string) bool {
	if r, ok := s.over[name]; ok {
		return r != nil
	}
	return s.inBase(name)
}

// add records the resources of one response. Into an empty record, a
// large response goes as the base directly (a copy of rs, which is the
// response's).
func (s *sentRecord) add(rs []*discoverygrpc.Resource) { s.load(rs, false) }

// addOwned is add for a slice the record may keep and reorder.
func (s *sentRecord) addOwned(rs []*discoverygrpc.Resource) { s.load(rs, true) }

func (s *sentRecord) load(rs []*discoverygrpc.Resource, owned bool) {
	if s.n == 0 && len(s.over) == 0 && len(rs) > compactSlack {
		base := rs
		if !owned {
			base = slices.Clone(rs)
		}
		// Stable, so that of two resources of one name the later one,
		// which a client keeps, is the last of its run.
		slices.SortStableFunc(base, func(a, b *discoverygrpc.Resource) int { return strings.Compare(a.GetName(), b.GetName()) })
		keep := base[:0]
		for i, r := range base {
			if i+1 < len(base) && base[i+1].GetName() == r.GetName() {
				continue
			}
			keep = append(keep, r)
		}
		clear(base[len(keep):])
		s.base, s.n = slices.Clip(keep), len(keep)
		return
	}
	for _, r := range rs {
		s.put(r)
	}
}

// put records r as sent.
func (s *sentRecord) put(r *discoverygrpc.Resource) {
	name := r.GetName()
	if !s.has(name) {
		s.n++
	}
	if s.over == nil {
		s.over = make(map[string]*discoverygrpc.Resource)
	}
	s.over[name] = r
	s.compact()
}

// remove records that the stream no longer has name.
func (s *sentRecord) remove(name string) {
	if !s.has(name) {
		return
	}
	s.n--
	if s.inBase(name) {
		if s.over == nil {
			s.over = make(map[string]*discoverygrpc.Resource)
		}
		s.over[name] = nil
	} else {
		delete(s.over, name)
	}
	s.compact()
}

// compact folds the changes into a new base once they are many.
func (s *sentRecord) compact() {
	if len(s.over) <= len(s.base)/4+compactSlack {
		return
	}
	s.base, s.over = s.all(), nil
}

// all returns the resources the stream has, sorted by name.
func (s *sentRecord) all() []*discoverygrpc.Resource {
	out := make([]*discoverygrpc.Resource, 0, s.n)
	for _, r := range s.base {
		if _, changed := s.over[r.GetName()]; !changed {
			out = append(out, r)
		}
	}
	for _, r := range s.over {
		if r != nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *discoverygrpc.Resource) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}
