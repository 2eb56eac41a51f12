package debug

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFetchReportAndTable(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)

	// host:port without a scheme works too.
	rep, err := FetchReport(t.Context(), ts.Client(), strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Ready.Ready || len(rep.Clusters) != 3 || len(rep.Networks.Networks) != 2 {
		t.Fatalf("report = %+v", rep)
	}

	var b strings.Builder
	now := time.Date(2025, 1, 1, 0, 1, 30, 0, time.UTC)
	if err := WriteTable(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	want := `server ` + ts.URL + `: ready

CLUSTER  STATE  NETWORK  SYNCED     LAST SEEN  STALE FOR  ENDPOINTS  SERVICES  PODS  SOURCE                   ERROR
c1       live   net1     1m30s ago  -          -          1          2         1     config                   -
c2       stale  net2     1m30s ago  -          12.5s      1          1         1     secret istio-system/s    probe: connection refused
c9       error  -        no         -          -          0          -         -     secret istio-system/bad  kubeconfig of cluster c9: it does not parse

NETWORK  CLUSTERS  ENDPOINTS  GATEWAYS
net1     c1        1          192.0.2.1:15443 (c1)
net2     c2        1          -

warnings:
  - meshNetworks from file x refused
  - network "net2" has no gateway: its 1 endpoints are left out of the views of other networks (--no-gateway-endpoints=drop); label its east-west gateway Service topology.istio.io/network=net2 or list gateways in meshNetworks
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("table (-want +got)\n%s", d)
	}
}

func TestFetchReportErrors(t *testing.T) {
	f := newFixture(t)
	f.snap = nil
	f.ready = false
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	rep, err := FetchReport(t.Context(), ts.Client(), ts.URL)
	if err != nil {
		t.Fatalf("a starting server: %v", err)
	}
	if rep.Ready.Ready || rep.Ready.Reason == "" || len(rep.Networks.Networks) != 0 {
		t.Errorf("report of a starting server = %+v", rep)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathReady {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"ready":true}`))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"boom"}`))
	}))
	t.Cleanup(broken.Close)
	if _, err := FetchReport(t.Context(), broken.Client(), broken.URL); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error = %v, want the server's error", err)
	}
	ts.Close()
	if _, err := FetchReport(t.Context(), ts.Client(), ts.URL); err == nil || !strings.Contains(err.Error(), "is `causeway serve` running") {
		t.Errorf("error = %v, want a hint", err)
	}
}
