package ca

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestServingDNSNames(t *testing.T) {
	tests := []struct {
		name      string
		namespace string
		revision  string
		custom    []string
		want      []string
		wantErr   string
	}{
		{name: "no revision", namespace: "istio-system",
			want: []string{"istiod.istio-system.svc", "istiod-remote.istio-system.svc"}},
		{name: "default revision is istiod", namespace: "istio-system", revision: "default",
			want: []string{"istiod.istio-system.svc", "istiod-remote.istio-system.svc"}},
		{name: "revision and custom hosts (the home lab's fix)", namespace: "istio-system", revision: "1-11-4",
			custom: []string{"istiod-1-11-4.istio-system.svc", "mesh.example.com", "*.cp.example.com"},
			want: []string{"istiod.istio-system.svc", "istiod-1-11-4.istio-system.svc", "istiod-remote.istio-system.svc",
				"mesh.example.com", "*.cp.example.com"}},
		{name: "other namespace", namespace: "mesh",
			custom: []string{"mesh.example.com", "mesh.example.com"},
			want:   []string{"istiod.mesh.svc", "istiod-remote.mesh.svc", "mesh.example.com"}},
		{name: "IP address", namespace: "istio-system", custom: []string{"10.0.0.1"},
			wantErr: `custom host "10.0.0.1" is an IP address`},
		{name: "URL", namespace: "istio-system", custom: []string{"https://mesh.example.com:15012"},
			wantErr: `custom host "https://mesh.example.com:15012"`},
		{name: "upper case", namespace: "istio-system", custom: []string{"Mesh.Example.com"},
			wantErr: "lower-case DNS name"},
		{name: "bad revision", namespace: "istio-system", revision: "1.11_4",
			wantErr: `serving certificate name "istiod-1.11_4.istio-system.svc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ServingDNSNames(tt.namespace, tt.revision, tt.custom)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	base := func() Config {
		return Config{ClusterID: "cluster1", Client: fake.NewClientset(), Logger: testkit.Logger(t)}
	}
	tests := []struct {
		name    string
		tweak   func(*Config)
		wantErr string
		check   func(t *testing.T, a *Authority)
	}{
		{name: "defaults", tweak: func(*Config) {}, check: func(t *testing.T, a *Authority) {
			got := []any{a.cfg.SystemNamespace, a.cfg.TrustDomain, a.cfg.Audiences, a.cfg.WorkloadTTL, a.cfg.WorkloadTTLMax, a.cfg.ServingTTL, a.manager}
			want := []any{"istio-system", "cluster.local", []string{"istio-ca"}, 24 * time.Hour, 90 * 24 * time.Hour, 24 * time.Hour, "causeway-cluster1"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("defaults (-want +got):\n%s", diff)
			}
		}},
		{name: "default TTL clamped to the maximum", tweak: func(c *Config) { c.WorkloadTTLMax = time.Hour },
			check: func(t *testing.T, a *Authority) {
				if a.cfg.WorkloadTTL != time.Hour {
					t.Errorf("WorkloadTTL %v, want 1h", a.cfg.WorkloadTTL)
				}
			}},
		{name: "no logger", tweak: func(c *Config) { c.Logger = nil }, wantErr: "Logger is nil"},
		{name: "no cluster id", tweak: func(c *Config) { c.ClusterID = "" }, wantErr: "--cluster-id"},
		{name: "no client", tweak: func(c *Config) { c.Client = nil }, wantErr: "Client is nil"},
		{name: "bad trust domain", tweak: func(c *Config) { c.TrustDomain = "Cluster Local" }, wantErr: `trust domain "Cluster Local"`},
		{name: "empty audience", tweak: func(c *Config) { c.Audiences = []string{""} }, wantErr: "empty token audience"},
		{name: "short serving TTL", tweak: func(c *Config) { c.ServingTTL = time.Millisecond }, wantErr: "want at least 2s"},
		{name: "negative TTL", tweak: func(c *Config) { c.WorkloadTTLMax = -time.Hour }, wantErr: "negative"},
		{name: "IP custom host", tweak: func(c *Config) { c.CustomHosts = []string{"192.168.1.1"} }, wantErr: "is an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.tweak(&cfg)
			a, err := New(cfg)
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, a)
		})
	}
}

// TestStatus: what /debug/ca shows before and after the CA is loaded.
func TestStatus(t *testing.T) {
	a, err := New(Config{ClusterID: "cluster1", Client: fake.NewClientset(), Logger: testkit.Logger(t), CustomHosts: []string{"mesh.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.DebugHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/ca", nil))
	want := `{
  "loaded": false,
  "servingDNSNames": [
    "istiod.istio-system.svc",
    "istiod-remote.istio-system.svc",
    "mesh.example.com"
  ]
}
`
	if diff := cmp.Diff(want, rec.Body.String()); diff != "" {
		t.Errorf("status before the CA is loaded (-want +got):\n%s", diff)
	}

	m := newFakeMesh(t, nil)
	st := m.a.Status()
	rootInfo, err := pki.Inspect(m.root)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{st.Loaded, st.Source, st.Roots, st.CANotAfter.IsZero(), st.ServingNotAfter.After(time.Now())}
	if diff := cmp.Diff([]any{true, "istio-system/cacerts", []string{rootInfo[0].SHA256}, false, true}, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}
