package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/examples"
	"github.com/causeway-mesh/causeway/internal/model"
)

const exampleDir = "../../examples/home"

// The embedded example is the example directory.
func TestEmbeddedExample(t *testing.T) {
	embedded, err := LoadFS(t.Context(), examples.Home, "home")
	if err != nil {
		t.Fatalf("LoadFS(t.Context(), examples.Home): %v", err)
	}
	onDisk, err := Load(t.Context(), exampleDir)
	if err != nil {
		t.Fatalf("Load(%s): %v", exampleDir, err)
	}
	if diff := cmp.Diff(onDisk.clusters, embedded.clusters, cmp.AllowUnexported(clusterSet{})); diff != "" {
		t.Errorf("embedded example differs from %s (-disk +embedded):\n%s", exampleDir, diff)
	}
	if diff := cmp.Diff([]model.ClusterID{"cluster1", "cluster2"}, embedded.Clusters()); diff != "" {
		t.Errorf("Clusters (-want +got):\n%s", diff)
	}
	if _, err := LoadMeshNetworksFS(t.Context(), examples.Home, "home/mesh-networks.yaml"); err != nil {
		t.Errorf("LoadMeshNetworksFS(t.Context(), examples.Home): %v", err)
	}
}

func TestApply(t *testing.T) {
	set, err := LoadFS(t.Context(), examples.Home, "home")
	if err != nil {
		t.Fatal(err)
	}
	// One set may feed several stores.
	for _, mode := range []model.NodePortMode{model.NodePortEndpoints, model.NodePortSelector} {
		st := model.NewStore(model.Config{NodePortGateways: mode})
		set.Apply(st)
		sn := st.Snapshot()

		var hosts []model.Host
		for _, s := range sn.Services() {
			hosts = append(hosts, s.Host)
		}
		want := []model.Host{
			"helloworld.sample.svc.cluster.local",
			"istio-eastwestgateway.istio-system.svc.cluster.local",
			"sleep.sample.svc.cluster.local",
		}
		if diff := cmp.Diff(want, hosts); diff != "" {
			t.Errorf("%s: hosts (-want +got):\n%s", mode, diff)
		}
		hw := sn.Service("helloworld.sample.svc.cluster.local")
		if diff := cmp.Diff(map[model.ClusterID]string{"cluster1": "10.96.45.10", "cluster2": "10.97.45.10"}, hw.ClusterIPs); diff != "" {
			t.Errorf("%s: helloworld cluster IPs (-want +got):\n%s", mode, diff)
		}
		if diff := cmp.Diff([]model.NamespacedName{{Namespace: "sample", Name: "helloworld"}}, hw.ServiceAccounts); diff != "" {
			t.Errorf("%s: helloworld service accounts (-want +got):\n%s", mode, diff)
		}

		wantGW := map[model.NodePortMode][]string{
			model.NodePortEndpoints: {"192.168.2.22:31443"},
			model.NodePortSelector:  {"192.168.2.21:31443", "192.168.2.22:31443", "192.168.2.23:31443"},
		}[mode]
		var gws []string
		for _, g := range sn.Gateways("network2") {
			gws = append(gws, fmt.Sprintf("%s:%d", g.Address, g.Port))
		}
		if diff := cmp.Diff(wantGW, gws); diff != "" {
			t.Errorf("%s: network2 gateways (-want +got):\n%s", mode, diff)
		}
		var gw1 []string
		for _, g := range sn.Gateways("network1") {
			gw1 = append(gw1, fmt.Sprintf("%s:%d", g.Address, g.Port))
		}
		if diff := cmp.Diff([]string{"192.168.1.240:15443"}, gw1); diff != "" {
			t.Errorf("%s: network1 gateways (-want +got):\n%s", mode, diff)
		}
	}
}

func TestLoadMeshNetworks(t *testing.T) {
	mn, err := LoadMeshNetworks(t.Context(), filepath.Join(exampleDir, "mesh-networks.yaml"))
	if err != nil {
		t.Fatalf("LoadMeshNetworks: %v", err)
	}
	if mn == nil {
		t.Fatal("LoadMeshNetworks returned nil")
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "overlap.yaml")
	if err := os.WriteFile(bad, []byte(`networks:
  n1:
    endpoints: [{fromCidr: 10.0.0.0/8}]
  n2:
    endpoints: [{fromCidr: 10.1.0.0/16}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"missing", filepath.Join(dir, "none.yaml"), []string{"mesh networks file", "none.yaml"}},
		{"invalid", bad, []string{"mesh networks file " + bad + ": "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadMeshNetworks(t.Context(), tc.path)
			if err == nil {
				t.Fatal("LoadMeshNetworks: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := LoadMeshNetworksFS(t.Context(), examples.Home, "home/none.yaml"); err == nil || !strings.Contains(err.Error(), "home/none.yaml") {
		t.Errorf("LoadMeshNetworksFS(missing) = %v, want an error naming the file", err)
	}
}
