package parity

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestCompare(t *testing.T) {
	istiod := Facts{
		"cluster/a/type":     "EDS",
		"cluster/a/lb":       "ROUND_ROBIN",
		"listener/l/address": "0.0.0.0:15001",
	}
	causeway := Facts{
		"cluster/a/type":     "EDS",
		"cluster/a/lb":       "LEAST_REQUEST",
		"cluster/b/type":     "STATIC",
		"listener/l/address": "0.0.0.0:15001",
	}
	got := Compare("n", istiod, causeway)
	want := []Difference{
		{Node: "n", Path: "cluster/a/lb", Istiod: "ROUND_ROBIN", Causeway: "LEAST_REQUEST"},
		{Node: "n", Path: "cluster/b/type", Causeway: "STATIC"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Compare (-want +got):\n%s", diff)
	}
	if got[0].Side() != SideValue || got[1].Side() != SideCauseway || got[0].Kind() != KindCluster {
		t.Errorf("sides %s, %s and kind %s; want value, causeway and cluster", got[0].Side(), got[1].Side(), got[0].Kind())
	}
	if d := (Difference{Istiod: "x"}); d.Side() != SideIstiod {
		t.Errorf("a fact only istiod has: side %s, want istiod", d.Side())
	}
	if diffs := Compare("n", istiod, istiod); len(diffs) != 0 {
		t.Errorf("equal facts differ: %v", diffs)
	}
}

func TestFormatGroupsByNodeAndKind(t *testing.T) {
	out := Format([]Difference{
		{Node: "b", Path: "listener/x/address", Istiod: "1"},
		{Node: "a", Path: "cluster/c/type", Istiod: "EDS", Causeway: "STATIC"},
		{Node: "a", Path: "cluster/d/type", Causeway: "EDS"},
	})
	testkit.ContainsAll(t, "Format output", out,
		"=== a: 2 difference(s)\n--- cluster (2)\n",
		"  differs:       cluster/c/type\n      istiod:   EDS\n      causeway: STATIC\n",
		"  only causeway: cluster/d/type = EDS\n",
		"=== b: 1 difference(s)\n--- listener (1)\n  only istiod:   listener/x/address = 1\n",
	)
	if strings.Index(out, "=== a") > strings.Index(out, "=== b") {
		t.Errorf("nodes not in order:\n%s", out)
	}
}
