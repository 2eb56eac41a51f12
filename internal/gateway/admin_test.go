package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAdminConfigLoopbackOnly: /config (routes and endpoint addresses) is
// served only to loopback peers; /ready and /metrics to every peer (kubelet
// probes, Prometheus), and /config too with AdminRemoteConfig.
func TestAdminConfigLoopbackOnly(t *testing.T) {
	h := newHarness(t, time.Second, time.Second)
	get := func(remote, path string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = remote
		h.gw.adminHandler().ServeHTTP(rec, req)
		if rec.Code == http.StatusForbidden && !strings.Contains(rec.Body.String(), "--admin-remote-config") {
			t.Errorf("%s from %s: 403 without saying how to allow it: %q", path, remote, rec.Body.String())
		}
		return rec.Code
	}
	for _, remote := range []string{"10.0.0.7:40000", "[2001:db8::7]:40000", "[::ffff:10.0.0.7]:40000"} {
		if code := get(remote, "/config"); code != http.StatusForbidden {
			t.Errorf("/config from %s: %d, want 403", remote, code)
		}
		if code := get(remote, "/metrics"); code != http.StatusOK {
			t.Errorf("/metrics from %s: %d, want 200", remote, code)
		}
		if code := get(remote, "/healthz/ready"); code == http.StatusForbidden {
			t.Errorf("/healthz/ready from %s: 403", remote)
		}
	}
	for _, remote := range []string{"127.0.0.1:40000", "[::1]:40000"} {
		if code := get(remote, "/config"); code != http.StatusOK {
			t.Errorf("/config from %s: %d, want 200", remote, code)
		}
	}
	h.gw.cfg.AdminRemoteConfig = true
	if code := get("10.0.0.7:40000", "/config"); code != http.StatusOK {
		t.Errorf("/config from a remote peer with AdminRemoteConfig: %d, want 200", code)
	}
}
