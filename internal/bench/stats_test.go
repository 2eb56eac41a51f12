package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	hundred := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{name: "empty", want: Latency{}},
		{name: "one", in: []time.Duration{3 * time.Millisecond}, want: Latency{Count: 1, P50: 3, P90: 3, P99: 3, Max: 3}},
		{name: "1..100 ms, unsorted", in: hundred, want: Latency{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}},
		{
			name: "ten, one slow",
			in: []time.Duration{
				time.Microsecond, time.Microsecond, time.Microsecond, time.Microsecond, time.Microsecond,
				time.Microsecond, time.Microsecond, time.Microsecond, time.Microsecond, 500 * time.Millisecond,
			},
			want: Latency{Count: 10, P50: 0.001, P90: 0.001, P99: 500, Max: 500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(tt.in)); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}
