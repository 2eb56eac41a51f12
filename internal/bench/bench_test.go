package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestTinyRun is the harness at a tiny size, both protocols, so that it
// never rots: two real clusters, the real server process, ten proxies, a
// few seconds of churn and a stalled proxy. It fails if any change is lost,
// any view is wrong or any stream fails; it asserts no timing.
func TestTinyRun(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers and causeway serve")
	if _, err := testenv.FindBinaries(false); err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	bin := testkit.CausewayBinary(t)
	for _, proto := range []Protocol{ProtocolSotW, ProtocolDelta} {
		t.Run(string(proto), func(t *testing.T) {
			var progress bytes.Buffer
			profiles := t.TempDir()
			cfg := Config{
				Causeway:  bin,
				Services:  10,
				Endpoints: 3,
				Proxies:   5,
				Rates:     []float64{20},
				Duration:  3 * time.Second,
				Protocol:  proto,
				Stall:     true,
				Settle:    20 * time.Second,
				WorkDir:   t.TempDir(),
				Progress:  &progress,
				// The profiles come from the server's debug API.
				ProfileDir: profiles,
			}
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
			}
			var table strings.Builder
			if err := res.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			t.Logf("results:\n%s", table.String())
			if f := res.Failures(); len(f) > 0 {
				t.Fatalf("the run found problems:\n%s\nprogress:\n%s", strings.Join(f, "\n"), progress.String())
			}
			// What the run must have done, not how fast.
			if len(res.Churn) != 1 || res.Churn[0].Changes == 0 || res.Churn[0].Pairs != res.Churn[0].Changes*5 {
				t.Errorf("churn phase %+v: want changes, each seen by the 5 proxies of its network", res.Churn)
			}
			if c := res.Churn[0]; c.WriteLatency.Count != int(c.Changes) || c.WatchLatency.Count != int(c.Changes) {
				t.Errorf("churn phase: %d writes timed, %d seen by the reference watch, want all %d changes", c.WriteLatency.Count, c.WatchLatency.Count, c.Changes)
			}
			if res.Stall == nil || res.Stall.Changes == 0 || res.Stall.Delivered != res.Stall.Pairs {
				t.Errorf("stall phase %+v: want changes, all delivered to the proxies still reading", res.Stall)
			}
			if res.Verify.Proxies != 9 {
				t.Errorf("verified %d proxies, want the 9 that kept reading", res.Verify.Proxies)
			}
			for _, f := range []string{"heap-start.pprof", "cpu-churn-20.pprof", "heap-churn-20.pprof"} {
				if st, err := os.Stat(filepath.Join(profiles, f)); err != nil || st.Size() == 0 {
					t.Errorf("profile %s: %v, want a non-empty file", f, err)
				}
			}
			if res.Server.PeakRSSBytes <= 0 || res.Server.CPUSeconds <= 0 {
				t.Errorf("server stats %+v: want CPU time and peak RSS read from /proc", res.Server)
			}
		})
	}
}
