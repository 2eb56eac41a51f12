package parity

import (
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
	unexplained, used := tab.Explain(diffs)
	if diff := cmp.Diff([]Difference{diffs[1], diffs[3]}, unexplained); diff != "" {
		t.Errorf("unexplained (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"P1": 1, "P2": 1}, used); diff != "" {
		t.Errorf("used rows (-want +got):\n%s", diff)
	}
}
