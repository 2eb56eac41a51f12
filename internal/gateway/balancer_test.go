package gateway

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBalancerSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		want    []int // the first picks, in order
	}{
		{name: "one endpoint", weights: []uint32{7}, want: []int{0, 0, 0}},
		{name: "equal weights: plain round robin", weights: []uint32{1, 1, 1}, want: []int{0, 1, 2, 0, 1, 2}},
		{name: "equal large weights reduce to round robin", weights: []uint32{4000, 4000}, want: []int{0, 1, 0, 1}},
		{name: "nginx's example: 5,1,1 spreads the heavy one out", weights: []uint32{5, 1, 1}, want: []int{0, 0, 1, 0, 2, 0, 0, 0, 0, 1}},
		{name: "2:1", weights: []uint32{2, 1}, want: []int{0, 1, 0, 0, 1, 0}},
		{name: "Istio's gateway weights 2 and 4", weights: []uint32{2, 4}, want: []int{1, 0, 1, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(tt.weights)
			got := make([]int, len(tt.want))
			for i := range got {
				got[i] = b.pick()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("picks (-want +got):\n%s", diff)
			}
		})
	}
	if newBalancer(nil) != nil {
		t.Error("a balancer over no endpoints")
	}
}

// TestBalancerShares checks that a full round gives every endpoint exactly
// its weight, for a precomputed round and for one too long to precompute
// (computed under the mutex), picked from many goroutines at once.
func TestBalancerShares(t *testing.T) {
	tests := []struct {
		name        string
		weights     []uint32
		precomputed bool
	}{
		{name: "short round", weights: []uint32{3, 1, 2, 6}, precomputed: true},
		{name: "long round", weights: []uint32{1000, 1, 77}, precomputed: false},
		{name: "large co-prime weights", weights: []uint32{4294967295, 4294967294}, precomputed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(tt.weights)
			if got := b.schedule != nil; got != tt.precomputed {
				t.Fatalf("precomputed %v, want %v", got, tt.precomputed)
			}
			var total uint64
			for _, w := range tt.weights {
				total += uint64(w)
			}
			if total > 1<<20 {
				// Too many picks for a test: check the first ones spread
				// like the weights (near 1:1 here) instead.
				counts := make([]int, len(tt.weights))
				for range 1000 {
					counts[b.pick()]++
				}
				if diff := cmp.Diff([]int{500, 500}, counts); diff != "" {
					t.Errorf("counts of 1000 picks (-want +got):\n%s", diff)
				}
				return
			}
			const workers = 8
			counts := make([][]int, workers)
			var wg sync.WaitGroup
			for w := range workers {
				counts[w] = make([]int, len(tt.weights))
				wg.Go(func() {
					for range total {
						counts[w][b.pick()]++
					}
				})
			}
			wg.Wait()
			got := make([]uint32, len(tt.weights))
			for _, c := range counts {
				for i, n := range c {
					got[i] += uint32(n)
				}
			}
			want := make([]uint32, len(tt.weights))
			for i, w := range tt.weights {
				want[i] = w * workers
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("picks over %d rounds (-want +got):\n%s", workers, diff)
			}
		})
	}
}
