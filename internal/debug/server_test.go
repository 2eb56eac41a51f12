package debug

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// testSnapshot is a model of two clusters on two networks: c1 (net1) with
// a LoadBalancer gateway, c2 (net2) without one; app/web has one mTLS
// endpoint in each.
func testSnapshot(t *testing.T) *model.Snapshot {
	t.Helper()
	s := model.NewStore(model.Config{})
	for _, c := range []struct {
		id  model.ClusterID
		net model.NetworkID
		ip  string
	}{{"c1", "net1", "10.1.0.1"}, {"c2", "net2", "10.2.0.1"}} {
		s.UpsertNamespace(&model.Namespace{Cluster: c.id, Name: "istio-system", Network: c.net})
		s.UpsertService(&model.Service{Cluster: c.id, Namespace: "app", Name: "web", Type: model.ServiceTypeClusterIP,
			ClusterIP: "10.96.0.1", Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: "TCP"}}})
		s.UpsertPod(&model.Pod{Cluster: c.id, Namespace: "app", Name: "web-0", IPs: []string{c.ip}, TLSMode: "istio", ServiceAccount: "web"})
		s.UpsertEndpointSlice(&model.EndpointSlice{Cluster: c.id, Namespace: "app", Name: "web-x", ServiceName: "web",
			Ports:     []model.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}},
			Endpoints: []model.SliceEndpoint{{Addresses: []string{c.ip}, Ready: true, Pod: "web-0"}}})
	}
	s.UpsertService(&model.Service{Cluster: "c1", Namespace: "istio-system", Name: "eastwest", Type: model.ServiceTypeLoadBalancer,
		ClusterIP: "10.96.0.2", Network: "net1", LoadBalancerIPs: []string{"192.0.2.1"},
		Ports: []model.ServicePort{{Name: "tls", Port: 15443, Protocol: "TCP"}}})
	return s.Snapshot()
}

func testStatuses() []clusters.Status {
	synced := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return []clusters.Status{
		{ID: "c1", Source: "config", State: clusters.StateLive, Network: "net1", Synced: true, Live: true, SyncedAt: &synced,
			Objects: &kube.Counts{Services: 2, Pods: 1}},
		{ID: "c2", Source: "secret istio-system/s", State: clusters.StateStale, Network: "net2", Synced: true, StaleSeconds: 12.5,
			SyncedAt: &synced, Error: "probe: connection refused", Objects: &kube.Counts{Services: 1, Pods: 1}},
		{ID: "c9", Source: "secret istio-system/bad", State: clusters.StateError, Error: "kubeconfig of cluster c9: it does not parse"},
	}
}

type fixture struct {
	snap  *model.Snapshot
	ready bool
	srv   *Server
	reg   *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{snap: testSnapshot(t), ready: true, reg: prometheus.NewRegistry()}
	snapFn := func() *model.Snapshot { return f.snap }
	if err := f.reg.Register(NewCollector(snapFn, testStatuses)); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Snapshot: snapFn,
		Clusters: testStatuses,
		Ready: func() (bool, string) {
			if f.ready {
				return true, ""
			}
			return false, "initial sync of the clusters in progress"
		},
		Warnings: func() []string { return []string{"meshNetworks from file x refused"} },
		Gatherer: f.reg,
		Logger:   testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return f
}

// get asks from a loopback peer, as `causeway status` through kubectl
// port-forward does.
func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return f.getFrom(t, "127.0.0.1:40000", path)
}

func (f *fixture) getFrom(t *testing.T, remoteAddr, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remoteAddr
	f.srv.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestEndpoints(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name     string
		path     string
		wantCode int
		want     string // a View as JSON, or an error substring
	}{
		{"net1 proxy: local endpoint, net2 has no gateway", "/debug/endpoints?host=web.app.svc.cluster.local&port=80&network=net1", 200,
			`{"cluster":"outbound|80||web.app.svc.cluster.local","network":"net1","endpoints":[{"address":"10.1.0.1","port":8080,"weight":1,"locality":"","cluster":"c1","network":"net1","gateway":false}]}`},
		{"net2 proxy: net1 through its gateway", "/debug/endpoints?host=web.app.svc.cluster.local&port=80&network=net2", 200,
			`{"cluster":"outbound|80||web.app.svc.cluster.local","network":"net2","endpoints":[{"address":"10.2.0.1","port":8080,"weight":1,"locality":"","cluster":"c2","network":"net2","gateway":false},{"address":"192.0.2.1","port":15443,"weight":1,"locality":"","cluster":"c1","network":"net1","gateway":true}]}`},
		{"cluster filter", "/debug/endpoints?host=web.app.svc.cluster.local&port=80&network=net2&cluster=c1", 200,
			`{"cluster":"outbound|80||web.app.svc.cluster.local","network":"net2","endpoints":[{"address":"192.0.2.1","port":15443,"weight":1,"locality":"","cluster":"c1","network":"net1","gateway":true}]}`},
		{"cluster filter, nothing left", "/debug/endpoints?host=web.app.svc.cluster.local&port=80&network=net1&cluster=c2", 200,
			`{"cluster":"outbound|80||web.app.svc.cluster.local","network":"net1","endpoints":[]}`},
		{"no host", "/debug/endpoints?port=80", 400, "missing host"},
		{"no port", "/debug/endpoints?host=web.app.svc.cluster.local", 400, "missing port"},
		{"bad port", "/debug/endpoints?host=web.app.svc.cluster.local&port=http", 400, `port "http" is not a port number`},
		{"port out of range", "/debug/endpoints?host=web.app.svc.cluster.local&port=70000", 400, "not a port number"},
		{"unknown host", "/debug/endpoints?host=nope.app.svc.cluster.local&port=80", 404, "service nope.app.svc.cluster.local is unknown"},
		{"unknown port", "/debug/endpoints?host=web.app.svc.cluster.local&port=81", 404, "has no port 81; its ports: 80"},
		{"unknown cluster", "/debug/endpoints?host=web.app.svc.cluster.local&port=80&cluster=c9", 404, "cluster c9 is not watched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.get(t, tt.path)
			if code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", code, tt.wantCode, body)
			}
			if code != http.StatusOK {
				var e ErrorResponse
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, tt.want) {
					t.Fatalf("error body %s (%v), want JSON error containing %q", body, err, tt.want)
				}
				return
			}
			var got, want model.View
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("view (-want +got)\n%s", d)
			}
		})
	}

	f.snap = nil
	if code, body := f.get(t, "/debug/endpoints?host=web.app.svc.cluster.local&port=80"); code != 503 || !strings.Contains(body, "no model snapshot yet") {
		t.Errorf("without a snapshot: %d %s, want 503", code, body)
	}
}

func TestClustersAndNetworks(t *testing.T) {
	f := newFixture(t)
	code, body := f.get(t, "/debug/clusters")
	if code != 200 {
		t.Fatalf("/debug/clusters: %d %s", code, body)
	}
	var cl ClustersResponse
	if err := json.Unmarshal([]byte(body), &cl); err != nil {
		t.Fatal(err)
	}
	want := testStatuses()
	want[0].Endpoints = map[model.NetworkID]int{"net1": 1}
	want[1].Endpoints = map[model.NetworkID]int{"net2": 1}
	if d := cmp.Diff(want, cl.Clusters); d != "" {
		t.Errorf("/debug/clusters (-want +got)\n%s", d)
	}

	code, body = f.get(t, "/debug/networks")
	if code != 200 {
		t.Fatalf("/debug/networks: %d %s", code, body)
	}
	var rep model.NetworksReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	wantRep := f.snap.Networks()
	wantRep.Warnings = append(slices.Clone(wantRep.Warnings), "meshNetworks from file x refused")
	slices.Sort(wantRep.Warnings)
	if d := cmp.Diff(wantRep, rep); d != "" {
		t.Errorf("/debug/networks (-want +got)\n%s", d)
	}
}

func TestReady(t *testing.T) {
	f := newFixture(t)
	f.ready = false
	if code, body := f.get(t, "/ready"); code != 503 || !strings.Contains(body, `"ready": false`) || !strings.Contains(body, "in progress") {
		t.Errorf("/ready before sync: %d %s", code, body)
	}
	f.ready = true
	if code, body := f.get(t, "/ready"); code != 200 || !strings.Contains(body, `"ready": true`) {
		t.Errorf("/ready after sync: %d %s", code, body)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	code, body := f.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`causeway_clusters{state="live"} 1`,
		`causeway_clusters{state="stale"} 1`,
		`causeway_clusters{state="error"} 1`,
		`causeway_clusters{state="dropped"} 0`,
		`causeway_cluster_stale_seconds{cluster="c2"} 12.5`,
		`causeway_endpoints{cluster="c1",network="net1"} 1`,
		`causeway_endpoints{cluster="c2",network="net2"} 1`,
		`causeway_endpoints_dropped_no_gateway{network="net2"} 1`,
		`causeway_remote_secret_invalid_entries 1`,
		`causeway_gateways 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestProfiling(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.get(t, "/debug/pprof/heap"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/heap without Profiling: %d, want 404", code)
	}
	srv, err := New(Config{
		Snapshot:  func() *model.Snapshot { return f.snap },
		Clusters:  testStatuses,
		Ready:     func() (bool, string) { return true, "" },
		Profiling: true,
		Logger:    testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	code, body := f.get(t, "/debug/pprof/heap?debug=1")
	if code != 200 || !strings.Contains(body, "heap profile") {
		t.Errorf("/debug/pprof/heap?debug=1: %d %.80q, want the heap profile", code, body)
	}
	if code, body := f.get(t, "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.80q, want the index", code, body)
	}
}

// TestRemotePeers: a peer that is not on loopback gets /ready and
// /metrics (kubelet, Prometheus) and nothing of the topology or the
// profiles, unless RemoteDebug is set.
func TestRemotePeers(t *testing.T) {
	f := newFixture(t)
	srv, err := New(Config{
		Snapshot:  func() *model.Snapshot { return f.snap },
		Clusters:  testStatuses,
		Ready:     func() (bool, string) { return true, "" },
		Gatherer:  f.reg,
		Profiling: true,
		Logger:    testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/debug/proxies", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("[]")) }))
	f.srv = srv
	paths := []string{PathClusters, PathNetworks, PathEndpoints + "?host=a&port=1", "/debug/proxies", PathPprof + "heap", PathPprof, "/debug/../debug/clusters", "/nothing"}
	for _, remote := range []string{"10.1.2.3:5000", "[fd00::1]:5000", "[::ffff:10.1.2.3]:5000"} {
		for _, p := range paths {
			if code, body := f.getFrom(t, remote, p); code != http.StatusForbidden || !strings.Contains(body, "--debug-remote") {
				t.Errorf("%s from %s: %d %.100q, want 403 naming --debug-remote", p, remote, code, body)
			}
		}
		for _, p := range []string{PathReady, PathMetrics} {
			if code, _ := f.getFrom(t, remote, p); code != http.StatusOK {
				t.Errorf("%s from %s: %d, want 200", p, remote, code)
			}
		}
	}
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"} {
		if code, _ := f.getFrom(t, remote, PathClusters); code != http.StatusOK {
			t.Errorf("%s from %s: %d, want 200", PathClusters, remote, code)
		}
	}
	srv.cfg.RemoteDebug = true
	if code, _ := f.getFrom(t, "10.1.2.3:5000", PathClusters); code != http.StatusOK {
		t.Errorf("%s from a remote peer with RemoteDebug: %d, want 200", PathClusters, code)
	}
}

// TestProfileDuration: a CPU profile or trace longer than
// MaxProfileSeconds is refused at once.
func TestProfileDuration(t *testing.T) {
	f := newFixture(t)
	srv, err := New(Config{
		Snapshot:  func() *model.Snapshot { return f.snap },
		Clusters:  testStatuses,
		Ready:     func() (bool, string) { return true, "" },
		Profiling: true,
		Logger:    testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	for _, p := range []string{"profile?seconds=86400", "trace?seconds=31", "heap?seconds=86400", "goroutine?seconds=3600", "profile?seconds=-1", "profile?seconds=x"} {
		if code, body := f.get(t, PathPprof+p); code != http.StatusBadRequest || !strings.Contains(body, "up to 30") {
			t.Errorf("%s: %d %.100q, want 400 naming the cap", p, code, body)
		}
	}
}
