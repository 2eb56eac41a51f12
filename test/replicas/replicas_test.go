package replicas

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/bench"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// EnvFailoverOut names a file to which TestReplicasFailover writes the
// run's results as the bench's JSON (its failover section holds the time
// to reconnect and re-converge of each event).
const EnvFailoverOut = "CAUSEWAY_FAILOVER_OUT"

// TestReplicasFailover: two replicas, 50 delta and 50 state-of-the-world
// proxies (25 of each per network) spread over both, churn at 10
// changes/s. The leader is SIGKILLed: its proxies reconnect to the other
// replica, which takes the Lease once it expires. The killed replica is
// restarted, then the other gets SIGTERM: every proxy reconnects to the
// restarted one, which takes the released Lease. Every proxy must end with
// the view the apiservers imply, every change must reach every proxy of
// its network, the Lease must never pass to another holder while valid,
// and every root ConfigMap write must come from the Lease's holder at
// that moment (namespaces are made throughout, so writes happen in every
// period).
func TestReplicasFailover(t *testing.T) {
	testreq.NotShort(t, "starts two kube-apiservers and two causeway serve processes")
	testenv.RequireBinaries(t, false)
	bin := testkit.CausewayBinary(t)
	var progress bytes.Buffer
	res, err := bench.Failover(t.Context(), bench.Config{
		Causeway:  bin,
		Services:  50,
		Endpoints: 4,
		Proxies:   50, // per network: 100 in all, half delta
		Settle:    30 * time.Second,
		WorkDir:   filepath.Join(t.TempDir(), "work"),
		Progress:  &progress,
	}, bench.FailoverConfig{Rate: 10})
	t.Log("\n" + progress.String())
	if res != nil {
		if out := os.Getenv(EnvFailoverOut); out != "" {
			if werr := res.WriteJSON(out); werr != nil {
				t.Error(werr)
			}
		}
	}
	if err != nil {
		t.Fatal(logsOf(res, err))
	}
	fo := res.Failover
	if f := res.Failures(); len(f) > 0 {
		t.Fatal(logsOf(res, fmt.Errorf("%d problem(s):\n  %s", len(f), strings.Join(f, "\n  "))))
	}
	// The checks saw what they check.
	if got := fo.DeltaProxies + fo.SotWProxies; fo.DeltaProxies != 50 || fo.SotWProxies != 50 {
		t.Errorf("%d delta and %d SotW proxies (%d), want 50 and 50", fo.DeltaProxies, fo.SotWProxies, got)
	}
	// The second victim is the first one's survivor, which leads unless a
	// starved machine let the Lease pass back meanwhile: not required.
	if len(fo.Events) != 2 || fo.Events[0].Signal != "SIGKILL" || !fo.Events[0].WasLeader || fo.Events[1].Signal != "SIGTERM" ||
		fo.Events[1].Replica != fo.Events[0].NewLeader {
		t.Fatalf("events %+v: want the leader SIGKILLed, then the survivor SIGTERMed", fo.Events)
	}
	for _, ev := range fo.Events {
		if ev.MovedProxies == 0 || ev.Reconverge.Count != ev.MovedProxies {
			t.Errorf("%s to %s: %d proxies moved, %d re-converged", ev.Signal, ev.Replica, ev.MovedProxies, ev.Reconverge.Count)
		}
		if ev.NewLeader == ev.Replica {
			t.Errorf("%s to %s: it still leads", ev.Signal, ev.Replica)
		}
	}
	if fo.RootWrites < fo.NamespacesMade || fo.NamespacesMade == 0 {
		t.Errorf("%d root ConfigMap writes seen for %d namespaces made", fo.RootWrites, fo.NamespacesMade)
	}
	if len(fo.LeaderChanges) < 3 {
		t.Errorf("leader changes %+v: want at least three holders over time", fo.LeaderChanges)
	}
	ph := res.Churn[0]
	if ph.Changes == 0 || ph.Lost != 0 || ph.Delivered < ph.Pairs {
		t.Errorf("churn: %d changes, %d pairs, %d delivered, %d lost", ph.Changes, ph.Pairs, ph.Delivered, ph.Lost)
	}
	t.Logf("SIGKILL: reconnect p50 %.0f ms, max %.0f ms; complete view max %.0f ms; new leader after %.2fs",
		fo.Events[0].Reconnect.P50, fo.Events[0].Reconnect.Max, fo.Events[0].Reconverge.Max, fo.Events[0].LeaderSeconds)
	t.Logf("SIGTERM: reconnect p50 %.0f ms, max %.0f ms; complete view max %.0f ms; new leader after %.2fs",
		fo.Events[1].Reconnect.P50, fo.Events[1].Reconnect.Max, fo.Events[1].Reconverge.Max, fo.Events[1].LeaderSeconds)
}

// logsOf adds the tails of the replicas' logs to err.
func logsOf(res *bench.Results, err error) error {
	if res == nil || res.Failover == nil {
		return err
	}
	var b strings.Builder
	for _, path := range res.Failover.Logs {
		data, rerr := readTail(path, 4<<10)
		if rerr != nil {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s (tail)\n%s", path, data)
	}
	return fmt.Errorf("%w%s", err, b.String())
}

// readTail reads at most the last n bytes of a file.
func readTail(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, err = f.ReadAt(buf, off)
	return buf, err
}
