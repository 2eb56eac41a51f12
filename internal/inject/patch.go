package inject

import (
	"bytes"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// PatchOp is one RFC 6902 operation.
type PatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Patch returns the JSON patch that turns from into to. It compares the
// fields injection changes (labels, annotations, init containers,
// containers, volumes, the pod security context) and sets each changed one
// whole with "add", which RFC 6902 defines to replace an existing member:
// coarse, but exact, and independent of the order of list items.
func Patch(from, to *corev1.Pod) ([]PatchOp, error) {
	fields := []struct {
		path     string
		old, new any
		empty    bool
	}{
		{"/metadata/labels", from.Labels, to.Labels, len(to.Labels) == 0},
		{"/metadata/annotations", from.Annotations, to.Annotations, len(to.Annotations) == 0},
		{"/spec/initContainers", from.Spec.InitContainers, to.Spec.InitContainers, len(to.Spec.InitContainers) == 0},
		{"/spec/containers", from.Spec.Containers, to.Spec.Containers, false},
		{"/spec/volumes", from.Spec.Volumes, to.Spec.Volumes, len(to.Spec.Volumes) == 0},
		{"/spec/securityContext", from.Spec.SecurityContext, to.Spec.SecurityContext, to.Spec.SecurityContext == nil},
	}
	var ops []PatchOp
	for _, f := range fields {
		o, err := json.Marshal(f.old)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.path, err)
		}
		n, err := json.Marshal(f.new)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", f.path, err)
		}
		if bytes.Equal(o, n) || f.empty {
			continue
		}
		ops = append(ops, PatchOp{Op: "add", Path: f.path, Value: n})
	}
	return ops, nil
}

// yamlToMap decodes a YAML or JSON object into m.
func yamlToMap(s string, m map[string]any) error {
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
