package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/leader"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationLeaderElection runs two servers with leader election on
// one config cluster: both serve, exactly one leads (/debug/leader, the
// causeway_is_leader gauge, causeway status) and publishes the root
// ConfigMaps, stamped with its name; when it stops, it gives the Lease up
// and the other takes over the publishing.
func TestIntegrationLeaderElection(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver")
	env := testenv.Start(t, testenv.Options{Clusters: 1})
	c := env.Clusters[0]
	cs := c.Client()
	ctx := t.Context()
	must(testenv.CreateNamespace(ctx, cs, "istio-system", nil))(t)
	election := func(id string) LeaderElection {
		// A lease far longer than the test: only a release hands it over.
		return LeaderElection{Enabled: true, Identity: id, LeaseDuration: time.Hour, RenewDeadline: 50 * time.Minute, RetryPeriod: 100 * time.Millisecond}
	}
	servers := map[string]*runningServer{
		"a": serveCluster(t, c, Config{LeaderElection: election("a")}),
		"b": serveCluster(t, c, Config{LeaderElection: election("b")}),
	}
	status := func(rs *runningServer) leader.Status {
		var st leader.Status
		if code := rs.get(t, "/debug/leader", &st); code != 200 {
			t.Fatalf("/debug/leader: HTTP %d", code)
		}
		return st
	}
	// leaderIs checks that id leads and every other running server
	// follows, by each one's /debug/leader and metric.
	leaderIs := func(id string) string {
		for name, rs := range servers {
			if rs.cancel == nil {
				continue
			}
			st := status(rs)
			metrics, err := httpGet(rs.base + "/metrics")
			if err != nil {
				return err.Error()
			}
			want := 0
			if name == id {
				want = 1
			}
			if st.IsLeader != (name == id) || st.Holder != id || !strings.Contains(metrics, fmt.Sprintf("\ncauseway_is_leader %d\n", want)) {
				return fmt.Sprintf("%s: status %+v, causeway_is_leader not %d", name, st, want)
			}
		}
		return ""
	}
	var first string
	testkit.Eventually(t, testkit.WaitTimeout, "one leader", func() string {
		first = status(servers["a"]).Holder
		if first == "" {
			return "no holder"
		}
		return leaderIs(first)
	})
	other := map[string]string{"a": "b", "b": "a"}[first]
	rootBy := func(ns, want string) func() string {
		return func() string {
			cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, ca.RootConfigMapName, metav1.GetOptions{})
			if err != nil {
				return err.Error()
			}
			if got := cm.Annotations[ca.WriterAnnotation]; got != want {
				return fmt.Sprintf("written by %q, want %q", got, want)
			}
			return ""
		}
	}
	must(testenv.CreateNamespace(ctx, cs, "app1", nil))(t)
	testkit.Eventually(t, testkit.WaitTimeout, "root ConfigMap of app1 by the leader (-want +got)", rootBy("app1", first))
	if table := statusTable(t, servers[first].base); !strings.Contains(table, "this replica "+first+" is leading") {
		t.Errorf("causeway status of the leader:\n%s", table)
	}

	servers[first].stop(t)
	testkit.Eventually(t, testkit.WaitTimeout, "the other leads", func() string { return leaderIs(other) })
	must(testenv.CreateNamespace(ctx, cs, "app2", nil))(t)
	testkit.Eventually(t, testkit.WaitTimeout, "root ConfigMap of app2 by the new leader (-want +got)", rootBy("app2", other))
	if table := statusTable(t, servers[other].base); !strings.Contains(table, "leader: "+other) {
		t.Errorf("causeway status of the new leader:\n%s", table)
	}
}
