package clusters

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// watchedStore is a model store that, after every write while armed,
// checks that cluster c2's endpoint 10.2.0.1 is in the view a proxy
// without network gets, and records every write after which it was not.
type watchedStore struct {
	*model.Store
	armed atomic.Bool
	mu    sync.Mutex
	gaps  []string
}

func (w *watchedStore) check(op string) {
	if !w.armed.Load() {
		return
	}
	v, ok := w.Snapshot().View(webHost, 80, "")
	if ok && slices.ContainsFunc(v.Endpoints, func(e model.ViewEndpoint) bool { return e.Cluster == "c2" && e.Address == "10.2.0.1" }) {
		return
	}
	w.mu.Lock()
	w.gaps = append(w.gaps, op)
	w.mu.Unlock()
}

func (w *watchedStore) UpsertService(v *model.Service) {
	w.Store.UpsertService(v)
	w.check("UpsertService")
}
func (w *watchedStore) DeleteService(k model.ObjectKey) {
	w.Store.DeleteService(k)
	w.check("DeleteService " + k.String())
}

func (w *watchedStore) UpsertEndpointSlice(v *model.EndpointSlice) {
	w.Store.UpsertEndpointSlice(v)
	w.check("UpsertEndpointSlice")
}

func (w *watchedStore) DeleteEndpointSlice(k model.ObjectKey) {
	w.Store.DeleteEndpointSlice(k)
	w.check("DeleteEndpointSlice " + k.String())
}
func (w *watchedStore) UpsertPod(v *model.Pod) { w.Store.UpsertPod(v); w.check("UpsertPod") }
func (w *watchedStore) DeletePod(k model.ObjectKey) {
	w.Store.DeletePod(k)
	w.check("DeletePod " + k.String())
}
func (w *watchedStore) UpsertNode(v *model.Node) { w.Store.UpsertNode(v); w.check("UpsertNode") }
func (w *watchedStore) DeleteNode(c model.ClusterID, n string) {
	w.Store.DeleteNode(c, n)
	w.check("DeleteNode")
}

func (w *watchedStore) UpsertNamespace(v *model.Namespace) {
	w.Store.UpsertNamespace(v)
	w.check("UpsertNamespace")
}

func (w *watchedStore) DeleteNamespace(c model.ClusterID, n string) {
	w.Store.DeleteNamespace(c, n)
	w.check("DeleteNamespace")
}

func (w *watchedStore) RemoveCluster(c model.ClusterID) {
	w.Store.RemoveCluster(c)
	w.check("RemoveCluster " + string(c))
}

func (w *watchedStore) RetainCluster(c model.ClusterID, keep func(model.ObjectKind, model.NamespacedName) bool) {
	w.Store.RetainCluster(c, keep)
	w.check("RetainCluster " + string(c))
}

// TestRotationKeepsEndpoints: moving a cluster to a changed kubeconfig
// writes the new watch's objects over the old one's; after no write does
// the cluster's endpoint leave the model, and what only the old watch held
// (10.2.0.9) is gone after the swap.
func TestRotationKeepsEndpoints(t *testing.T) {
	ws := &watchedStore{}
	e := startEnv(t, envOptions{
		remotes: map[string]*fakeCluster{
			"c2":  newFake(clusterObjects("net2", "10.2.0.1", "10.2.0.9")...),
			"c2b": newFake(clusterObjects("net2", "10.2.0.1")...),
			"c2c": newFake(clusterObjects("net2", "10.2.0.1", "10.2.0.2")...),
		},
		secrets: []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
		wrap:    func(s *model.Store) Store { ws.Store = s; return ws },
	})
	secrets := e.local.client.CoreV1().Secrets(systemNS)
	ws.armed.Store(true)
	for _, step := range []struct {
		to   string
		want []string
	}{
		{"fake:c2b", []string{"c1/10.1.0.1", "c2/10.2.0.1"}},
		{"fake:c2c", []string{"c1/10.1.0.1", "c2/10.2.0.1", "c2/10.2.0.2"}},
		{"fake:c2", []string{"c1/10.1.0.1", "c2/10.2.0.1", "c2/10.2.0.9"}},
	} {
		if _, err := secrets.Update(t.Context(), remoteSecret("s1", map[string]string{"c2": step.to}), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, testkit.WaitTimeout, "endpoints after the move to "+step.to+" (-want +got)", func() string {
			return cmp.Diff(step.want, e.endpoints())
		})
	}
	ws.armed.Store(false)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.gaps) > 0 {
		t.Errorf("cluster c2's endpoint left the model during a rotation, after: %s", strings.Join(ws.gaps, ", "))
	}
	if got := testkit.MetricValue(t, e.set.metrics.swaps); got != 3 {
		t.Errorf("swaps: got %v, want 3", got)
	}
}

// TestRotationToAnUnreachableServerIsRefused: a changed kubeconfig whose
// server never answers is refused after the swap timeout; the previous
// watch stays, the credentials show as failing, and putting the previous
// kubeconfig back clears it.
func TestRotationToAnUnreachableServerIsRefused(t *testing.T) {
	e := startEnv(t, envOptions{
		remotes:     map[string]*fakeCluster{"c2": newFake(clusterObjects("net2", "10.2.0.1")...)},
		secrets:     []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
		swapTimeout: 300 * time.Millisecond,
	})
	secrets := e.local.client.CoreV1().Secrets(systemNS)
	// Port 1 of loopback: nothing listens, every connection is refused.
	unreachable := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if _, err := secrets.Update(t.Context(), remoteSecret("s1", map[string]string{"c2": unreachable}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "refused change", func() string {
		st := statusOf(e.set, "c2")
		if st.State != StateLive || st.Credentials != CredentialsFailing || !strings.Contains(st.Error, "did not sync within") || st.Pending != "" {
			return fmt.Sprintf("c2: state %s, credentials %q, error %q, pending %q", st.State, st.Credentials, st.Error, st.Pending)
		}
		return ""
	})
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("endpoints after a refused change (-want +got)\n%s", d)
	}
	if got := testkit.MetricValue(t, e.set.metrics.secretErrors); got != 1 {
		t.Errorf("secret errors: got %v, want 1", got)
	}
	if _, err := secrets.Update(t.Context(), remoteSecret("s1", map[string]string{"c2": "fake:c2"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "change reverted", func() string {
		if st := statusOf(e.set, "c2"); st.Error != "" || st.Credentials != "" {
			return fmt.Sprintf("c2: credentials %q, error %q", st.Credentials, st.Error)
		}
		return ""
	})
}
