package kube

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestWatcherDiscoverySelectorFollowsLabels: the Service, EndpointSlice and
// Pod caches hold only the selected namespaces' objects; labeling a
// namespace fills them and brings its endpoints into the view, unlabeling
// empties them and takes the endpoints out; while the watcher is paused
// the caches still follow the labels, and Replay writes what they hold.
func TestWatcherDiscoverySelectorFollowsLabels(t *testing.T) {
	d, err := NewDiscoverySelector([]model.NamespaceSelector{{MatchLabels: map[string]string{"mesh": "on"}}})
	if err != nil {
		t.Fatal(err)
	}
	objs := baseObjects() // namespace app, unlabeled: not selected
	objs = append(objs, namespace("other", map[string]string{"mesh": "off"}),
		service("other", "db", nil), pod("other", "db-1", "n1", "10.0.1.1", nil))
	h := startWith(t, Config{Discovery: d}, objs...)
	ctx := t.Context()
	cached := func() string {
		c := h.w.Counts()
		return fmt.Sprintf("namespaces %d, services %d, endpointslices %d, pods %d", c.Namespaces, c.Services, c.EndpointSlices, c.Pods)
	}
	if d := cmp.Diff("namespaces 3, services 0, endpointslices 0, pods 0", cached()); d != "" {
		t.Fatalf("caches at start (-want +got)\n%s", d)
	}
	if got := h.view(""); got != nil {
		t.Fatalf("view of an unselected namespace = %q, want none", got)
	}
	relabel := func(ns, value string) {
		t.Helper()
		n, err := h.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Labels = map[string]string{"mesh": value}
		n.ResourceVersion = fmt.Sprint(time.Now().UnixNano())
		if _, err := h.client.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"10.0.0.1 net1 r1/z1/", "10.0.0.2 net2 r1/z2/"}
	relabel("app", "on")
	h.eventually("view after selecting app", func() string { return cmp.Diff(want, h.view("")) })
	if d := cmp.Diff("namespaces 3, services 1, endpointslices 1, pods 2", cached()); d != "" {
		t.Errorf("caches after selecting app (-want +got)\n%s", d)
	}
	if d := cmp.Diff([]string{"app"}, h.w.WatchedNamespaces()); d != "" {
		t.Errorf("WatchedNamespaces (-want +got)\n%s", d)
	}

	relabel("app", "off")
	h.eventually("view after unselecting app", func() string { return cmp.Diff([]string(nil), h.view("")) })
	h.eventually("caches after unselecting app", func() string {
		return cmp.Diff("namespaces 3, services 0, endpointslices 0, pods 0", cached())
	})

	// Paused: the caches follow the labels; the store waits for Replay.
	h.w.Pause()
	h.store.RemoveCluster(testCluster)
	relabel("app", "on")
	h.eventually("caches of a paused watcher", func() string {
		return cmp.Diff("namespaces 3, services 1, endpointslices 1, pods 2", cached())
	})
	if got := h.view(""); got != nil {
		t.Fatalf("paused watcher wrote into the store: %q", got)
	}
	h.w.Replay()
	if d := cmp.Diff(want, h.view("")); d != "" {
		t.Fatalf("view right after Replay (-want +got)\n%s", d)
	}
}
