package model

import "testing"

func TestKubeletRunsNativeSidecars(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"v1.33.0", true},
		{"v1.34.1", true},
		{"1.33.2", true},
		{"v1.33.1-eks-1234", true},
		{"v1.33.1+k3s1", true},
		{"v1.33", true},
		{"v1.32.9", false},
		{"v1.29.0", false},
		// As istiod, the minor version alone decides.
		{"v2.0.0", false},
		{"v0.40.0", true},
		{"v1", false},
		{"", false},
		{"latest", false},
		{"v1..3", false},
		{"v1.33.0-", false},
		{"v1.x.0", false},
	}
	for _, tt := range tests {
		if got := KubeletRunsNativeSidecars(tt.version); got != tt.want {
			t.Errorf("KubeletRunsNativeSidecars(%q) = %t, want %t", tt.version, got, tt.want)
		}
	}
}

func TestStoreNativeSidecars(t *testing.T) {
	type node struct{ name, version string }
	tests := []struct {
		name    string
		nodes   []node
		deleted []string
		// podNode is the pod's spec.nodeName.
		podNode string
		cluster ClusterID
		want    bool
	}{
		{name: "all new", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.34.2"}}, want: true},
		{name: "one old", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}}, want: false},
		{name: "one without a version", nodes: []node{{"a", "v1.33.0"}, {"b", ""}}, want: false},
		{name: "old node deleted", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}}, deleted: []string{"b"}, want: true},
		{name: "old node upgraded", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}, {"b", "v1.33.1"}}, want: true},
		{name: "new node downgraded", nodes: []node{{"a", "v1.33.0"}, {"a", "v1.31.0"}}, want: false},
		{name: "no nodes left", nodes: []node{{"a", "v1.31.0"}}, deleted: []string{"a"}, want: true},
		{name: "pod's node new, another old", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}}, podNode: "a", want: true},
		{name: "pod's node old, others new", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}}, podNode: "b", want: false},
		{name: "pod's node unknown: all nodes", nodes: []node{{"a", "v1.33.0"}, {"b", "v1.32.5"}}, podNode: "c", want: false},
		{name: "unknown cluster", nodes: []node{{"a", "v1.33.0"}}, cluster: "other", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(Config{})
			for _, n := range tt.nodes {
				s.UpsertNode(&Node{Cluster: "c1", Name: n.name, KubeletVersion: n.version})
			}
			for _, n := range tt.deleted {
				s.DeleteNode("c1", n)
			}
			c := tt.cluster
			if c == "" {
				c = "c1"
			}
			if got := s.NativeSidecars(c, tt.podNode); got != tt.want {
				t.Errorf("NativeSidecars(%s, %q) = %t, want %t", c, tt.podNode, got, tt.want)
			}
		})
	}
}
