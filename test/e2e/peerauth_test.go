package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/causeway-mesh/causeway/internal/testenv"
)

// Istio's PeerAuthentication, as the control plane reads it.
const (
	peerAuthCRD = "peerauthentications.security.istio.io"
	// istioAPIModule holds Istio's CRDs (kubernetes/customresourcedefinitions.gen.yaml)
	// at the version go.mod pins.
	istioAPIModule = "istio.io/api"
	// maxCRDFileBytes bounds the CRD file read (about 1 MB).
	maxCRDFileBytes = 16 << 20
)

var (
	crdGVR      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	peerAuthGVR = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
)

// istioCRDFile is Istio's CRD file of the istio.io/api module go.mod pins.
func istioCRDFile(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", istioAPIModule).Output()
	if err != nil {
		return "", fmt.Errorf("find module %s (go list -m; run `go mod download %s`): %w", istioAPIModule, istioAPIModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not downloaded: run `go mod download %s`", istioAPIModule, istioAPIModule)
	}
	return filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"), nil
}

// installPeerAuthCRD creates Istio's PeerAuthentication CRD (from
// istio.io/api) in cluster c and waits until it is served, as
// `istioctl install` would have before any control plane starts.
func installPeerAuthCRD(ctx context.Context, c *testenv.Cluster, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("Istio's CRDs: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxCRDFileBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxCRDFileBytes {
		return fmt.Errorf("%s is larger than %d bytes", path, maxCRDFileBytes)
	}
	client, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("cluster %s: dynamic client: %w", c.ID, err)
	}
	crds := client.Resource(crdGVR)
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(bytes.NewReader(data)), 64<<10)
	found := false
	for !found {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s has no CRD %s", path, peerAuthCRD)
			}
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if obj.GetKind() != "CustomResourceDefinition" || obj.GetName() != peerAuthCRD {
			continue
		}
		found = true
		if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster %s: create CRD %s: %w", c.ID, peerAuthCRD, err)
		}
	}
	return waitUntil(ctx, nil, "cluster "+c.ID+": CRD "+peerAuthCRD+" established", func(ctx context.Context) error {
		obj, err := crds.Get(ctx, peerAuthCRD, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, cond := range conds {
			if m, ok := cond.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return errors.New("not established yet")
	})
}

// applyPeerAuthentication creates (or replaces the mode of) the
// PeerAuthentication ns/name with spec.mtls.mode mode and no selector: in
// the system namespace, the mesh-wide policy.
func applyPeerAuthentication(ctx context.Context, c *testenv.Cluster, ns, name, mode string) error {
	client, err := dynamic.NewForConfig(c.RESTConfig())
	if err != nil {
		return fmt.Errorf("cluster %s: dynamic client: %w", c.ID, err)
	}
	pas := client.Resource(peerAuthGVR).Namespace(ns)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1",
		"kind":       "PeerAuthentication",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       map[string]any{"mtls": map[string]any{"mode": mode}},
	}}
	if _, err := pas.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster %s: create PeerAuthentication %s/%s: %w", c.ID, ns, name, err)
		}
		cur, err := pas.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("cluster %s: get PeerAuthentication %s/%s: %w", c.ID, ns, name, err)
		}
		if err := unstructured.SetNestedField(cur.Object, mode, "spec", "mtls", "mode"); err != nil {
			return err
		}
		if _, err := pas.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("cluster %s: update PeerAuthentication %s/%s: %w", c.ID, ns, name, err)
		}
	}
	return nil
}

// peerAuthTimeout bounds how long a PeerAuthentication change may take to
// reach a workload's inbound (watch, publish, LDS): a deadline for a
// condition, not a speed assertion.
const peerAuthTimeout = 60 * time.Second
