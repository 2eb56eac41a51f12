package parity

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Sides of a difference: only istiod has the fact, only Causeway has it,
// or both have it with different values.
const (
	SideIstiod   = "istiod"
	SideCauseway = "causeway"
	SideValue    = "value"
)

// Difference is one fact on which istiod's and Causeway's answers to a
// proxy differ.
type Difference struct {
	// Node names the proxy (Node.String, or the test's name for it).
	Node string
	// Path is the fact's path; its first segment is its kind.
	Path string
	// Istiod and Causeway are the values, empty where a side lacks the
	// fact.
	Istiod   string
	Causeway string
}

// Kind is the first segment of the path: listener, cluster, endpoints,
// route or unanswered.
func (d Difference) Kind() string {
	k, _, _ := strings.Cut(d.Path, "/")
	return k
}

// Side says which side has the fact: SideIstiod, SideCauseway or, when
// both have it, SideValue.
func (d Difference) Side() string {
	switch {
	case d.Causeway == "" && d.Istiod != "":
		return SideIstiod
	case d.Istiod == "" && d.Causeway != "":
		return SideCauseway
	}
	return SideValue
}

// Compare returns the facts on which istiod's and Causeway's answers to
// node differ, sorted by path.
func Compare(node string, istiod, causeway Facts) []Difference {
	var out []Difference
	for _, p := range slices.Sorted(maps.Keys(istiod)) {
		if v, ok := causeway[p]; !ok || v != istiod[p] {
			out = append(out, Difference{Node: node, Path: p, Istiod: istiod[p], Causeway: causeway[p]})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(causeway)) {
		if _, ok := istiod[p]; !ok {
			out = append(out, Difference{Node: node, Path: p, Causeway: causeway[p]})
		}
	}
	slices.SortFunc(out, func(a, b Difference) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Format prints differences grouped by node, then by kind, one per line:
// the side, the path and both values.
func Format(diffs []Difference) string {
	var b strings.Builder
	byNode := map[string][]Difference{}
	for _, d := range diffs {
		byNode[d.Node] = append(byNode[d.Node], d)
	}
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		nd := byNode[node]
		fmt.Fprintf(&b, "=== %s: %d difference(s)\n", node, len(nd))
		byKind := map[string][]Difference{}
		for _, d := range nd {
			byKind[d.Kind()] = append(byKind[d.Kind()], d)
		}
		for _, kind := range slices.Sorted(maps.Keys(byKind)) {
			fmt.Fprintf(&b, "--- %s (%d)\n", kind, len(byKind[kind]))
			for _, d := range byKind[kind] {
				switch d.Side() {
				case SideIstiod:
					fmt.Fprintf(&b, "  only istiod:   %s = %s\n", d.Path, d.Istiod)
				case SideCauseway:
					fmt.Fprintf(&b, "  only causeway: %s = %s\n", d.Path, d.Causeway)
				default:
					fmt.Fprintf(&b, "  differs:       %s\n      istiod:   %s\n      causeway: %s\n", d.Path, d.Istiod, d.Causeway)
				}
			}
		}
	}
	return b.String()
}
