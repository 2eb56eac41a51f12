package model

import (
	"strings"
	"testing"
)

// Network names reached terminal output unchecked, control characters
// included; they are label values and are now checked as such.
func TestMeshNetworksNetworkNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"network1", true},
		{"net_1.a-b", true},
		{"a", true},
		{strings.Repeat("n", 63), true},
		{strings.Repeat("n", 64), false},
		{"net\x1b[2Jwork", false},
		{"net\nwork", false},
		{"-net", false},
		{"net.", false},
		{"net work", false},
		{"réseau", false},
	} {
		in := "networks:\n  " + quoteYAML(tc.name) + ":\n    endpoints: [{fromRegistry: c1}]\n"
		_, err := ParseMeshNetworks([]byte(in))
		if tc.ok != (err == nil) {
			t.Errorf("network %q: err = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "label value") {
			t.Errorf("network %q: error %q does not say it must be a label value", tc.name, err)
		}
		for _, r := range err.Error() {
			if r < 0x20 || r == 0x7f {
				t.Errorf("network %q: error %q holds control character %U", tc.name, err, r)
			}
		}
	}
}

// quoteYAML writes s as a double-quoted YAML (JSON) string.
func quoteYAML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			b.WriteString(`\x`)
			b.WriteString(strings.ToUpper(string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15])))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// A fromRegistry naming no cluster of the mesh placed nothing and the
// report said "no warnings".
func TestNetworksWarnsOfUnknownRegistry(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertService(&Service{Cluster: "cluster1", Namespace: "app", Name: "web", Type: ServiceTypeClusterIP})
	mn, err := ParseMeshNetworks([]byte("networks:\n  network1:\n    endpoints: [{fromRegistry: cluster1}]\n  network2:\n    endpoints: [{fromRegistry: clusterr2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetMeshNetworks(mn)
	var found []string
	for _, w := range s.Snapshot().Networks().Warnings {
		if strings.Contains(w, "fromRegistry") {
			found = append(found, w)
		}
	}
	if len(found) != 1 || !strings.Contains(found[0], `"clusterr2"`) || !strings.Contains(found[0], "clusters: cluster1") {
		t.Errorf("fromRegistry warnings = %q, want one naming clusterr2 and the known clusters", found)
	}
}
