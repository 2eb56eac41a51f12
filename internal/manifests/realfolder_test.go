package manifests

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// A real folder, or the output of kubectl get -A -o yaml, holds many kinds
// the model does not read. They are skipped and counted; the kinds it reads
// are still read, and still checked strictly.
func TestLoadRealFolderSkipsOtherKinds(t *testing.T) {
	const others = `apiVersion: v1
kind: ServiceAccount
metadata: {name: sleep, namespace: sample}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: sample}
spec:
  selector: {matchLabels: {app: sleep}}
  template:
    metadata: {labels: {app: sleep}}
    spec: {containers: [{name: sleep, image: curlimages/curl}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-ca-root-cert, namespace: sample}
data: {root-cert.pem: "..."}
---
apiVersion: v1
kind: Secret
metadata: {name: cacerts, namespace: istio-system}
type: Opaque
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers: [{port: {number: 15443, name: tls, protocol: TLS}, tls: {mode: AUTO_PASSTHROUGH}, hosts: ["*.local"]}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.networking.istio.io}
spec: {group: networking.istio.io}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: knative-hello, namespace: sample}
`
	// What kubectl get -A -o yaml prints: a List mixing kinds, with the
	// fields the API server adds.
	const list = `apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: sleep
    namespace: sample
    uid: 0b7a6d3e-1111-4c1e-9d2a-000000000001
    resourceVersion: "1234"
    creationTimestamp: "2026-12-06T10:00:00Z"
  spec:
    clusterIP: 10.96.0.20
    ports: [{name: http, port: 80, protocol: TCP, targetPort: 80}]
    type: ClusterIP
  status: {loadBalancer: {}}
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata: {name: sleep-5d8f, namespace: sample}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: default, namespace: sample}
- apiVersion: v1
  kind: Endpoints
  metadata: {name: sleep, namespace: sample}
`
	fsys := fstest.MapFS{
		"m/c1/others.yaml": file(others),
		"m/c1/all.yaml":    file(list),
		"m/c1/ns.yaml":     file("apiVersion: v1\nkind: Namespace\nmetadata: {name: sample}\n"),
	}
	set, err := LoadFS(t.Context(), fsys, "m")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	c := set.clusters[0]
	if len(c.services) != 1 || c.services[0].Name != "sleep" || len(c.namespaces) != 1 {
		t.Errorf("read %d services, %d namespaces; want the sleep Service and the sample Namespace", len(c.services), len(c.namespaces))
	}
	want := map[string]int{
		"ServiceAccount": 2, "Deployment": 1, "ConfigMap": 1, "Secret": 1, "Gateway": 1,
		"CustomResourceDefinition": 1, "Service": 1, "ReplicaSet": 1, "Endpoints": 1,
	}
	if diff := cmp.Diff(want, set.Skipped()); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
	const wantLine = "skipped 10 objects of kinds not read: ServiceAccount x2, ConfigMap x1, CustomResourceDefinition x1, Deployment x1, Endpoints x1, Gateway x1, ReplicaSet x1, Secret x1, Service x1"
	if got := set.SkippedSummary(); got != wantLine {
		t.Errorf("SkippedSummary:\n got %s\nwant %s", got, wantLine)
	}

	// A misspelled field of a kind the model reads stays an error.
	fsys["m/c1/bad.yaml"] = file("apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: sample}\nspec:\n  prots: []\n")
	if _, err := LoadFS(t.Context(), fsys, "m"); err == nil || !strings.Contains(err.Error(), `unknown field "prots"`) {
		t.Errorf("LoadFS with a misspelled Service field: %v, want the unknown field named", err)
	}
}

func TestSkippedSummaryEmpty(t *testing.T) {
	set, err := LoadFS(t.Context(), fstest.MapFS{"m/c1/s.yaml": file(sleepYAML)}, "m")
	if err != nil {
		t.Fatal(err)
	}
	if got := set.SkippedSummary(); got != "" {
		t.Errorf("SkippedSummary = %q, want empty", got)
	}
}
