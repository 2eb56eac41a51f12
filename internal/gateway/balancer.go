package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/causeway-mesh/causeway/internal/model"
)

// maxSchedule bounds the precomputed round of a balancer: the sum of the
// endpoints' weights, once divided by their greatest common divisor. Above
// it the balancer computes each pick under a mutex instead.
const maxSchedule = 1024

// balancer picks endpoints by smooth weighted round robin (nginx's): each
// pick adds every endpoint's weight to its running score, takes the highest
// score and subtracts the total weight from it. Over a round of
// total-weight picks every endpoint is picked exactly weight times, spread
// out instead of in bursts (weights 5,1,1 give a a b a c a a, not
// a a a a a b c).
//
// The sequence is deterministic, so for weights whose round is short
// (at most maxSchedule picks after dividing by their GCD, which covers the
// equal or small weights the mesh hands out) the whole round is computed
// once and a pick is one atomic increment: no lock on the accept path. A
// balancer is immutable apart from its position; a new endpoint set gets a
// new balancer.
type balancer struct {
	// schedule is the round as endpoint indexes; nil when it is too long.
	schedule []uint32
	next     atomic.Uint64

	// For long rounds: the running scores, under mu.
	weights []int64
	total   int64
	mu      sync.Mutex
	scores  []int64
}

// newBalancer returns a balancer over endpoints of the given weights (each
// at least 1); nil when there are none.
func newBalancer(weights []uint32) *balancer {
	if len(weights) == 0 {
		return nil
	}
	g := uint64(0)
	for _, w := range weights {
		g = model.GCD(g, uint64(w))
	}
	b := &balancer{weights: make([]int64, len(weights))}
	for i, w := range weights {
		b.weights[i] = int64(uint64(w) / g)
		b.total += b.weights[i]
	}
	if b.total <= maxSchedule {
		scores := make([]int64, len(weights))
		b.schedule = make([]uint32, b.total)
		for k := range b.schedule {
			b.schedule[k] = uint32(smoothPick(b.weights, b.total, scores))
		}
		return b
	}
	b.scores = make([]int64, len(weights))
	return b
}

// pick returns the index of the next endpoint.
func (b *balancer) pick() int {
	if b.schedule != nil {
		n := b.next.Add(1) - 1
		return int(b.schedule[n%uint64(len(b.schedule))])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return smoothPick(b.weights, b.total, b.scores)
}

// smoothPick is one step of smooth weighted round robin over scores; ties
// go to the lower index.
func smoothPick(weights []int64, total int64, scores []int64) int {
	best := 0
	for i, w := range weights {
		scores[i] += w
		if scores[i] > scores[best] {
			best = i
		}
	}
	scores[best] -= total
	return best
}
