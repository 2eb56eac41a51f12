package install

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	const svc = `apiVersion: v1
kind: Service
metadata:
  name: istiod
  namespace: istio-system
  labels: {app: istiod}
spec:
  ports:
  - {name: grpc-xds, port: 15010}
  - {name: https-dns, port: 15012}
`
	tests := []struct {
		name string
		a, b string
		want ManifestDiff
	}{
		{name: "identical", a: svc, b: svc},
		{name: "same objects in another order, comments and empty documents", a: svc + "---\nkind: Namespace\napiVersion: v1\nmetadata: {name: istio-system}\n",
			b: "# generated\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n---\n" + svc},
		{name: "JSON and a List are read too", a: svc,
			b: `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Service",
			   "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
			   "spec": {"ports": [{"name": "grpc-xds", "port": 15010}, {"name": "https-dns", "port": 15012}]}}]}`},
		{
			name: "objects only on one side",
			a:    svc,
			b:    "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n",
			want: ManifestDiff{OnlyInA: []string{"Service:istio-system:istiod"}, OnlyInB: []string{"Namespace::istio-system"}},
		},
		{
			name: "changed, added and removed values; list elements by index; quoted keys",
			a:    svc,
			b: `apiVersion: v1
kind: Service
metadata:
  name: istiod
  namespace: istio-system
  labels: {app: istiod, topology.istio.io/network: network1}
spec:
  type: NodePort
  ports:
  - {name: grpc-xds, port: 15011}
`,
			want: ManifestDiff{Changed: []ObjectDiff{{Object: "Service:istio-system:istiod", Changes: []Change{
				{Path: `metadata.labels["topology.istio.io/network"]`, Old: Empty, New: "network1", Kind: Added},
				{Path: "spec.ports[#0].port", Old: "15010", New: "15011", Kind: Changed},
				{Path: "spec.ports[#1]", Old: `{"name":"https-dns","port":15012}`, New: Empty, Kind: Removed},
				{Path: "spec.type", Old: Empty, New: "NodePort", Kind: Added},
			}}}},
		},
		{
			name: "types matter: the string 15010 is not the number",
			a:    "kind: X\nmetadata: {name: x}\nv: 15010\nw: true\n",
			b:    "kind: X\nmetadata: {name: x}\nv: \"15010\"\nw: \"\"\n",
			want: ManifestDiff{Changed: []ObjectDiff{{Object: "X::x", Changes: []Change{
				{Path: "v", Old: "15010", New: `"15010"`, Kind: Changed},
				{Path: "w", Old: "true", New: `""`, Kind: Changed},
			}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Diff([]byte(tt.a), []byte(tt.b))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			if got.Equal() != (len(tt.want.OnlyInA)+len(tt.want.OnlyInB)+len(tt.want.Changed) == 0) {
				t.Errorf("Equal() = %v", got.Equal())
			}
		})
	}
}

// TestDiffSeedIstioctl reproduces the home lab's `istioctl manifest diff` of a
// minimal profile without and with meshID/clusterName/network: the mesh
// config embedded in a ConfigMap is compared as YAML, and the env list by
// index.
func TestDiffSeedIstioctl(t *testing.T) {
	base := `apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-1-11-4
  namespace: istio-system
data:
  mesh: |-
    defaultConfig:
      discoveryAddress: istiod-1-11-4.istio-system.svc:15012
    rootNamespace: istio-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-1-11-4
  namespace: istio-system
spec:
  template:
    spec:
      containers:
      - name: discovery
        env:
        - {name: REVISION, value: 1-11-4}
        - {name: CLUSTER_ID, value: Kubernetes}
`
	mc := strings.Replace(base, "      discoveryAddress:", "      meshId: mesh1\n      discoveryAddress:", 1)
	mc = strings.Replace(mc, "value: Kubernetes", "value: cluster1", 1)
	d, err := Diff([]byte(base), []byte(mc))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := d.Write(&buf, "/tmp/base.yaml", "/tmp/base_mc1.yaml"); err != nil {
		t.Fatal(err)
	}
	want := `Differences in manifests are:

Object ConfigMap:istio-system:istio-1-11-4 has diffs:
  data.mesh.defaultConfig.meshId: <empty> -> mesh1 (ADDED)

Object Deployment:istio-system:istiod-1-11-4 has diffs:
  spec.template.spec.containers[#0].env[#1].value: Kubernetes -> cluster1 (CHANGED)
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// TestDiffHomeLabPrimaryRemote compares Causeway's primary and remote
// manifests of one cluster: as in the home lab's diff of istioctl's, the
// remote has the static istiod-remote Service and Endpoints that point at
// the primary's gateway, and no control plane.
func TestDiffHomeLabPrimaryRemote(t *testing.T) {
	v := Values{ClusterID: "cluster2", Network: "network2", MeshID: "mesh1", Image: testImage, RemotePilotAddress: seedDiscoveryAddress, WebhookHost: seedWebhookHost}
	primary := v
	primary.RemotePilotAddress, primary.WebhookHost = "", ""
	d, err := Diff(render(t, ProfilePrimary, primary), render(t, ProfileRemote, v))
	if err != nil {
		t.Fatal(err)
	}
	want := &ManifestDiff{
		OnlyInA: []string{
			"ClusterRole::causeway-istiod-istio-system",
			"ClusterRoleBinding::causeway-istiod-istio-system",
			"Deployment:istio-system:istiod",
			"PodDisruptionBudget:istio-system:istiod",
			"Role:istio-system:causeway-istiod",
			"RoleBinding:istio-system:causeway-istiod",
			"Service:istio-system:istiod",
			"ServiceAccount:istio-system:istiod",
		},
		OnlyInB: []string{
			"ClusterRole::causeway-reader-istio-system",
			"ClusterRoleBinding::causeway-reader-istio-system",
			"Endpoints:istio-system:istiod-remote",
			"Service:istio-system:istiod-remote",
			"ServiceAccount:istio-system:causeway-reader",
		},
		// The injection webhook: the control plane's Service on the
		// primary, the primary's gateway on the remote (as in the home lab's
		// diff of istioctl's manifests).
		Changed: []ObjectDiff{{Object: "MutatingWebhookConfiguration::istio-sidecar-injector", Changes: []Change{
			{Path: "webhooks[#0].clientConfig.service", Old: `{"name":"istiod","namespace":"istio-system","path":"/inject","port":443}`, New: Empty, Kind: Removed},
			{Path: "webhooks[#0].clientConfig.url", Old: Empty, New: "https://" + seedWebhookHost + ":15017/inject/cluster/cluster2/net/network2", Kind: Added},
			{Path: "webhooks[#1].clientConfig.service", Old: `{"name":"istiod","namespace":"istio-system","path":"/inject","port":443}`, New: Empty, Kind: Removed},
			{Path: "webhooks[#1].clientConfig.url", Old: Empty, New: "https://" + seedWebhookHost + ":15017/inject/cluster/cluster2/net/network2", Kind: Added},
			{Path: "webhooks[#2].clientConfig.service", Old: `{"name":"istiod","namespace":"istio-system","path":"/inject","port":443}`, New: Empty, Kind: Removed},
			{Path: "webhooks[#2].clientConfig.url", Old: Empty, New: "https://" + seedWebhookHost + ":15017/inject/cluster/cluster2/net/network2", Kind: Added},
			{Path: "webhooks[#3].clientConfig.service", Old: `{"name":"istiod","namespace":"istio-system","path":"/inject","port":443}`, New: Empty, Kind: Removed},
			{Path: "webhooks[#3].clientConfig.url", Old: Empty, New: "https://" + seedWebhookHost + ":15017/inject/cluster/cluster2/net/network2", Kind: Added},
		}}},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("primary vs remote (-want +got):\n%s", diff)
	}

	// Two gateways of the home lab: cluster1's LoadBalancer exposing the
	// control plane, cluster2's NodePort.
	cases := seedCases()
	d, err = Diff(render(t, cases[1].profile, cases[1].values), render(t, cases[3].profile, cases[3].values))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.OnlyInA)+len(d.OnlyInB) != 0 {
		t.Errorf("gateways: objects on one side only: %v %v", d.OnlyInA, d.OnlyInB)
	}
	var svc []Change
	for _, od := range d.Changed {
		if od.Object == "Service:istio-system:istio-eastwestgateway" {
			svc = od.Changes
		}
	}
	wantSvc := []Change{
		{Path: `metadata.labels["topology.istio.io/network"]`, Old: "network1", New: "network2", Kind: Changed},
		{Path: "spec.externalTrafficPolicy", Old: Empty, New: "Local", Kind: Added},
		{Path: "spec.ports[#1]", Old: `{"name":"tls-istiod","port":15012,"protocol":"TCP","targetPort":15012}`, New: Empty, Kind: Removed},
		{Path: "spec.ports[#2]", Old: `{"name":"tls-webhook","port":15017,"protocol":"TCP","targetPort":15017}`, New: Empty, Kind: Removed},
		{Path: `spec.selector["topology.istio.io/network"]`, Old: "network1", New: "network2", Kind: Changed},
		{Path: "spec.type", Old: "LoadBalancer", New: "NodePort", Kind: Changed},
	}
	if diff := cmp.Diff(wantSvc, svc); diff != "" {
		t.Errorf("gateway Service changes (-want +got):\n%s", diff)
	}
}

func TestDiffErrors(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"not YAML", "a: [", "", "first manifest: document 1"},
		{"no kind", "metadata: {name: x}\n", "", "without kind or metadata.name"},
		{"no name", "kind: X\n", "", "without kind or metadata.name"},
		{"twice", "kind: X\nmetadata: {name: x}\n---\nkind: X\nmetadata: {name: x}\n", "", "document 2: object X::x appears twice"},
		{"second side", "", "kind: [", "second manifest"},
		{"list of scalars", "kind: List\nitems: [1]\n", "", "item 0: not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Diff([]byte(tt.a), []byte(tt.b))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestDiffWriteIdentical(t *testing.T) {
	var buf bytes.Buffer
	if err := (&ManifestDiff{}).Write(&buf, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "Manifests are identical\n" {
		t.Errorf("got %q", buf.String())
	}
}
