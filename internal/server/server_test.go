package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	k8stesting "k8s.io/client-go/testing"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clusterObjects: a system namespace labeled network, app/web with one
// mTLS endpoint, and (with gw set) a LoadBalancer east-west gateway.
func clusterObjects(network, ip, gw string) []runtime.Object {
	ready := true
	port, portName := int32(8080), "http"
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{model.LabelNetwork: network}}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10",
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-0", Labels: map[string]string{model.LabelTLSMode: "istio"}},
			Status:     corev1.PodStatus{PodIP: ip},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "app", Name: "web-x", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-0"}}},
		},
	}
	if gw != "" {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "eastwest", Labels: map[string]string{model.LabelNetwork: network}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.11",
				Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: gw}}}},
		})
	}
	return objs
}

func remoteSecret(name, id string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: name, Labels: map[string]string{clusters.LabelMultiCluster: "true"}},
		Data:       map[string][]byte{id: []byte("fake:" + id)},
	}
}

type testServer struct {
	srv   *Server
	local *fake.Clientset
	base  string
	rec   *recorder
}

// startServer runs a server over fake clusters: local c1 plus remotes (by
// id), named in remote secrets.
func startServer(t *testing.T, cfg Config, local []runtime.Object, remotes map[string]*fake.Clientset) *testServer {
	t.Helper()
	ts := &testServer{local: fake.NewClientset(local...), rec: &recorder{start: time.Now()}}
	cfg.ClusterID = "c1"
	cfg.Local = clusters.Clients{Kube: ts.local}
	cfg.NewClients = func(id model.ClusterID, kubeconfig []byte) (clusters.Clients, error) {
		if c := remotes[strings.TrimPrefix(string(kubeconfig), "fake:")]; c != nil {
			return clusters.Clients{Kube: c}, nil
		}
		return clusters.Clients{}, errors.New("unknown fake cluster")
	}
	cfg.DebugAddr = "127.0.0.1:0"
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.Sinks = []Sink{ts.rec}
	cfg.Logger = testkit.DiscardLogger()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testkit.Eventually(t, testkit.WaitTimeout, "debug listener", func() string {
		if srv.DebugAddr() == nil {
			return "not listening"
		}
		return ""
	})
	ts.base = "http://" + srv.DebugAddr().String()
	return ts
}

func (ts *testServer) waitReady(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, testkit.WaitTimeout, "ready", func() string {
		var r struct{ Ready bool }
		if code := ts.get(t, "/ready", &r); code != 200 || !r.Ready {
			return fmt.Sprintf("/ready %d %+v", code, r)
		}
		return ""
	})
}

func (ts *testServer) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(ts.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// view returns /debug/endpoints of web:80 for network n as
// ADDRESS:PORT/WEIGHT[ gw] entries.
func (ts *testServer) view(t *testing.T, n string) []string {
	t.Helper()
	var v model.View
	if code := ts.get(t, "/debug/endpoints?host=web.app.svc.cluster.local&port=80&network="+n, &v); code != 200 {
		return []string{fmt.Sprintf("HTTP %d", code)}
	}
	var out []string
	for i := range v.Endpoints {
		e := &v.Endpoints[i]
		s := fmt.Sprintf("%s:%d/%d", e.Address, e.Port, e.Weight)
		if e.Gateway {
			s += " gw"
		}
		out = append(out, s)
	}
	return out
}

func TestServeTwoClusters(t *testing.T) {
	local := append(clusterObjects("net1", "10.1.0.1", "192.0.2.1"), remoteSecret("s2", "c2"))
	ts := startServer(t, Config{}, local, map[string]*fake.Clientset{
		"c2": fake.NewClientset(clusterObjects("net2", "10.2.0.1", "192.0.2.2")...),
	})
	ts.waitReady(t)
	testkit.Eventually(t, testkit.WaitTimeout, "first publish", func() string {
		calls := ts.rec.take()
		if len(calls) == 0 || !calls[0].full {
			return fmt.Sprintf("calls %+v", calls)
		}
		return ""
	})

	// Split horizon: each network sees its own endpoint and the other's
	// gateway (weights scaled by the LCM of gateway counts, 1 here).
	if d := cmp.Diff([]string{"10.1.0.1:8080/1", "192.0.2.2:15443/1 gw"}, ts.view(t, "net1")); d != "" {
		t.Errorf("net1 view (-want +got)\n%s", d)
	}
	if d := cmp.Diff([]string{"10.2.0.1:8080/1", "192.0.2.1:15443/1 gw"}, ts.view(t, "net2")); d != "" {
		t.Errorf("net2 view (-want +got)\n%s", d)
	}
	var cl struct{ Clusters []clusters.Status }
	ts.get(t, "/debug/clusters", &cl)
	var got []string
	for _, c := range cl.Clusters {
		got = append(got, fmt.Sprintf("%s %s %s %v", c.ID, c.State, c.Network, c.Endpoints))
	}
	if d := cmp.Diff([]string{"c1 live net1 map[net1:1]", "c2 live net2 map[net2:1]"}, got); d != "" {
		t.Errorf("/debug/clusters (-want +got)\n%s", d)
	}

	// Deleting the secret removes c2 from every view within a second.
	start := time.Now()
	if err := ts.local.CoreV1().Secrets("istio-system").Delete(t.Context(), "s2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "net1 view after deleting the secret (-want +got)", func() string {
		return cmp.Diff([]string{"10.1.0.1:8080/1"}, ts.view(t, "net1"))
	})
	if took := time.Since(start); took > time.Second {
		t.Errorf("c2 left the views %v after its secret was deleted, want < 1s", took)
	}
	// The gateways changed: the sink is told every view may differ.
	testkit.Eventually(t, testkit.WaitTimeout, "sink told of the removal", func() string {
		for _, c := range ts.rec.take() {
			if c.full {
				return ""
			}
		}
		return "no full change published"
	})
}

func TestSyncTimeout(t *testing.T) {
	c2 := fake.NewClientset(clusterObjects("net2", "10.2.0.1", "")...)
	c2.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("endpointslices.discovery.k8s.io is forbidden")
	})
	local := append(clusterObjects("net1", "10.1.0.1", ""), remoteSecret("s2", "c2"))
	ts := startServer(t, Config{ClusterSyncTimeout: 700 * time.Millisecond}, local, map[string]*fake.Clientset{"c2": c2})

	var r struct {
		Ready  bool
		Reason string
	}
	if code := ts.get(t, "/ready", &r); code != 503 || r.Ready {
		t.Fatalf("/ready before the timeout: %d %+v", code, r)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "ready after the timeout", func() string {
		if code := ts.get(t, "/ready", &r); code != 200 || !strings.Contains(r.Reason, "clusters not synced: c2") {
			return fmt.Sprintf("/ready %d %+v", code, r)
		}
		return ""
	})
	// What it has is served.
	if d := cmp.Diff([]string{"10.1.0.1:8080/1"}, ts.view(t, "net1")); d != "" {
		t.Errorf("view (-want +got)\n%s", d)
	}
}

func networksOf(t *testing.T, ts *testServer) (memberships []string, warnings []string) {
	t.Helper()
	var rep model.NetworksReport
	if code := ts.get(t, "/debug/networks", &rep); code != 200 {
		return []string{fmt.Sprintf("/debug/networks: HTTP %d", code)}, nil
	}
	for _, n := range rep.Networks {
		memberships = append(memberships, string(n.Name)+": "+strings.Join(n.Membership, ", "))
	}
	return memberships, rep.Warnings
}

func hasWarning(ws []string, sub string) bool {
	for _, w := range ws {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func TestMeshNetworksConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"},
		Data:       map[string]string{MeshNetworksKey: "networks: {netx: {endpoints: [{fromRegistry: c1}]}}"},
	}
	local := append(clusterObjects("net1", "10.1.0.1", ""), cm)
	ts := startServer(t, Config{MeshNetworksConfigMap: "istio"}, local, nil)
	ts.waitReady(t)
	cms := ts.local.CoreV1().ConfigMaps("istio-system")
	ctx := t.Context()

	testkit.Eventually(t, testkit.WaitTimeout, "initial meshNetworks (-want +got)", func() string {
		m, _ := networksOf(t, ts)
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "netx: fromRegistry: c1"}, m)
	})

	cm.Data[MeshNetworksKey] = "networks: {nety: {endpoints: [{fromCidr: 10.1.0.0/16}]}}"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "reloaded meshNetworks (-want +got)", func() string {
		m, _ := networksOf(t, ts)
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "nety: fromCidr: 10.1.0.0/16"}, m)
	})

	cm.Data[MeshNetworksKey] = "networks: {nety: {endpoints: [{fromCidr: not-a-cidr}]}}"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "refused meshNetworks (-want +got)", func() string {
		m, w := networksOf(t, ts)
		if !hasWarning(w, "ConfigMap istio-system/istio refused") {
			return fmt.Sprintf("no warning in %q", w)
		}
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "nety: fromCidr: 10.1.0.0/16"}, m)
	})

	if err := cms.Delete(ctx, "istio", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "cleared meshNetworks (-want +got)", func() string {
		m, w := networksOf(t, ts)
		if len(w) != 0 {
			return fmt.Sprintf("warnings %q", w)
		}
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system"}, m)
	})
}

func TestMeshNetworksFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meshnetworks.yaml")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("networks: {netx: {endpoints: [{fromRegistry: c1}]}}", base)
	ts := startServer(t, Config{MeshNetworksFile: path, MeshNetworksPoll: 20 * time.Millisecond}, clusterObjects("net1", "10.1.0.1", ""), nil)
	ts.waitReady(t)
	testkit.Eventually(t, testkit.WaitTimeout, "initial meshNetworks (-want +got)", func() string {
		m, _ := networksOf(t, ts)
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "netx: fromRegistry: c1"}, m)
	})

	write("networks: {nety: {endpoints: [{fromRegistry: c1}]}}", base.Add(time.Minute))
	testkit.Eventually(t, testkit.WaitTimeout, "reloaded meshNetworks (-want +got)", func() string {
		m, _ := networksOf(t, ts)
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "nety: fromRegistry: c1"}, m)
	})

	write("networks: [", base.Add(2*time.Minute))
	testkit.Eventually(t, testkit.WaitTimeout, "refused meshNetworks (-want +got)", func() string {
		m, w := networksOf(t, ts)
		if !hasWarning(w, "refused, the previous version stays in force") {
			return fmt.Sprintf("no warning in %q", w)
		}
		return cmp.Diff([]string{"net1: namespace label: c1/istio-system", "nety: fromRegistry: c1"}, m)
	})
}

func TestRunRefusesBadStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("networks: {n: {endpoints: [{fromCidr: nope}]}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := clusters.Clients{Kube: fake.NewClientset()}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad meshNetworks file", Config{MeshNetworksFile: bad}, "fix the file given to --mesh-networks"},
		{"missing meshNetworks file", Config{MeshNetworksFile: bad + ".missing"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ClusterID, tt.cfg.Local, tt.cfg.Logger = "c1", local, testkit.DiscardLogger()
			srv, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Run(t.Context()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(Config{ClusterID: "c1", Local: local, Logger: testkit.DiscardLogger(), MeshNetworksFile: "a", MeshNetworksConfigMap: "b"}); err == nil {
		t.Error("New accepted both a meshNetworks file and ConfigMap")
	}
}
