package model

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// svcMap is a persistent map from Host to *svcState: a hash array mapped
// trie of 32-way nodes. A published map (one a Snapshot holds) is never
// changed: an update copies the nodes on the key's path. Nodes carry the
// generation that created them, and nodes of the generation being edited
// (not yet published) are updated in place, so a batch of updates between
// two snapshots copies each node at most once.
type svcMap struct {
	seed maphash.Seed
	// hashFn replaces maphash in tests that need collisions.
	hashFn func(Host) uint64
	root   *hnode
	size   int
}

const (
	hamtBits = 5
	hamtMask = 1<<hamtBits - 1
	// Past this shift the 64 hash bits are used up: a collision node lists
	// its entries.
	hamtMaxShift = 64
)

type hnode struct {
	gen       uint64
	bitmap    uint32
	collision bool
	entries   []hentry
}

// hentry is a child node or a key and its value.
type hentry struct {
	child *hnode
	hash  uint64
	key   Host
	val   *svcState
}

func (m *svcMap) hash(k Host) uint64 {
	if m.hashFn != nil {
		return m.hashFn(k)
	}
	return maphash.String(m.seed, string(k))
}

func (m *svcMap) get(k Host) *svcState {
	h := m.hash(k)
	n := m.root
	for shift := uint(0); n != nil; shift += hamtBits {
		if n.collision {
			for _, e := range n.entries {
				if e.key == k {
					return e.val
				}
			}
			return nil
		}
		bit := uint32(1) << ((h >> shift) & hamtMask)
		if n.bitmap&bit == 0 {
			return nil
		}
		e := &n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
		if e.child != nil {
			n = e.child
			continue
		}
		if e.key == k {
			return e.val
		}
		return nil
	}
	return nil
}

// set stores v under k, editing nodes of generation gen in place and
// copying the others.
func (m *svcMap) set(k Host, v *svcState, gen uint64) {
	var added bool
	m.root, added = hset(m.root, 0, hentry{hash: m.hash(k), key: k, val: v}, gen)
	if added {
		m.size++
	}
}

// delete removes k, with the same copying rule as set.
func (m *svcMap) delete(k Host, gen uint64) {
	var removed bool
	m.root, removed = hdel(m.root, 0, m.hash(k), k, gen)
	if removed {
		m.size--
	}
}

// editable returns n itself if it belongs to generation gen, else a copy
// that does, with room for one more entry.
func (n *hnode) editable(gen uint64) *hnode {
	if n.gen == gen {
		return n
	}
	c := &hnode{gen: gen, bitmap: n.bitmap, collision: n.collision, entries: make([]hentry, len(n.entries), len(n.entries)+1)}
	copy(c.entries, n.entries)
	return c
}

func hset(n *hnode, shift uint, e hentry, gen uint64) (*hnode, bool) {
	if n == nil {
		return &hnode{gen: gen, bitmap: 1 << ((e.hash >> shift) & hamtMask), entries: []hentry{e}}, true
	}
	if n.collision {
		for i := range n.entries {
			if n.entries[i].key == e.key {
				n = n.editable(gen)
				n.entries[i].val = e.val
				return n, false
			}
		}
		n = n.editable(gen)
		n.entries = append(n.entries, e)
		return n, true
	}
	bit := uint32(1) << ((e.hash >> shift) & hamtMask)
	pos := bits.OnesCount32(n.bitmap & (bit - 1))
	if n.bitmap&bit == 0 {
		n = n.editable(gen)
		n.bitmap |= bit
		n.entries = slices.Insert(n.entries, pos, e)
		return n, true
	}
	cur := n.entries[pos]
	switch {
	case cur.child != nil:
		child, added := hset(cur.child, shift+hamtBits, e, gen)
		if child != cur.child {
			n = n.editable(gen)
			n.entries[pos] = hentry{child: child}
		}
		return n, added
	case cur.key == e.key:
		n = n.editable(gen)
		n.entries[pos].val = e.val
		return n, false
	default:
		n = n.editable(gen)
		n.entries[pos] = hentry{child: pair(shift+hamtBits, cur, e, gen)}
		return n, true
	}
}

// pair builds the node holding two entries whose hashes agree below shift.
func pair(shift uint, a, b hentry, gen uint64) *hnode {
	if shift >= hamtMaxShift {
		return &hnode{gen: gen, collision: true, entries: []hentry{a, b}}
	}
	ia, ib := (a.hash>>shift)&hamtMask, (b.hash>>shift)&hamtMask
	if ia == ib {
		return &hnode{gen: gen, bitmap: 1 << ia, entries: []hentry{{child: pair(shift+hamtBits, a, b, gen)}}}
	}
	if ia > ib {
		a, b = b, a
		ia, ib = ib, ia
	}
	return &hnode{gen: gen, bitmap: 1<<ia | 1<<ib, entries: []hentry{a, b}}
}

func hdel(n *hnode, shift uint, h uint64, k Host, gen uint64) (*hnode, bool) {
	if n == nil {
		return nil, false
	}
	if n.collision {
		for i := range n.entries {
			if n.entries[i].key == k {
				if len(n.entries) == 1 {
					return nil, true
				}
				n = n.editable(gen)
				n.entries = slices.Delete(n.entries, i, i+1)
				return n, true
			}
		}
		return n, false
	}
	bit := uint32(1) << ((h >> shift) & hamtMask)
	if n.bitmap&bit == 0 {
		return n, false
	}
	pos := bits.OnesCount32(n.bitmap & (bit - 1))
	cur := n.entries[pos]
	if cur.child != nil {
		child, removed := hdel(cur.child, shift+hamtBits, h, k, gen)
		if !removed {
			return n, false
		}
		n = n.editable(gen)
		switch {
		case child == nil:
			n.bitmap &^= bit
			n.entries = slices.Delete(n.entries, pos, pos+1)
		case len(child.entries) == 1 && child.entries[0].child == nil:
			// A lone key moves up: lookups stop at the first key on the path.
			n.entries[pos] = child.entries[0]
		default:
			n.entries[pos] = hentry{child: child}
		}
	} else {
		if cur.key != k {
			return n, false
		}
		n = n.editable(gen)
		n.bitmap &^= bit
		n.entries = slices.Delete(n.entries, pos, pos+1)
	}
	if len(n.entries) == 0 {
		return nil, true
	}
	return n, true
}

// all calls fn for every value, in no particular order.
func (m *svcMap) all(fn func(*svcState)) {
	var walk func(n *hnode)
	walk = func(n *hnode) {
		if n == nil {
			return
		}
		for _, e := range n.entries {
			if e.child != nil {
				walk(e.child)
			} else {
				fn(e.val)
			}
		}
	}
	walk(m.root)
}
