package parity

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleDoc = "# Parity\n\nSome text | with a pipe.\n\n" +
	"| ID | Nodes | Path | Side | Reason |\n" +
	"| --- | --- | --- | --- | --- |\n" +
	"| P1 | `*` | `listener/*/chain{*}/http_filter/istio.stats*` | istiod | telemetry is not Causeway's job |\n" +
	"| P2 | `sidecar/*` | `cluster/outbound\\|*\\|*/connect_timeout` | value | 5s, not 10s |\n" +
	"\nAfter the table.\n"

func TestParseTable(t *testing.T) {
	tab, err := ParseTable([]byte(sampleDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{ID: "P1", Nodes: "*", Path: "listener/*/chain{*}/http_filter/istio.stats*", Side: "istiod", Reason: "telemetry is not Causeway's job"},
		{ID: "P2", Nodes: "sidecar/*", Path: "cluster/outbound|*|*/connect_timeout", Side: "value", Reason: "5s, not 10s"},
	}
	if diff := cmp.Diff(want, tab.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestParseTableErrors(t *testing.T) {
	header := "| ID | Nodes | Path | Side | Reason |\n| --- | --- | --- | --- | --- |\n"
	tests := []struct {
		name, doc, want string
	}{
		{"no table", "# nothing\n", "no table"},
		{"unescaped pipe", header + "| P1 | * | cluster/outbound|5000 | value | r |\n", "escape a pipe"},
		{"duplicate id", header + "| P1 | * | a | value | r |\n| P1 | * | b | value | r |\n", "already used"},
		{"bad side", header + "| P1 | * | a | both | r |\n", "side"},
		{"no reason", header + "| P1 | * | a | any |  |\n", "reason"},
		{"no separator", "| ID | Nodes | Path | Side | Reason |\n| P1 | * | a | any | r |\n", "separator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTable([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTable: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything/at|all", true},
		{"cluster/*/type", "cluster/outbound|80||a.b/type", true},
		{"cluster/*/type", "cluster/outbound|80||a.b/lb_policy", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"abc", "abcd", false},
		{"*.stats", "istio.stats", true},
		{"listener/0.0.0.0_15001/*", "listener/0.0.0.0_15006/address", false},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %t, want %t", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestExplain(t *testing.T) {
	tab, err := ParseTable([]byte(sampleDoc))
	if err != nil {
		t.Fatal(err)
	}
	diffs := []Difference{
		// P1: only istiod has the stats filter.
		{Node: "sidecar/sample/sleep@network1", Path: "listener/0.0.0.0_15006/chain{dport=80}/http_filter/istio.stats", Istiod: present},
		// P1 does not cover the same fact on Causeway's side only.
		{Node: "sidecar/sample/sleep@network1", Path: "listener/0.0.0.0_15006/chain{dport=80}/http_filter/istio.stats", Causeway: present},
		// P2: a value difference on a sidecar.
		{Node: "sidecar/sample/sleep@network1", Path: "cluster/outbound|5000||helloworld.sample.svc.cluster.local/connect_timeout", Istiod: "10s", Causeway: "5s"},
		// P2 is for sidecars only.
		{Node: "router/istio-system/gw@network1", Path: "cluster/outbound|5000||helloworld.sample.svc.cluster.local/connect_timeout", Istiod: "10s", Causeway: "5s"},
	}
	unexplained, gaps, used := tab.Explain(diffs)
	if len(gaps) != 0 {
		t.Errorf("gaps %v, want none: the table has none", gaps)
	}
	if diff := cmp.Diff([]Difference{diffs[1], diffs[3]}, unexplained); diff != "" {
		t.Errorf("unexplained (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"P1": 1, "P2": 1}, used); diff != "" {
		t.Errorf("used rows (-want +got):\n%s", diff)
	}
}

const gapsDoc = sampleDoc +
	"\n## Known gaps (not yet matched)\n\n" +
	"| ID | Nodes | Path | Side | Reason |\n" +
	"| --- | --- | --- | --- | --- |\n" +
	"| G1 | `router/*` | `cluster/outbound\\|*\\|*/connect_timeout` | value | istiod: 10s; Causeway: 5s |\n" +
	"| G2 | `*` | `cluster/BlackHoleCluster/type` | istiod | istiod serves it; Causeway not yet |\n" +
	"\n## After\n\n" +
	"| ID | Nodes | Path | Side | Reason |\n" +
	"| --- | --- | --- | --- | --- |\n" +
	"| X1 | `*` | `*` | any | a third table, neither deliberate nor a gap |\n"

// TestKnownGaps: a table under a "Known gaps" heading is read apart from
// the deliberate differences; a deliberate row explains first, a gap row
// tolerates what is left, and a gap row that matches nothing is stale
// (the ratchet: a closed gap's row must go).
func TestKnownGaps(t *testing.T) {
	tab, err := ParseTable([]byte(gapsDoc))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{tab.Rows[0].ID, tab.Rows[1].ID}; len(tab.Rows) != 2 || got[0] != "P1" || got[1] != "P2" {
		t.Fatalf("deliberate rows %v, want P1, P2 only", tab.Rows)
	}
	wantGaps := []Row{
		{ID: "G1", Nodes: "router/*", Path: "cluster/outbound|*|*/connect_timeout", Side: "value", Reason: "istiod: 10s; Causeway: 5s"},
		{ID: "G2", Nodes: "*", Path: "cluster/BlackHoleCluster/type", Side: "istiod", Reason: "istiod serves it; Causeway not yet"},
	}
	if diff := cmp.Diff(wantGaps, tab.Gaps); diff != "" {
		t.Fatalf("gaps (-want +got):\n%s", diff)
	}
	diffs := []Difference{
		// P2 (deliberate) before any gap.
		{Node: "sidecar/sample/sleep@network1", Path: "cluster/outbound|5000||h/connect_timeout", Istiod: "10s", Causeway: "5s"},
		// G1: a known gap.
		{Node: "router/istio-system/gw@network1", Path: "cluster/outbound|5000||h/connect_timeout", Istiod: "10s", Causeway: "5s"},
		// Neither.
		{Node: "router/istio-system/gw@network1", Path: "cluster/outbound|5000||h/lb_policy", Istiod: "A", Causeway: "B"},
	}
	unexplained, gaps, used := tab.Explain(diffs)
	if diff := cmp.Diff([]Difference{diffs[2]}, unexplained); diff != "" {
		t.Errorf("unexplained (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Difference{diffs[1]}, gaps); diff != "" {
		t.Errorf("gaps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"P2": 1, "G1": 1}, used); diff != "" {
		t.Errorf("used rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"G2"}, tab.StaleGaps(used)); diff != "" {
		t.Errorf("stale gaps (-want +got):\n%s", diff)
	}

	// IDs are distinct across both tables.
	dup := strings.Replace(gapsDoc, "| G2 |", "| P1 |", 1)
	if _, err := ParseTable([]byte(dup)); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("a gap reusing a deliberate row's ID: %v, want an error", err)
	}
}

// TestDocsTable: docs/parity.md's tables parse, deliberate rows are D
// rows and known gaps G rows (a gap never hides among the deliberate
// differences).
func TestDocsTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/parity.md")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := ParseTable(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) == 0 {
		t.Error("no deliberate differences read")
	}
	for _, r := range tab.Rows {
		if !strings.HasPrefix(r.ID, "D") {
			t.Errorf("deliberate row %s: IDs of deliberate differences start with D", r.ID)
		}
	}
	for _, r := range tab.Gaps {
		if !strings.HasPrefix(r.ID, "G") {
			t.Errorf("known gap %s: IDs of known gaps start with G", r.ID)
		}
	}
	t.Logf("%d deliberate differences, %d known gaps", len(tab.Rows), len(tab.Gaps))
}
