package kube

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// TestDiscoverySelectorSelects: Istio's semantics: no selectors select
// every namespace; a namespace is selected when any selector matches; an
// empty selector matches everything; within a selector every label and
// expression must hold.
func TestDiscoverySelectorSelects(t *testing.T) {
	prodEast := model.NamespaceSelector{MatchLabels: map[string]string{"env": "prod", "region": "us-east1"}}
	apps := model.NamespaceSelector{MatchExpressions: []model.SelectorRequirement{
		{Key: "app", Operator: "In", Values: []string{"cassandra", "spark"}},
		{Key: "legacy", Operator: "DoesNotExist"},
	}}
	tests := []struct {
		name   string
		sels   []model.NamespaceSelector
		labels map[string]string
		want   bool
	}{
		{name: "no selectors", labels: nil, want: true},
		{name: "all labels of a selector", sels: []model.NamespaceSelector{prodEast}, labels: map[string]string{"env": "prod", "region": "us-east1", "x": "y"}, want: true},
		{name: "one label of two", sels: []model.NamespaceSelector{prodEast}, labels: map[string]string{"env": "prod"}, want: false},
		{name: "the second selector", sels: []model.NamespaceSelector{prodEast, apps}, labels: map[string]string{"app": "spark"}, want: true},
		{name: "an expression fails", sels: []model.NamespaceSelector{prodEast, apps}, labels: map[string]string{"app": "spark", "legacy": ""}, want: false},
		{name: "empty selector", sels: []model.NamespaceSelector{{}}, labels: nil, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDiscoverySelector(tt.sels)
			if err != nil {
				t.Fatal(err)
			}
			if (d == nil) != (len(tt.sels) == 0) {
				t.Fatalf("NewDiscoverySelector(%v) = %v", tt.sels, d)
			}
			if got := d.Selects(tt.labels); got != tt.want {
				t.Errorf("Selects(%v) = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
}

func TestNewDiscoverySelectorRejectsBadLabels(t *testing.T) {
	for _, sel := range []model.NamespaceSelector{
		{MatchLabels: map[string]string{"not a key!": "x"}},
		{MatchExpressions: []model.SelectorRequirement{{Key: "a", Operator: "In", Values: []string{"bad value!"}}}},
		{MatchExpressions: []model.SelectorRequirement{{Key: "a", Operator: "Near"}}},
	} {
		if _, err := NewDiscoverySelector([]model.NamespaceSelector{{}, sel}); err == nil || !strings.Contains(err.Error(), "discoverySelectors[1]") {
			t.Errorf("NewDiscoverySelector(%+v): err = %v, want one naming discoverySelectors[1]", sel, err)
		}
	}
}

// TestWatcherStripKeepsSelectorLabels: with discovery selectors, the
// Namespace cache keeps the labels the selectors read (and the network
// label), so that relabeling a namespace is seen; nothing else.
func TestWatcherStripKeepsSelectorLabels(t *testing.T) {
	d, err := NewDiscoverySelector([]model.NamespaceSelector{
		{MatchLabels: map[string]string{"mesh": "on"}},
		{MatchExpressions: []model.SelectorRequirement{{Key: "team", Operator: "Exists"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &Watcher{cfg: Config{Discovery: d}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{
		"mesh": "on", "team": "x", model.LabelNetwork: "n1", "kubernetes.io/metadata.name": "a", "other": "y",
	}}}
	out, err := w.strip(ns)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mesh": "on", "team": "x", model.LabelNetwork: "n1"}
	if d := cmp.Diff(want, out.(*corev1.Namespace).Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
}
