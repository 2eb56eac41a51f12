package clusters

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const systemNS = "istio-system"

var webHost = model.ServiceHost("app", "web", "")

// clusterObjects are a cluster's system namespace (labeled with network)
// and a Service app/web with one ready mTLS endpoint per IP.
func clusterObjects(network string, ips ...string) []runtime.Object {
	ready := true
	port, portName := int32(8080), "http"
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS, Labels: map[string]string{model.LabelNetwork: network}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "app", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
	}
	for i, ip := range ips {
		name := fmt.Sprintf("web-%d", i)
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name},
		})
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Labels: map[string]string{model.LabelTLSMode: "istio"}},
			Status:     corev1.PodStatus{PodIP: ip},
		})
	}
	return append(objs, slice)
}

func remoteSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: name, Labels: map[string]string{LabelMultiCluster: "true"}},
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// fakeCluster is a remote cluster the test factory hands out for the
// kubeconfig "fake:NAME".
type fakeCluster struct {
	client *fake.Clientset
	down   atomic.Bool
	probes atomic.Int64 // probes the set made
}

// awaitProbes waits until the set has probed f n more times: the set had
// that many chances to act on what it saw (instead of a wall-clock sleep).
func (f *fakeCluster) awaitProbes(t *testing.T, n int64) {
	t.Helper()
	want := f.probes.Load() + n
	testkit.Eventually(t, testkit.WaitTimeout, fmt.Sprintf("%d more probes", n), func() string {
		if got := f.probes.Load(); got < want {
			return fmt.Sprintf("probes %d, want %d", got, want)
		}
		return ""
	})
}

func (f *fakeCluster) clients() Clients {
	return Clients{
		Kube:   f.client,
		Server: "fake",
		Probe: func(context.Context) error {
			f.probes.Add(1)
			if f.down.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
	}
}

type env struct {
	t        *testing.T
	local    *fakeCluster
	remotes  map[string]*fakeCluster
	store    *model.Store
	set      *Set
	registry *prometheus.Registry
	changes  atomic.Int64
}

type envOptions struct {
	policy  StalePolicy
	remotes map[string]*fakeCluster
	secrets []*corev1.Secret
	// swapTimeout is Config.SwapTimeout; wrap, if set, wraps the model
	// store the set writes into.
	swapTimeout time.Duration
	wrap        func(*model.Store) Store
}

func newFake(objs ...runtime.Object) *fakeCluster {
	return &fakeCluster{client: fake.NewClientset(objs...)}
}

func startEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	objs := clusterObjects("net1", "10.1.0.1")
	for _, s := range o.secrets {
		objs = append(objs, s)
	}
	e := &env{
		t:        t,
		local:    newFake(objs...),
		remotes:  o.remotes,
		store:    model.NewStore(model.Config{}),
		registry: prometheus.NewRegistry(),
	}
	factory := func(id model.ClusterID, kubeconfig []byte) (Clients, error) {
		if name, ok := strings.CutPrefix(string(kubeconfig), "fake:"); ok {
			if f := e.remotes[name]; f != nil {
				return f.clients(), nil
			}
			return Clients{}, fmt.Errorf("no fake cluster %q", name)
		}
		return KubeconfigClients(id, kubeconfig)
	}
	var store Store = e.store
	if o.wrap != nil {
		store = o.wrap(e.store)
	}
	set, err := New(Config{
		ClusterID:     "c1",
		Local:         e.local.clients(),
		Store:         store,
		SwapTimeout:   o.swapTimeout,
		Changed:       func() { e.changes.Add(1) },
		NewClients:    factory,
		StalePolicy:   o.policy,
		ProbeInterval: 20 * time.Millisecond,
		Registerer:    e.registry,
		Logger:        testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.set = set
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		if err := set.Run(ctx); err != nil {
			t.Error(err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer scancel()
	if missing, err := set.WaitForSync(sctx); err != nil || len(missing) > 0 {
		t.Fatalf("WaitForSync: missing %v, err %v", missing, err)
	}
	return e
}

// endpoints lists the web endpoints a proxy without network sees, as
// CLUSTER/ADDRESS (no gateways in these tests: every endpoint is direct).
func (e *env) endpoints() []string {
	v, ok := e.store.Snapshot().View(webHost, 80, "")
	if !ok {
		return nil
	}
	var out []string
	for i := range v.Endpoints {
		ep := &v.Endpoints[i]
		out = append(out, string(ep.Cluster)+"/"+ep.Address)
	}
	return out
}

// states lists the statuses as ID SOURCE STATE [error substring].
func (e *env) states() []string {
	var out []string
	sts := e.set.Statuses()
	for i := range sts {
		st := &sts[i]
		s := string(st.ID) + " " + st.Source + " " + string(st.State)
		if st.State == StateError {
			s += " error"
		}
		out = append(out, s)
	}
	return out
}

func TestSecretLifecycle(t *testing.T) {
	ctx := t.Context()
	e := startEnv(t, envOptions{
		remotes: map[string]*fakeCluster{
			"c2":  newFake(clusterObjects("net2", "10.2.0.1")...),
			"c3":  newFake(clusterObjects("net2", "10.3.0.1")...),
			"c3b": newFake(clusterObjects("net2", "10.3.0.2", "10.3.0.3")...),
		},
		secrets: []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
	})
	secrets := e.local.client.CoreV1().Secrets(systemNS)

	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("endpoints after the initial sync (-want +got)\n%s", d)
	}
	if d := cmp.Diff([]string{"c1 config live", "c2 secret istio-system/s1 live"}, e.states()); d != "" {
		t.Fatalf("states after the initial sync (-want +got)\n%s", d)
	}

	// A second secret adds a cluster at run time.
	if _, err := secrets.Create(ctx, remoteSecret("s2", map[string]string{"c3": "fake:c3"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "endpoints after adding s2 (-want +got)", func() string {
		return cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1", "c3/10.3.0.1"}, e.endpoints())
	})

	// Changing its kubeconfig rebuilds the cluster from the new one.
	if _, err := secrets.Update(ctx, remoteSecret("s2", map[string]string{"c3": "fake:c3b"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "endpoints after changing s2 (-want +got)", func() string {
		return cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1", "c3/10.3.0.2", "c3/10.3.0.3"}, e.endpoints())
	})

	// Bad entries next to a good one: an unparseable kubeconfig, an exec
	// credential, the config cluster's id. None disturbs the others.
	execKubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: x, cluster: {server: "https://1.2.3.4"}}]
users: [{name: x, user: {exec: {command: steal-credentials, apiVersion: client.authentication.k8s.io/v1}}}]
contexts: [{name: x, context: {cluster: x, user: x}}]
current-context: x
`
	bad := remoteSecret("s1", map[string]string{"c2": "fake:c2", "c4": "{{{ not yaml", "c5": execKubeconfig, "c1": "fake:c2"})
	if _, err := secrets.Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "states with bad entries (-want +got)", func() string {
		return cmp.Diff([]string{
			"c1 config live",
			"c1 secret istio-system/s1 error error",
			"c2 secret istio-system/s1 live",
			"c3 secret istio-system/s2 live",
			"c4 secret istio-system/s1 error error",
			"c5 secret istio-system/s1 error error",
		}, e.states())
	})
	wantErrs := map[model.ClusterID]string{"c1": "already taken by the config cluster", "c4": "it is not a kubeconfig", "c5": "exec plugin"}
	for _, st := range e.set.Statuses() {
		if want, ok := wantErrs[st.ID]; ok && st.State == StateError && !strings.Contains(st.Error, want) {
			t.Errorf("error of %s = %q, want it to contain %q", st.ID, st.Error, want)
		}
	}
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1", "c3/10.3.0.2", "c3/10.3.0.3"}, e.endpoints()); d != "" {
		t.Errorf("endpoints with bad entries (-want +got)\n%s", d)
	}
	if got := testkit.MetricValue(t, e.set.metrics.secretErrors); got != 3 {
		t.Errorf("causeway_remote_secret_errors_total = %v, want 3", got)
	}

	// Deleting a secret removes its clusters and their endpoints.
	if err := secrets.Delete(ctx, "s1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "after deleting s1 (-want +got)", func() string {
		return cmp.Diff([]string{"c1/10.1.0.1", "c3/10.3.0.2", "c3/10.3.0.3"}, e.endpoints()) +
			cmp.Diff([]string{"c1 config live", "c3 secret istio-system/s2 live"}, e.states())
	})
	// So does removing the label.
	s2 := remoteSecret("s2", map[string]string{"c3": "fake:c3b"})
	s2.Labels = nil
	if _, err := secrets.Update(ctx, s2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "after unlabeling s2 (-want +got)", func() string {
		return cmp.Diff([]string{"c1/10.1.0.1"}, e.endpoints()) + cmp.Diff([]string{"c1 config live"}, e.states())
	})
}

func TestCollisionIsRetriedWhenTheIDIsFreed(t *testing.T) {
	ctx := t.Context()
	e := startEnv(t, envOptions{
		remotes: map[string]*fakeCluster{
			"a": newFake(clusterObjects("net2", "10.2.0.1")...),
			"b": newFake(clusterObjects("net2", "10.2.0.9")...),
		},
		secrets: []*corev1.Secret{remoteSecret("first", map[string]string{"c2": "fake:a"})},
	})
	secrets := e.local.client.CoreV1().Secrets(systemNS)
	if _, err := secrets.Create(ctx, remoteSecret("second", map[string]string{"c2": "fake:b"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "collision (-want +got)", func() string {
		return cmp.Diff([]string{"c1 config live", "c2 secret istio-system/first live", "c2 secret istio-system/second error error"}, e.states())
	})
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("the colliding entry disturbed the owner (-want +got)\n%s", d)
	}
	if err := secrets.Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "after the owner left (-want +got)", func() string {
		return cmp.Diff([]string{"c1 config live", "c2 secret istio-system/second live"}, e.states()) +
			cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.9"}, e.endpoints())
	})
}

func TestRefusedChangeKeepsThePreviousKubeconfig(t *testing.T) {
	ctx := t.Context()
	e := startEnv(t, envOptions{
		remotes: map[string]*fakeCluster{"c2": newFake(clusterObjects("net2", "10.2.0.1")...)},
		secrets: []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
	})
	secrets := e.local.client.CoreV1().Secrets(systemNS)
	if _, err := secrets.Update(ctx, remoteSecret("s1", map[string]string{"c2": "garbage"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "refused change", func() string {
		for _, st := range e.set.Statuses() {
			if st.ID == "c2" {
				if st.State != StateLive || !strings.Contains(st.Error, "previous one is still used") {
					return fmt.Sprintf("c2: state %s, error %q", st.State, st.Error)
				}
				return ""
			}
		}
		return "c2 missing"
	})
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("endpoints after a refused change (-want +got)\n%s", d)
	}
	// Putting the old kubeconfig back clears the error.
	if _, err := secrets.Update(ctx, remoteSecret("s1", map[string]string{"c2": "fake:c2"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "change reverted", func() string {
		for _, st := range e.set.Statuses() {
			if st.ID == "c2" && st.Error != "" {
				return "error still set: " + st.Error
			}
		}
		return ""
	})
}

func statusOf(s *Set, id model.ClusterID) Status {
	sts := s.Statuses()
	for i := range sts {
		if sts[i].ID == id && sts[i].State != StateError {
			return sts[i]
		}
	}
	return Status{}
}

func TestStaleClusterIsKept(t *testing.T) {
	c2 := newFake(clusterObjects("net2", "10.2.0.1")...)
	e := startEnv(t, envOptions{
		remotes: map[string]*fakeCluster{"c2": c2},
		secrets: []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
	})
	c2.down.Store(true)
	testkit.Eventually(t, testkit.WaitTimeout, "stale", func() string {
		st := statusOf(e.set, "c2")
		if st.State != StateStale || st.Live || st.StaleSeconds <= 0 || !strings.Contains(st.Error, "connection refused") {
			return fmt.Sprintf("c2: %+v", st)
		}
		return ""
	})
	// Fail-static: its endpoints stay, well past any grace (ten more
	// probes that find it down).
	c2.awaitProbes(t, 10)
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("endpoints of a stale cluster with policy keep (-want +got)\n%s", d)
	}
	c2.down.Store(false)
	testkit.Eventually(t, testkit.WaitTimeout, "live again", func() string {
		st := statusOf(e.set, "c2")
		if st.State != StateLive || st.StaleSeconds != 0 || st.Error != "" {
			return fmt.Sprintf("c2: %+v", st)
		}
		return ""
	})
}

func TestStaleClusterIsDroppedAfterGrace(t *testing.T) {
	ctx := t.Context()
	c2 := newFake(clusterObjects("net2", "10.2.0.1")...)
	e := startEnv(t, envOptions{
		policy:  StalePolicy{DropAfter: 300 * time.Millisecond},
		remotes: map[string]*fakeCluster{"c2": c2},
		secrets: []*corev1.Secret{remoteSecret("s1", map[string]string{"c2": "fake:c2"})},
	})
	c2.down.Store(true)
	downAt := time.Now()
	testkit.Eventually(t, testkit.WaitTimeout, "stale before the grace", func() string {
		if st := statusOf(e.set, "c2"); st.State != StateStale {
			return "c2 state " + string(st.State)
		}
		return ""
	})
	if d := cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1"}, e.endpoints()); d != "" && time.Since(downAt) < 250*time.Millisecond {
		t.Fatalf("endpoints dropped before the grace (-want +got)\n%s", d)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "dropped after the grace (-want +got)", func() string {
		st := statusOf(e.set, "c2")
		return cmp.Diff(StateDropped, st.State) + cmp.Diff([]string{"c1/10.1.0.1"}, e.endpoints())
	})
	// The grace counts from the last answer, at most one probe interval
	// (20ms) before the test cut the cluster off.
	if since := time.Since(downAt); since < 280*time.Millisecond {
		t.Errorf("dropped %v after going down, before the 300ms grace", since)
	}

	// While dropped, the cluster changes (its watch still delivers here; a
	// real one catches up on return). On return everything is back.
	port, name := int32(8080), "http"
	ready := true
	extra := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "app", Name: "web-2", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.2.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := c2.client.DiscoveryV1().EndpointSlices("app").Create(ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c2.awaitProbes(t, 5)
	if d := cmp.Diff([]string{"c1/10.1.0.1"}, e.endpoints()); d != "" {
		t.Fatalf("a dropped cluster wrote into the model (-want +got)\n%s", d)
	}
	c2.down.Store(false)
	testkit.Eventually(t, testkit.WaitTimeout, "back after the return (-want +got)", func() string {
		return cmp.Diff(StateLive, statusOf(e.set, "c2").State) +
			cmp.Diff([]string{"c1/10.1.0.1", "c2/10.2.0.1", "c2/10.2.0.2"}, e.endpoints())
	})
}

func TestWaitForSyncReportsMissingClusters(t *testing.T) {
	c2 := newFake(clusterObjects("net2", "10.2.0.1")...)
	c2.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`pods is forbidden: User "reader" cannot list resource "pods"`)
	})
	local := newFake(append(clusterObjects("net1", "10.1.0.1"), remoteSecret("s1", map[string]string{"c2": "fake:c2"}))...)
	set, err := New(Config{
		ClusterID: "c1",
		Local:     local.clients(),
		Store:     model.NewStore(model.Config{}),
		NewClients: func(model.ClusterID, []byte) (Clients, error) {
			return c2.clients(), nil
		},
		ProbeInterval: 20 * time.Millisecond,
		Logger:        testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = set.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	sctx, scancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer scancel()
	missing, err := set.WaitForSync(sctx)
	if err != nil {
		t.Fatalf("WaitForSync error: %v", err)
	}
	if d := cmp.Diff([]model.ClusterID{"c2"}, missing); d != "" {
		t.Fatalf("missing (-want +got)\n%s", d)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "status of the unsynced cluster", func() string {
		st := statusOf(set, "c2")
		if st.State != StateSyncing || st.Synced || !strings.Contains(st.Error, "forbidden") {
			return fmt.Sprintf("c2: %+v", st)
		}
		return ""
	})
}

func TestNewChecksConfig(t *testing.T) {
	local := Clients{Kube: fake.NewClientset()}
	store := model.NewStore(model.Config{})
	// Each config lacks one thing; New must refuse it, naming that thing.
	for want, cfg := range map[string]Config{
		"ClusterID is empty": {Local: local, Store: store, Logger: testkit.DiscardLogger()},
		"Local.Kube is nil":  {ClusterID: "c1", Store: store, Logger: testkit.DiscardLogger()},
		"Store is nil":       {ClusterID: "c1", Local: local, Logger: testkit.DiscardLogger()},
		"Logger is nil":      {ClusterID: "c1", Local: local, Store: store},
		"negative":           {ClusterID: "c1", Local: local, Store: store, Logger: testkit.DiscardLogger(), ProbeInterval: -1},
	} {
		t.Run(want, func(t *testing.T) {
			_, err := New(cfg)
			testkit.WantErr(t, err, want)
		})
	}
	reg := prometheus.NewRegistry()
	cfg := Config{ClusterID: "c1", Local: local, Store: store, Logger: testkit.DiscardLogger(), Registerer: reg}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "own registry") {
		t.Fatalf("second New on one registry: error = %v, want one about the registry", err)
	}
}
