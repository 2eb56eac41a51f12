package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemo runs `causeway demo` on free ports: the embedded example is
// served over real xDS, and the sidecar of each network receives its own
// endpoint directly and the other network's through that network's gateway.
func TestDemo(t *testing.T) {
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"demo", "--xds-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0", "--duration", "1s"})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	sections := strings.Split(got, "A sidecar in ")
	if len(sections) != 3 {
		t.Fatalf("want one section per network, got:\n%s", got)
	}
	for _, want := range []struct {
		section int
		lines   []string
	}{
		// network1: v1 directly, v2 through cluster2's NodePort gateway on
		// the node that runs the gateway pod.
		{1, []string{"10.10.2.21    5000   1", "192.168.2.22  31443  1"}},
		// network2: v2 directly, v1 through cluster1's LoadBalancer gateway.
		{2, []string{"10.20.1.21     5000   1", "192.168.1.240  15443  1"}},
	} {
		for _, line := range want.lines {
			if !strings.Contains(sections[want.section], line) {
				t.Errorf("section %d lacks %q:\n%s", want.section, line, sections[want.section])
			}
		}
	}
	if !strings.Contains(got, "/debug/endpoints?host=helloworld.sample.svc.cluster.local&port=5000&network=network2") {
		t.Errorf("no query hints in:\n%s", got)
	}
}
