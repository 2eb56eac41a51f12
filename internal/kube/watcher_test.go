package kube

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testCluster model.ClusterID = "c1"

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func node(name, zone, ip string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{model.LabelRegion: "r1", model.LabelZone: zone}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Images:     []corev1.ContainerImage{{Names: []string{"big/image:1"}, SizeBytes: 1 << 30}},
		},
	}
}

func pod(ns, name, nodeName, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, ResourceVersion: "1"},
		Spec: corev1.PodSpec{
			NodeName:           nodeName,
			ServiceAccountName: "sa-" + name,
			Containers:         []corev1.Container{{Name: "app", Image: "app:1"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func service(ns, name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: "10.96.0.10",
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func slice(ns, name, svc string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	port, portName, proto := int32(8080), "http", corev1.ProtocolTCP
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
		Endpoints:   eps,
	}
}

func endpoint(ip, podName, nodeName string) discoveryv1.Endpoint {
	ready := true
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		NodeName:   &nodeName,
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "app", Name: podName},
	}
}

// harness runs a watcher over a fake clientset into a real model store.
type harness struct {
	t       *testing.T
	client  *fake.Clientset
	store   *model.Store
	w       *Watcher
	queue   *doneQueue
	changed atomic.Int64
}

// doneQueue is the watcher's work queue, counting the keys the worker is
// done with (written into the store or, paused, not).
type doneQueue struct {
	workqueue.TypedInterface[key]
	mu   sync.Mutex
	done map[key]int
}

func (q *doneQueue) Done(k key) {
	q.mu.Lock()
	q.done[k]++
	q.mu.Unlock()
	q.TypedInterface.Done(k)
}

// processed says how many times the worker was done with k.
func (q *doneQueue) processed(k key) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.done[k]
}

func start(t *testing.T, paused bool, objs ...runtime.Object) *harness {
	t.Helper()
	return startWith(t, Config{Paused: paused}, objs...)
}

// startWith is start with more of the watcher's Config set (Cluster,
// Client, Store, Changed and Logger are the harness's).
func startWith(t *testing.T, cfg Config, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(objs...), store: model.NewStore(model.Config{})}
	cfg.Cluster, cfg.Client, cfg.Store, cfg.Logger = testCluster, h.client, h.store, testkit.DiscardLogger()
	cfg.Changed = func() { h.changed.Add(1) }
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	h.queue = &doneQueue{TypedInterface: w.queue, done: map[key]int{}}
	w.queue = h.queue
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher did not sync")
	}
	return h
}

// view returns the endpoints (address/network/locality) of app/web:80 as a
// proxy of network n sees them.
func (h *harness) view(n model.NetworkID) []string {
	v, ok := h.store.Snapshot().View(model.ServiceHost("app", "web", ""), 80, n)
	if !ok {
		return nil
	}
	var out []string
	for i := range v.Endpoints {
		e := &v.Endpoints[i]
		out = append(out, e.Address+" "+string(e.Network)+" "+e.Locality)
	}
	return out
}

// eventually polls f until it returns an empty diff.
func (h *harness) eventually(what string, f func() string) {
	h.t.Helper()
	testkit.Eventually(h.t, 10*time.Second, what+": (-want +got)", f)
}

func baseObjects() []runtime.Object {
	return []runtime.Object{
		namespace("istio-system", map[string]string{model.LabelNetwork: "net1"}),
		namespace("app", nil),
		node("n1", "z1", "192.168.0.1"),
		node("n2", "z2", "192.168.0.2"),
		pod("app", "web-1", "n1", "10.0.0.1", map[string]string{model.LabelTLSMode: "istio"}),
		pod("app", "web-2", "n2", "10.0.0.2", map[string]string{model.LabelTLSMode: "istio", model.LabelNetwork: "net2", "app": "web"}),
		service("app", "web", nil),
		slice("app", "web-abc", "web", endpoint("10.0.0.1", "web-1", "n1"), endpoint("10.0.0.2", "web-2", "n2")),
	}
}

func TestWatcherFeedsStore(t *testing.T) {
	h := start(t, false, baseObjects()...)
	ctx := t.Context()

	want := []string{"10.0.0.1 net1 r1/z1/", "10.0.0.2 net2 r1/z2/"}
	if d := cmp.Diff(want, h.view("")); d != "" {
		t.Fatalf("view after the initial sync (-want +got)\n%s", d)
	}
	if h.changed.Load() == 0 {
		t.Error("Changed was never called")
	}
	if d := cmp.Diff(Counts{Namespaces: 2, Nodes: 2, Services: 1, EndpointSlices: 1, Pods: 2}, h.w.Counts()); d != "" {
		t.Errorf("Counts (-want +got)\n%s", d)
	}
	if got := h.w.Network(); got != "net1" {
		t.Errorf("Network() = %q, want net1", got)
	}

	// The pod's network label goes: its endpoint falls back to the
	// namespace's network.
	p, err := h.client.CoreV1().Pods("app").Get(ctx, "web-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(p.Labels, model.LabelNetwork)
	p.ResourceVersion = "2"
	if _, err := h.client.CoreV1().Pods("app").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("view after the pod label change", func() string {
		return cmp.Diff([]string{"10.0.0.1 net1 r1/z1/", "10.0.0.2 net1 r1/z2/"}, h.view(""))
	})

	// The system namespace's label changes: every endpoint moves.
	if _, err := h.client.CoreV1().Namespaces().Update(ctx, namespace("istio-system", map[string]string{model.LabelNetwork: "net9"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("view after the namespace label change", func() string {
		return cmp.Diff([]string{"10.0.0.1 net9 r1/z1/", "10.0.0.2 net9 r1/z2/"}, h.view(""))
	})

	// The slice goes: no endpoint left.
	if err := h.client.DiscoveryV1().EndpointSlices("app").Delete(ctx, "web-abc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("view after the slice deletion", func() string { return cmp.Diff([]string(nil), h.view("")) })

	// The service goes: the host is unknown.
	if err := h.client.CoreV1().Services("app").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("service after deletion", func() string {
		if s := h.store.Snapshot().Service(model.ServiceHost("app", "web", "")); s != nil {
			return "service still known"
		}
		return ""
	})
}

func TestWatcherRejectsInvalidObjects(t *testing.T) {
	bad := service("app", "gw", map[string]string{model.LabelNetwork: "net1"})
	bad.Spec.ClusterIP = "not-an-ip"
	h := start(t, false, append(baseObjects(), bad)...)
	ctx := t.Context()

	errs, total := h.w.Rejected(0)
	if total != 1 || len(errs) != 1 || !strings.Contains(errs[0], "spec.clusterIP") {
		t.Fatalf("Rejected() = %q, %d; want one error naming spec.clusterIP", errs, total)
	}
	if s := h.store.Snapshot().Service(model.ServiceHost("app", "gw", "")); s != nil {
		t.Fatalf("rejected service is in the model: %+v", s)
	}

	// Fixed: it enters the model and leaves the rejected list.
	bad.Spec.ClusterIP = "10.96.0.99"
	bad.ResourceVersion = "2"
	if _, err := h.client.CoreV1().Services("app").Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("fixed service", func() string {
		if h.store.Snapshot().Service(model.ServiceHost("app", "gw", "")) == nil {
			return "service not in the model"
		}
		if _, n := h.w.Rejected(0); n != 0 {
			return "still rejected"
		}
		return ""
	})
}

// A bad gatewayPort label dropped the whole Service; Istio ignores the
// label. The Service stays, nothing is rejected, and the networks report
// (/debug/networks) names the ignored label.
func TestWatcherKeepsServiceWithBadGatewayLabel(t *testing.T) {
	gw := service("app", "gw", map[string]string{model.LabelNetwork: "net1", model.LabelGatewayPort: "not-a-port"})
	h := start(t, false, append(baseObjects(), gw)...)
	if errs, total := h.w.Rejected(0); total != 0 {
		t.Fatalf("Rejected() = %q: a bad gateway label must not reject the Service", errs)
	}
	snap := h.store.Snapshot()
	if s := snap.Service(model.ServiceHost("app", "gw", "")); s == nil {
		t.Fatal("the Service with a bad gateway label is not in the model")
	}
	warned := false
	for _, w := range snap.Networks().Warnings {
		warned = warned || (strings.Contains(w, "app/gw") && strings.Contains(w, model.LabelGatewayPort) && strings.Contains(w, "ignored"))
	}
	if !warned {
		t.Errorf("no warning names the ignored label: %q", snap.Networks().Warnings)
	}
	if n := snap.Stats().IgnoredGatewayAnnotations; n != 1 {
		t.Errorf("Stats().IgnoredGatewayAnnotations = %d, want 1", n)
	}
}

func TestWatcherPauseAndReplay(t *testing.T) {
	h := start(t, false, baseObjects()...)
	ctx := t.Context()

	h.w.Pause()
	h.store.RemoveCluster(testCluster)
	if got := h.view(""); got != nil {
		t.Fatalf("view after RemoveCluster = %q, want none", got)
	}
	// The watcher calls Changed after each write: none while paused. (The
	// view alone cannot tell: a lone slice written while paused makes no
	// view without its Service.)
	changedBefore := h.changed.Load()
	// Events while paused fill the caches but not the store.
	if _, err := h.client.DiscoveryV1().EndpointSlices("app").Create(ctx, slice("app", "web-def", "web", endpoint("10.0.0.3", "", "n1")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("cache after create", func() string { return cmp.Diff(2, h.w.Counts().EndpointSlices) })
	// Once the worker is done with the new slice, a watcher that wrote
	// while paused has written it.
	webDef := key{kind: kindEndpointSlice, namespace: "app", name: "web-def"}
	h.eventually("worker done with app/web-def", func() string { return cmp.Diff(true, h.queue.processed(webDef) > 0) })
	if got := h.view(""); got != nil {
		t.Fatalf("paused watcher wrote into the store: %q", got)
	}
	if n := h.changed.Load() - changedBefore; n != 0 {
		t.Fatalf("paused watcher wrote into the store: Changed called %d times", n)
	}
	if !h.w.Paused() {
		t.Fatal("Paused() = false after Pause")
	}

	h.w.Replay()
	want := []string{"10.0.0.1 net1 r1/z1/", "10.0.0.2 net2 r1/z2/", "10.0.0.3 net1 r1/z1/"}
	if d := cmp.Diff(want, h.view("")); d != "" {
		t.Fatalf("view right after Replay (-want +got)\n%s", d)
	}
	// Writes resume after Replay.
	if err := h.client.DiscoveryV1().EndpointSlices("app").Delete(ctx, "web-def", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("view after delete", func() string { return cmp.Diff(want[:2], h.view("")) })
}

func TestWatcherStartedPaused(t *testing.T) {
	h := start(t, true, baseObjects()...)
	if got := h.view(""); got != nil {
		t.Fatalf("a watcher started paused wrote into the store: %q", got)
	}
	h.w.Replay()
	if d := cmp.Diff([]string{"10.0.0.1 net1 r1/z1/", "10.0.0.2 net2 r1/z2/"}, h.view("")); d != "" {
		t.Fatalf("view after Replay (-want +got)\n%s", d)
	}
}

func TestNewChecksConfig(t *testing.T) {
	client := fake.NewClientset()
	store := model.NewStore(model.Config{})
	// Each config lacks one thing; New must refuse it, naming that thing.
	for want, cfg := range map[string]Config{
		"Cluster is empty": {Client: client, Store: store, Logger: testkit.DiscardLogger()},
		"Client is nil":    {Cluster: "c", Store: store, Logger: testkit.DiscardLogger()},
		"Store is nil":     {Cluster: "c", Client: client, Logger: testkit.DiscardLogger()},
		"Logger is nil":    {Cluster: "c", Client: client, Store: store},
	} {
		t.Run(want, func(t *testing.T) {
			_, err := New(cfg)
			testkit.WantErr(t, err, want)
		})
	}
}
