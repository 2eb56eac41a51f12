package model

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestSvcMapPersistent checks the trie against a Go map through random
// sets and deletes, taking "snapshots" (bumping the generation, as
// Store.Snapshot does) along the way: every snapshot must keep its content
// whatever happens after it.
func TestSvcMapPersistent(t *testing.T) {
	seed := maphash.MakeSeed()
	hashes := map[string]func(Host) uint64{
		"maphash": nil,
		// Few distinct hashes: long shared prefixes and collision nodes.
		"colliding": func(h Host) uint64 { return maphash.String(seed, string(h)) % 7 },
		"prefix-sharing": func(h Host) uint64 {
			return maphash.String(seed, string(h)) & 0xF000_0000_0000_000F
		},
	}
	for name, fn := range hashes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			m := svcMap{seed: maphash.MakeSeed(), hashFn: fn}
			ref := map[Host]*svcState{}
			type snap struct {
				m   svcMap
				ref map[Host]*svcState
			}
			var snaps []snap
			gen := uint64(1)
			for step := range 5000 {
				k := Host(fmt.Sprintf("h%d", rng.IntN(300)))
				if rng.IntN(3) == 0 {
					m.delete(k, gen)
					delete(ref, k)
				} else {
					v := &svcState{}
					m.set(k, v, gen)
					ref[k] = v
				}
				if step%97 == 0 {
					snaps = append(snaps, snap{m: m, ref: maps.Clone(ref)})
					gen++
				}
			}
			snaps = append(snaps, snap{m: m, ref: ref})
			for i, s := range snaps {
				if s.m.size != len(s.ref) {
					t.Fatalf("snapshot %d: size %d, want %d", i, s.m.size, len(s.ref))
				}
				for k, v := range s.ref {
					if got := s.m.get(k); got != v {
						t.Fatalf("snapshot %d: get(%s) = %p, want %p", i, k, got, v)
					}
				}
				for j := range 300 {
					k := Host(fmt.Sprintf("h%d", j))
					if _, ok := s.ref[k]; !ok && s.m.get(k) != nil {
						t.Fatalf("snapshot %d: get(%s) found a deleted key", i, k)
					}
				}
				n := 0
				s.m.all(func(*svcState) { n++ })
				if n != len(s.ref) {
					t.Fatalf("snapshot %d: all() visits %d values, want %d", i, n, len(s.ref))
				}
			}
		})
	}
}
