package bench

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    uint64
		wantErr bool
	}{
		{
			name: "plain",
			stat: "4242 (causeway) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 9 0 100 1000000 2000 18446744073709551615",
			want: 287,
		},
		{
			name: "command with spaces and parentheses",
			stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 12 3 0 0 20 0 1 0 5 100 10",
			want: 15,
		},
		{name: "no command", stat: "7 a R 1", wantErr: true},
		{name: "truncated", stat: "7 (a) R 1 7 7 0", wantErr: true},
		{name: "not a number", stat: "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 3 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %t", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d ticks, want %d", got, tt.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tcauseway\nVmPeak:\t 2000000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatusMemory([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([2]int64{100000 << 10, 123456 << 10}, [2]int64{rss, hwm}); diff != "" {
		t.Errorf("rss, hwm (-want +got):\n%s", diff)
	}
	if _, _, err := parseStatusMemory([]byte("Name:\tzombie\nState:\tZ\n")); err == nil {
		t.Error("a status without memory lines parsed")
	}
	if _, _, err := parseStatusMemory([]byte("VmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("a unit other than kB parsed")
	}
}

func TestReadProcStatsOfSelf(t *testing.T) {
	// Burn a little CPU so that the reading is not trivially zero.
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	_ = x
	st, err := readProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUSeconds <= 0 || st.RSSBytes <= 0 || st.PeakRSSBytes < st.RSSBytes {
		t.Errorf("stats of this process: %+v; want CPU > 0 and 0 < RSS <= peak", st)
	}
	if _, err := readProcStats(1 << 30); err == nil {
		t.Error("stats of a process that cannot exist read without error")
	}
}
