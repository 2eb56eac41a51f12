package parity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
)

// Kinds of the facts of an injected pod ([PodFacts]).
const (
	KindLabel         = "label"
	KindAnnotation    = "annotation"
	KindInitContainer = "initContainer"
	KindContainer     = "container"
	KindVolume        = "volume"
	KindPodSpec       = "spec"
)

// maxPatchBytes bounds a patch ApplyPatch applies: an injector's patch of
// one pod is a few tens of KiB.
const maxPatchBytes = 4 << 20

// ApplyPatch applies an RFC 6902 JSON patch (an AdmissionResponse's
// Patch) to a pod's JSON, as the API server does, and decodes the result.
// An empty patch returns the pod unchanged.
func ApplyPatch(pod, patch []byte) (*corev1.Pod, error) {
	if len(patch) > maxPatchBytes {
		return nil, fmt.Errorf("patch of %d bytes, over %d", len(patch), maxPatchBytes)
	}
	out := pod
	if len(patch) > 0 {
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, fmt.Errorf("decode the JSON patch: %w", err)
		}
		if out, err = p.Apply(pod); err != nil {
			return nil, fmt.Errorf("apply the JSON patch: %w", err)
		}
	}
	var res corev1.Pod
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("decode the patched pod: %w", err)
	}
	return &res, nil
}

// PodFacts flattens what an injector decides about a pod into facts, so
// that two injectors' results can be compared with [Compare]:
//
//   - label/KEY and annotation/KEY;
//   - initContainer/NAME/... and container/NAME/..., each field of the
//     container, with index (its position) as a fact of its own;
//   - volume/NAME/... and spec/... for the rest of the pod spec.
//
// Lists whose items all have a name (env, ports, volume mounts) are keyed
// by it (env/PROXY_CONFIG), other lists are one fact in JSON (args). A
// string that holds a JSON object or array (PROXY_CONFIG,
// ISTIO_META_POD_PORTS, ISTIO_KUBE_APP_PROBERS, sidecar.istio.io/status) is
// flattened the same way, so that a difference names the key, not the
// whole value. The empty string is written "" so that it differs from an
// absent fact.
func PodFacts(pod *corev1.Pod) (Facts, error) {
	f := Facts{}
	for k, v := range pod.Labels {
		f.addValue(KindLabel+"/"+k, v)
	}
	for k, v := range pod.Annotations {
		f.addValue(KindAnnotation+"/"+k, v)
	}
	containers := []struct {
		kind string
		list []corev1.Container
	}{{KindInitContainer, pod.Spec.InitContainers}, {KindContainer, pod.Spec.Containers}}
	for _, cs := range containers {
		for i := range cs.list {
			c := &cs.list[i]
			prefix := cs.kind + "/" + c.Name
			f[prefix+"/index"] = strconv.Itoa(i)
			if err := f.addJSON(prefix, c, "name"); err != nil {
				return nil, err
			}
		}
	}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := f.addJSON(KindVolume+"/"+v.Name, v, "name"); err != nil {
			return nil, err
		}
	}
	if err := f.addJSON(KindPodSpec, &pod.Spec, "initContainers", "containers", "volumes"); err != nil {
		return nil, err
	}
	return f, nil
}

// addJSON adds the facts of v (encoded to JSON) under prefix, leaving out
// the keys skip (a name that is already in the prefix, lists with facts of
// their own).
func (f Facts) addJSON(prefix string, v any, skip ...string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", prefix, err)
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return fmt.Errorf("decode %s: %w", prefix, err)
	}
	for _, k := range skip {
		delete(tree, k)
	}
	f.flatten(prefix, tree)
	return nil
}

// addValue adds a string, flattened when it holds a JSON object or array.
func (f Facts) addValue(path, s string) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		var v any
		d := json.NewDecoder(strings.NewReader(t))
		d.UseNumber()
		if err := d.Decode(&v); err == nil && !d.More() {
			f.flatten(path, v)
			return
		}
	}
	if s == "" {
		s = `""`
	}
	f[path] = s
}

// flatten adds v's leaves under path: objects by key, lists of named
// objects by name, other lists as one JSON value.
func (f Facts) flatten(path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			f[path] = "{}"
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			f.flatten(path+"/"+k, v[k])
		}
	case []any:
		if names, ok := namedItems(v); ok {
			for i, item := range v {
				m := maps.Clone(item.(map[string]any))
				delete(m, "name")
				if len(m) == 0 {
					f[path+"/"+names[i]] = "{}"
					continue
				}
				f.flatten(path+"/"+names[i], m)
			}
			return
		}
		f[path] = canonicalJSON(v)
	case string:
		f.addValue(path, v)
	case nil:
		f[path] = "null"
	default:
		f[path] = canonicalJSON(v)
	}
}

// namedItems returns the names of a list whose items are all objects with
// a distinct, non-empty string name.
func namedItems(list []any) ([]string, bool) {
	if len(list) == 0 {
		return nil, false
	}
	names := make([]string, 0, len(list))
	seen := map[string]bool{}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || n == "" || seen[n] {
			return nil, false
		}
		seen[n] = true
		names = append(names, n)
	}
	return names, true
}

// canonicalJSON encodes v with sorted keys (encoding/json sorts map keys).
func canonicalJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
