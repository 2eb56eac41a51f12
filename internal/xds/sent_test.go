package xds

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// TestSentRecordMatchesMap drives a sentRecord and a plain map with the
// same random responses (large first ones, small changes, removals, names
// repeated within a response) and wants the same contents throughout,
// compactions included.
func TestSentRecordMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	res := func(i, v int) *discoverygrpc.Resource {
		return &discoverygrpc.Resource{Name: fmt.Sprintf("outbound|5000||svc-%04d.ns.svc.cluster.local", i), Version: fmt.Sprint(v)}
	}
	for round := range 20 {
		var s sentRecord
		want := map[string]*discoverygrpc.Resource{}
		const names = 500
		// The first response: most names, in random order, some twice.
		var first []*discoverygrpc.Resource
		for _, i := range rng.Perm(names)[:400] {
			first = append(first, res(i, 0))
			if rng.IntN(20) == 0 {
				first = append(first, res(i, 1)) // the later one wins
			}
		}
		if round%2 == 1 {
			first = first[:10] // a small first response: no base
		}
		for _, r := range first {
			want[r.GetName()] = r
		}
		if round%4 == 2 {
			s.addOwned(first) // first is reordered: want was filled before
		} else {
			s.add(first)
		}
		check := func(step string) {
			t.Helper()
			got := s.all()
			if len(got) != len(want) || s.n != len(want) {
				t.Fatalf("round %d, %s: %d resources (n %d), want %d", round, step, len(got), s.n, len(want))
			}
			if !slices.IsSortedFunc(got, func(a, b *discoverygrpc.Resource) int { return compareName(a, b.GetName()) }) {
				t.Fatalf("round %d, %s: not sorted by name", round, step)
			}
			for _, r := range got {
				if want[r.GetName()] != r {
					t.Fatalf("round %d, %s: %s is %v, want %v", round, step, r.GetName(), r, want[r.GetName()])
				}
			}
		}
		check("first response")
		for step := range 3000 {
			switch op := rng.IntN(10); {
			case op < 6: // a change of a few
				var rs []*discoverygrpc.Resource
				for range 1 + rng.IntN(3) {
					r := res(rng.IntN(names), step+2)
					rs = append(rs, r)
					want[r.GetName()] = r
				}
				s.add(rs)
			default: // a removal, of a name held or not
				name := res(rng.IntN(names), 0).GetName()
				s.remove(name)
				delete(want, name)
			}
			if step%97 == 0 {
				check(fmt.Sprintf("step %d", step))
			}
		}
		check("end")
		if len(s.over) > len(s.base)/4+compactSlack {
			t.Errorf("round %d: %d changes over a base of %d: never compacted", round, len(s.over), len(s.base))
		}
	}
}

// TestSentRecordSmall is the record's memory per resource once a large
// response is in it: the base's pointers, not a map.
func TestSentRecordSmall(t *testing.T) {
	rs := make([]*discoverygrpc.Resource, 2000)
	for i := range rs {
		rs[i] = &discoverygrpc.Resource{Name: fmt.Sprintf("outbound|5000||svc-%04d.ns.svc.cluster.local", i)}
	}
	var s sentRecord
	s.add(rs)
	if len(s.over) != 0 || len(s.base) != 2000 || cap(s.base) != 2000 {
		t.Errorf("a first response of 2,000: base %d (cap %d), changes %d; want all in the base", len(s.base), cap(s.base), len(s.over))
	}
}
