package kube

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func peerAuthentication(ns, name string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode) *securityv1.PeerAuthentication {
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"}}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	return pa
}

// istioFakeClientset is istio.io/client-go's fake, which (generated
// before client-go's streaming lists) does not say it cannot stream them.
type istioFakeClientset struct{ *istiofake.Clientset }

func (istioFakeClientset) IsWatchListSemanticsUnSupported() bool { return true }

// istioFake is a fake Istio clientset whose discovery serves
// security.istio.io/v1 peerauthentications when served is true.
func istioFake(served bool, objs ...runtime.Object) istioFakeClientset {
	ic := istiofake.NewSimpleClientset(objs...)
	if served {
		ic.Resources = []*metav1.APIResourceList{{
			GroupVersion: "security.istio.io/v1",
			APIResources: []metav1.APIResource{{Name: "peerauthentications", Namespaced: true, Kind: "PeerAuthentication"}},
		}}
	}
	return istioFakeClientset{ic}
}

// startIstio runs a watcher over fake clientsets until the test ends and
// waits for its sync.
func startIstio(t *testing.T, ic istioclient.Interface) (*Watcher, *model.Store) {
	t.Helper()
	store := model.NewStore(model.Config{})
	w, err := New(Config{
		Cluster: testCluster, Client: fake.NewClientset(), Istio: ic, Store: store,
		PeerAuthRecheck: 10 * time.Millisecond, Logger: testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not sync")
	}
	return w, store
}

// policies renders the store's PeerAuthentications of testCluster.
func policies(store *model.Store) string {
	var out string
	for _, p := range store.Snapshot().PeerAuthentications(testCluster) {
		out += fmt.Sprintf("%s/%s=%s ", p.Namespace, p.Name, p.Mode)
	}
	return out
}

func waitFor(t *testing.T, what string, f func() string, want string) {
	t.Helper()
	testkit.Eventually(t, testkit.WaitTimeout, what, func() string {
		if got := f(); got != want {
			return fmt.Sprintf("got %q, want %q", got, want)
		}
		return ""
	})
}

// TestWatcherPeerAuthentications: the initial list is in the store when
// the watcher says it synced; creates, updates and deletes follow; Pause,
// RemoveCluster and Replay bring them back.
func TestWatcherPeerAuthentications(t *testing.T) {
	ic := istioFake(true, peerAuthentication("istio-system", "default", securityv1beta1.PeerAuthentication_MutualTLS_STRICT))
	w, store := startIstio(t, ic)
	if got, want := policies(store), "istio-system/default=STRICT "; got != want {
		t.Errorf("after sync: %q, want %q", got, want)
	}
	if st, _ := w.PeerAuthentication(); st != PeerAuthWatching {
		t.Errorf("state %s, want watching", st)
	}
	ctx := t.Context()
	pas := ic.SecurityV1().PeerAuthentications("app")
	if _, err := pas.Create(ctx, peerAuthentication("app", "ns", securityv1beta1.PeerAuthentication_MutualTLS_DISABLE), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "create", func() string { return policies(store) }, "app/ns=DISABLE istio-system/default=STRICT ")
	upd := peerAuthentication("app", "ns", securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE)
	upd.ResourceVersion = "2"
	if _, err := pas.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "update", func() string { return policies(store) }, "app/ns=PERMISSIVE istio-system/default=STRICT ")
	if err := pas.Delete(ctx, "ns", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delete", func() string { return policies(store) }, "istio-system/default=STRICT ")
	if c := w.Counts().PeerAuthentications; c != 1 {
		t.Errorf("Counts().PeerAuthentications = %d, want 1", c)
	}

	w.Pause()
	store.RemoveCluster(testCluster)
	if got := policies(store); got != "" {
		t.Fatalf("after RemoveCluster: %q", got)
	}
	w.Replay()
	if got, want := policies(store), "istio-system/default=STRICT "; got != want {
		t.Errorf("after Replay: %q, want %q", got, want)
	}
}

// TestWatcherPeerAuthenticationAbsent: a cluster that does not serve
// PeerAuthentications syncs, watches none and says why; one without an
// Istio client says it reads none.
func TestWatcherPeerAuthenticationAbsent(t *testing.T) {
	w, store := startIstio(t, istioFake(false, peerAuthentication("istio-system", "default", securityv1beta1.PeerAuthentication_MutualTLS_STRICT)))
	if st, why := w.PeerAuthentication(); st != PeerAuthAbsent || why == "" {
		t.Errorf("state %s (%q), want absent with a reason", st, why)
	}
	if got := policies(store); got != "" {
		t.Errorf("policies of a cluster without the CRD: %q", got)
	}
	w2, _ := startIstio(t, nil)
	if st, _ := w2.PeerAuthentication(); st != PeerAuthOff {
		t.Errorf("without an Istio client: state %s, want off", st)
	}
}

// TestWatcherPeerAuthenticationForbidden: an account that may not list
// PeerAuthentications does not keep the cluster from syncing; once the
// right is granted the watch starts on the next recheck.
func TestWatcherPeerAuthenticationForbidden(t *testing.T) {
	ic := istioFake(true, peerAuthentication("istio-system", "default", securityv1beta1.PeerAuthentication_MutualTLS_STRICT))
	var forbidden atomic.Bool
	forbidden.Store(true)
	ic.PrependReactor("list", "peerauthentications", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbidden.Load() {
			return true, nil, apierrors.NewForbidden(securityv1.Resource("peerauthentications"), "", fmt.Errorf("no"))
		}
		return false, nil, nil
	})
	w, store := startIstio(t, ic)
	if st, why := w.PeerAuthentication(); st != PeerAuthForbidden || why == "" {
		t.Errorf("state %s (%q), want forbidden with a reason", st, why)
	}
	forbidden.Store(false)
	waitFor(t, "granted", func() string { return policies(store) }, "istio-system/default=STRICT ")
	waitFor(t, "state", func() string { st, _ := w.PeerAuthentication(); return string(st) }, string(PeerAuthWatching))
}
