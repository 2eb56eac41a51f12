package ca

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// rootConfigMap is a root ConfigMap holding root, whose root key was last
// written by manager ("" for none).
func rootConfigMap(root, manager string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RootConfigMapName, Namespace: "app"},
		Data:       map[string]string{RootConfigMapKey: root},
	}
	if manager != "" {
		cm.ManagedFields = []metav1.ManagedFieldsEntry{
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{"f:other":{}}}}`)},
			{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsV1: metav1.NewFieldsV1(`{"f:data":{".":{},"f:root-cert.pem":{}}}`)},
		}
	}
	return cm
}

func TestDecideRoot(t *testing.T) {
	const ours, theirs = "ROOT-1", "ROOT-2"
	tests := []struct {
		name   string
		cm     *corev1.ConfigMap
		self   model.ClusterID // config cluster of the deciding control plane
		target model.ClusterID
		want   rootAction
	}{
		{name: "missing", cm: nil, self: "cluster1", target: "cluster2", want: rootCreate},
		{name: "current", cm: rootConfigMap(ours, "causeway-cluster1"), self: "cluster1", target: "cluster2", want: rootKeep},
		{name: "current, written by the cluster's own", cm: rootConfigMap(ours, "causeway-cluster2"), self: "cluster1", target: "cluster2", want: rootKeep},
		{name: "edited by a user", cm: rootConfigMap(theirs, "kubectl-edit"), self: "cluster1", target: "cluster2", want: rootUpdate},
		{name: "no managed fields", cm: rootConfigMap(theirs, ""), self: "cluster1", target: "cluster1", want: rootUpdate},
		{name: "the cluster's own control plane wins", cm: rootConfigMap(theirs, "causeway-cluster2"), self: "cluster1", target: "cluster2", want: rootForeign},
		{name: "in its own cluster a control plane always writes", cm: rootConfigMap(theirs, "causeway-cluster1"), self: "cluster2", target: "cluster2", want: rootUpdate},
		{name: "a third control plane does not own cluster2", cm: rootConfigMap(theirs, "causeway-cluster3"), self: "cluster1", target: "cluster2", want: rootUpdate},
		{name: "own stale root", cm: rootConfigMap(theirs, "causeway-cluster1"), self: "cluster1", target: "cluster1", want: rootUpdate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decideRoot(tt.cm, []byte(ours), FieldManager(tt.self), tt.target); got != tt.want {
				t.Errorf("decideRoot = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestPublishRootFake checks the publisher's wiring on a fake clientset:
// every namespace gets the root, a deleted or edited ConfigMap comes back,
// a new namespace gets one, a terminating one does not.
func TestPublishRootFake(t *testing.T) {
	m := newFakeMesh(t, nil)
	remote := m.cluster2
	ctx := t.Context()
	for _, ns := range []string{"default", "app"} {
		if _, err := remote.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now := metav1.Now()
	if _, err := remote.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "going", DeletionTimestamp: &now, Finalizers: []string{"kubernetes"}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An unrelated ConfigMap is left alone.
	if _, err := remote.CoreV1().ConfigMaps("app").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "app"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runPublisher(t, m.a, "cluster2", remote)

	root := string(m.root)
	hasRoot := func(ns string) func() error {
		return func() error {
			cm, err := remote.CoreV1().ConfigMaps(ns).Get(ctx, RootConfigMapName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data[RootConfigMapKey] != root {
				return fmt.Errorf("%s holds another root", ns)
			}
			if cm.Labels["istio.io/config"] != "true" {
				return fmt.Errorf("%s lacks label istio.io/config", ns)
			}
			return nil
		}
	}
	for _, ns := range []string{"default", "app"} {
		testkit.Eventually(t, 10*time.Second, "root in "+ns, testkit.Succeeds(hasRoot(ns)))
	}

	if err := remote.CoreV1().ConfigMaps("app").Delete(ctx, RootConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "deleted root back in app", testkit.Succeeds(hasRoot("app")))

	edited, err := remote.CoreV1().ConfigMaps("default").Get(ctx, RootConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	edited.Data[RootConfigMapKey] = "tampered"
	edited.Data["extra"] = "kept"
	if _, err := remote.CoreV1().ConfigMaps("default").Update(ctx, edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "edited root restored in default", testkit.Succeeds(hasRoot("default")))
	if cm, _ := remote.CoreV1().ConfigMaps("default").Get(ctx, RootConfigMapName, metav1.GetOptions{}); cm.Data["extra"] != "kept" {
		t.Errorf("the other keys of an edited ConfigMap were dropped: %v", cm.Data)
	}

	if _, err := remote.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "root in a new namespace", testkit.Succeeds(hasRoot("late")))

	if _, err := remote.CoreV1().ConfigMaps("going").Get(ctx, RootConfigMapName, metav1.GetOptions{}); err == nil {
		t.Error("a root ConfigMap was created in a terminating namespace")
	}
	if cm, err := remote.CoreV1().ConfigMaps("app").Get(ctx, "other", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
		t.Errorf("unrelated ConfigMap changed: %v, %v", cm, err)
	}
	// The publisher counts a create once the API call returns, which can be
	// just after the object is visible to the test.
	testkit.Eventually(t, 10*time.Second, "creates counted", testkit.Succeeds(func() error {
		if got := counter(t, m.reg, "causeway_ca_root_configmap_writes_total", map[string]string{"cluster": "cluster2", "op": "create"}); got < 4 {
			return fmt.Errorf("%v creates counted, want at least 4", got)
		}
		return nil
	}))
}
