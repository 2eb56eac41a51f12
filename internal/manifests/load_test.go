package manifests

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

const sleepYAML = `apiVersion: v1
kind: Service
metadata: {name: sleep, namespace: sample}
spec:
  ports: [{name: http, port: 80}]
`

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func dir() *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | 0o755} }

func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{
		"m/mesh-networks.yaml":       file("not: [read"), // files at the top are not read
		"m/README.md":                file("# notes"),
		"m/c1/sample.yaml":           file(helloworldYAML),
		"m/c1/README.md":             file("not read"),
		"m/c1/system/ns.yml":         file("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system, labels: {topology.istio.io/network: n1}}\n"),
		"m/c1/.hidden/bad.yaml":      file("not: [read"),
		"m/c1/.bad.yaml":             file("not: [read"),
		"m/c2/all.json":              file(`{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}, "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.2"}]}}`),
		"m/c2/sleep.YAML":            file(sleepYAML),
		"m/c2/pods.yaml":             file("apiVersion: v1\nkind: Pod\nmetadata: {name: sleep-1, namespace: sample}\nspec: {serviceAccountName: sleep, containers: []}\nstatus: {podIPs: [{ip: 10.20.0.5}]}\n"),
		"m/.git/config.yaml":         file("not: [read"),
		"m/c3-not-a-cluster.yaml.md": file(""),
	}
	set, err := LoadFS(t.Context(), fsys, "m")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	if diff := cmp.Diff([]model.ClusterID{"c1", "c2"}, set.Clusters()); diff != "" {
		t.Errorf("Clusters (-want +got):\n%s", diff)
	}
	want := []*clusterSet{
		{
			id:         "c1",
			namespaces: []*model.Namespace{{Cluster: "c1", Name: "istio-system", Network: "n1"}},
			services: []*model.Service{{
				Cluster: "c1", Namespace: "sample", Name: "helloworld", Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.10",
				Ports: []model.ServicePort{{Name: "http", Port: 5000, TargetPort: 5000}},
			}},
			slices: []*model.EndpointSlice{{
				Cluster: "c1", Namespace: "sample", Name: "helloworld-x1", ServiceName: "helloworld",
				Ports:     []model.EndpointPort{{Name: "http", Port: 5000, Protocol: "TCP"}},
				Endpoints: []model.SliceEndpoint{{Addresses: []string{"10.10.1.20"}, Ready: true, NodeName: "n1", Pod: "helloworld-v1"}},
			}},
		},
		{
			id:    "c2",
			nodes: []*model.Node{{Cluster: "c2", Name: "n2", ExternalIPs: []string{"203.0.113.2"}}},
			pods: []*model.Pod{{
				Cluster: "c2", Namespace: "sample", Name: "sleep-1", IPs: []string{"10.20.0.5"}, ServiceAccount: "sleep",
			}},
			services: []*model.Service{{
				Cluster: "c2", Namespace: "sample", Name: "sleep", Type: model.ServiceTypeClusterIP,
				Ports: []model.ServicePort{{Name: "http", Port: 80}},
			}},
		},
	}
	if diff := cmp.Diff(want, set.clusters, cmp.AllowUnexported(clusterSet{})); diff != "" {
		t.Errorf("LoadFS (-want +got):\n%s", diff)
	}

	// The root of the file system works as well.
	sub, err := fs.Sub(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	set2, err := LoadFS(t.Context(), sub, ".")
	if err != nil {
		t.Fatalf("LoadFS(.): %v", err)
	}
	if diff := cmp.Diff(set.clusters, set2.clusters, cmp.AllowUnexported(clusterSet{})); diff != "" {
		t.Errorf("LoadFS(t.Context(), sub, .) differs (-m +sub):\n%s", diff)
	}
}

func TestLoadFSErrors(t *testing.T) {
	const ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sample}\n"
	helloSvc, helloSlice, _ := strings.Cut(helloworldYAML, "---\n")
	tests := []struct {
		name string
		fsys fstest.MapFS
		want []string // substrings of the error, in order
	}{
		{"missing directory", fstest.MapFS{"other/c1/a.yaml": file(ns)}, []string{"manifests directory", "m"}},
		{"empty directory", fstest.MapFS{"m": dir()}, []string{"manifests directory m is empty", "one folder per cluster", "m/cluster1"}},
		{"no cluster folders", fstest.MapFS{"m/a.yaml": file(ns), "m/.git": dir()}, []string{"manifests directory m holds no cluster folders"}},
		{"cluster without manifests", fstest.MapFS{"m/c1/a.yaml": file(ns), "m/c2/README.md": file("x")},
			[]string{"cluster folder m/c2 holds no .yaml, .yml or .json files"}},
		{"unparsable file", fstest.MapFS{"m/c1/a.yaml": file(ns), "m/c1/b.yaml": file(ns + "---\nkind: [\n")},
			[]string{"m/c1/b.yaml: line 5, document 2: not valid YAML"}},
		{"other kind without a name", fstest.MapFS{"m/c1/a.yaml": file("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: sample}\n")},
			[]string{"m/c1/a.yaml: line 1, document 1: ConfigMap (v1) has no metadata.name"}},
		{"service without ports", fstest.MapFS{"m/c1/a.yaml": file("apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: sample}\n")},
			[]string{"m/c1/a.yaml: line 1, document 1: service sample/x has no ports"}},
		{"duplicate in one file", fstest.MapFS{"m/c1/a.yaml": file(sleepYAML + "---\n" + sleepYAML)},
			[]string{"m/c1/a.yaml: line 7, document 2: Service sample/sleep is defined twice in cluster c1, first at m/c1/a.yaml: line 1, document 1"}},
		{"duplicate across files", fstest.MapFS{"m/c1/a.yaml": file(ns), "m/c1/sub/b.yaml": file(ns)},
			[]string{"m/c1/sub/b.yaml: line 1, document 1: Namespace sample is defined twice in cluster c1, first at m/c1/a.yaml"}},
		{"duplicate in a List", fstest.MapFS{"m/c1/a.yaml": file("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: sample}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: sample}}\n")},
			[]string{"m/c1/a.yaml: line 1, document 1, item 2: Namespace sample is defined twice"}},
		{"slice of a missing service", fstest.MapFS{"m/c1/a.yaml": file(helloSlice)},
			[]string{"m/c1/a.yaml: line 1, document 1: EndpointSlice sample/helloworld-x1 belongs to Service sample/helloworld", "cluster c1 does not have"}},
		{"slice whose service is in another cluster", fstest.MapFS{
			"m/c1/svc.yaml":   file(helloSvc),
			"m/c2/slice.yaml": file(helloSlice),
		}, []string{"m/c2/slice.yaml", "Service sample/helloworld", "cluster c2 does not have"}},
		{"same name, different kind, is no duplicate; bad gateway port is", fstest.MapFS{
			"m/c1/a.yaml": file(ns + "---\napiVersion: v1\nkind: Service\nmetadata: {name: sample, namespace: sample, labels: {networking.istio.io/gatewayPort: '-1'}}\nspec: {ports: [{port: 1}]}\n"),
		}, []string{"m/c1/a.yaml: line 5, document 2: service c1/sample/sample: label networking.istio.io/gatewayPort"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := LoadFS(t.Context(), tc.fsys, "m")
			if err == nil {
				t.Fatalf("LoadFS = %+v, want an error", set)
			}
			testkit.ContainsInOrder(t, "error", err.Error(), tc.want...)
		})
	}
	if _, err := LoadFS(t.Context(), fstest.MapFS{}, "../m"); err == nil || !strings.Contains(err.Error(), "not a valid path") {
		t.Errorf("LoadFS(../m) = %v, want an invalid path error", err)
	}
}

func TestLoad(t *testing.T) {
	root := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := Load(t.Context(), filepath.Join(root, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Load(missing) = %v, want an error naming it", err)
	}
	write("file.yaml", sleepYAML)
	if _, err := Load(t.Context(), filepath.Join(root, "file.yaml")); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("Load(file) = %v, want an error saying it is a file", err)
	}

	write("c1/sleep.yaml", sleepYAML)
	set, err := Load(t.Context(), root)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff([]model.ClusterID{"c1"}, set.Clusters()); diff != "" {
		t.Errorf("Clusters (-want +got):\n%s", diff)
	}

	// Errors name the file by its path on disk.
	write("c1/bad.yaml", "kind: [")
	_, err = Load(t.Context(), root)
	if want := filepath.Join(root, "c1", "bad.yaml") + ": line 1, document 1: not valid YAML"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load = %v, want an error containing %q", err, want)
	}
}
