package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/xds"
)

func TestLoadMeshConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "serviceSettings: [{settings: {clusterLocal: true}, hosts: [\"*.data.svc.cluster.local\"]}]\n")
	mc, err := loadMeshConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := model.NewClusterLocalHosts(mc, "", "").IsClusterLocal("db.data.svc.cluster.local"); !got {
		t.Errorf("db.data is not cluster-local by %s", good)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "no such file"},
		{"not a mesh config", write("bad.yaml", "serviceSettings: 5\n"), "not an Istio MeshConfig"},
		// Larger than the bound: read no further than one byte past it.
		{"too large", write("big.yaml", "#"+strings.Repeat("x", 2*model.MaxMeshConfigBytes)), "more than the"},
	} {
		if _, err := loadMeshConfig(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestMeshConfigOutboundPolicy: --mesh-config's outboundTrafficPolicy
// reaches the xDS server (captured sidecars' catch-all).
func TestMeshConfigOutboundPolicy(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want envoy.OutboundTrafficPolicy
	}{
		{"", envoy.AllowAny},
		{"outboundTrafficPolicy: {mode: ALLOW_ANY}", envoy.AllowAny},
		{"outboundTrafficPolicy: {}", envoy.AllowAny},
		{"outboundTrafficPolicy: {mode: REGISTRY_ONLY}", envoy.RegistryOnly},
	} {
		mc, err := model.ParseMeshConfig([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := withMeshConfig(xds.Config{}, mc).OutboundTrafficPolicy; got != tc.want {
			t.Errorf("%q: outbound traffic policy %v, want %v", tc.yaml, got, tc.want)
		}
	}
}
