package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ChangeKind says how a value differs between two manifests.
type ChangeKind string

// The kinds of change, as `istioctl manifest diff` names them.
const (
	Added   ChangeKind = "ADDED"
	Removed ChangeKind = "REMOVED"
	Changed ChangeKind = "CHANGED"
)

// Empty stands for a value one side does not have.
const Empty = "<empty>"

// Change is one differing value of an object: its path (`a.b[#0].c`,
// with keys that are not plain words quoted: `labels["app.kubernetes.io/name"]`),
// the old and new values (scalars as they are, maps and lists as compact
// JSON, Empty when absent) and the kind of change.
type Change struct {
	Path string     `json:"path"`
	Old  string     `json:"old"`
	New  string     `json:"new"`
	Kind ChangeKind `json:"kind"`
}

// ObjectDiff lists the changes of one object present in both manifests.
type ObjectDiff struct {
	// Object is the key Kind:namespace:name (namespace empty for
	// cluster-scoped objects).
	Object  string   `json:"object"`
	Changes []Change `json:"changes"`
}

// ManifestDiff is the object-level difference between two manifests.
type ManifestDiff struct {
	// OnlyInA and OnlyInB are the keys of objects only one side has,
	// sorted.
	OnlyInA []string `json:"onlyInA,omitempty"`
	OnlyInB []string `json:"onlyInB,omitempty"`
	// Changed are the objects both have that differ, sorted by key.
	Changed []ObjectDiff `json:"changed,omitempty"`
}

// Equal reports whether the manifests hold the same objects with the same
// content.
func (d *ManifestDiff) Equal() bool {
	return len(d.OnlyInA) == 0 && len(d.OnlyInB) == 0 && len(d.Changed) == 0
}

// Diff compares two manifests (YAML or JSON streams, documents separated
// by "---", `kind: List` expanded) object by object, keyed by
// Kind:namespace:name. Lists are compared element by element (`[#i]`);
// strings that both hold YAML or JSON objects (such as a ConfigMap's
// embedded mesh config) are compared as those objects.
func Diff(a, b []byte) (*ManifestDiff, error) {
	objsA, err := parseObjects(a)
	if err != nil {
		return nil, fmt.Errorf("first manifest: %w", err)
	}
	objsB, err := parseObjects(b)
	if err != nil {
		return nil, fmt.Errorf("second manifest: %w", err)
	}
	d := &ManifestDiff{}
	for _, k := range slices.Sorted(maps.Keys(objsA)) {
		ob, ok := objsB[k]
		if !ok {
			d.OnlyInA = append(d.OnlyInA, k)
			continue
		}
		var changes []Change
		diffValue("", objsA[k], ob, &changes)
		if len(changes) > 0 {
			d.Changed = append(d.Changed, ObjectDiff{Object: k, Changes: changes})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(objsB)) {
		if _, ok := objsA[k]; !ok {
			d.OnlyInB = append(d.OnlyInB, k)
		}
	}
	return d, nil
}

// Write prints the difference as `istioctl manifest diff` does, naming the
// manifests nameA and nameB.
func (d *ManifestDiff) Write(w io.Writer, nameA, nameB string) error {
	var buf bytes.Buffer
	if d.Equal() {
		buf.WriteString("Manifests are identical\n")
		_, err := w.Write(buf.Bytes())
		return err
	}
	buf.WriteString("Differences in manifests are:\n")
	if len(d.OnlyInA) > 0 {
		fmt.Fprintf(&buf, "\nObjects only in %s:\n", nameA)
		for _, k := range d.OnlyInA {
			fmt.Fprintf(&buf, "  %s\n", k)
		}
	}
	if len(d.OnlyInB) > 0 {
		fmt.Fprintf(&buf, "\nObjects only in %s:\n", nameB)
		for _, k := range d.OnlyInB {
			fmt.Fprintf(&buf, "  %s\n", k)
		}
	}
	for _, od := range d.Changed {
		fmt.Fprintf(&buf, "\nObject %s has diffs:\n", od.Object)
		for _, c := range od.Changes {
			fmt.Fprintf(&buf, "  %s: %s -> %s (%s)\n", c.Path, c.Old, c.New, c.Kind)
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// parseObjects reads every object of a manifest, keyed by
// Kind:namespace:name.
func parseObjects(data []byte) (map[string]map[string]any, error) {
	objs := map[string]map[string]any{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj, useNumber); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(obj) == 0 {
			continue // empty document or only comments
		}
		items := []any{obj}
		if obj["kind"] == "List" {
			items, _ = obj["items"].([]any)
		}
		for i, it := range items {
			o, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("document %d, item %d: not an object", doc, i)
			}
			key, err := objectKey(o)
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			if _, dup := objs[key]; dup {
				return nil, fmt.Errorf("document %d: object %s appears twice", doc, key)
			}
			objs[key] = o
		}
	}
}

func useNumber(d *json.Decoder) *json.Decoder {
	d.UseNumber()
	return d
}

// objectKey is Kind:namespace:name.
func objectKey(o map[string]any) (string, error) {
	kind, _ := o["kind"].(string)
	meta, _ := o["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if kind == "" || name == "" {
		return "", fmt.Errorf("an object without kind or metadata.name (kind %q, name %q)", kind, name)
	}
	return kind + ":" + ns + ":" + name, nil
}

// plainKey is a map key written after a dot without quotes.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func joinKey(path, key string) string {
	if !plainKey.MatchString(key) {
		q, _ := json.Marshal(key)
		return path + "[" + string(q) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// diffValue appends the changes between a and b at path.
func diffValue(path string, a, b any, out *[]Change) {
	switch x := a.(type) {
	case map[string]any:
		if y, ok := b.(map[string]any); ok {
			diffMaps(path, x, y, out)
			return
		}
	case []any:
		if y, ok := b.([]any); ok {
			for i := range max(len(x), len(y)) {
				p := fmt.Sprintf("%s[#%d]", path, i)
				switch {
				case i >= len(y):
					*out = append(*out, Change{Path: p, Old: format(x[i]), New: Empty, Kind: Removed})
				case i >= len(x):
					*out = append(*out, Change{Path: p, Old: Empty, New: format(y[i]), Kind: Added})
				default:
					diffValue(p, x[i], y[i], out)
				}
			}
			return
		}
	case string:
		if y, ok := b.(string); ok && x != y {
			if mx, my := embeddedObject(x), embeddedObject(y); mx != nil && my != nil {
				diffMaps(path, mx, my, out)
				return
			}
		}
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, Change{Path: path, Old: format(a), New: format(b), Kind: Changed})
	}
}

func diffMaps(path string, x, y map[string]any, out *[]Change) {
	keys := slices.Collect(maps.Keys(x))
	for k := range y {
		if _, ok := x[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := joinKey(path, k)
		va, inA := x[k]
		vb, inB := y[k]
		switch {
		case !inB:
			*out = append(*out, Change{Path: p, Old: format(va), New: Empty, Kind: Removed})
		case !inA:
			*out = append(*out, Change{Path: p, Old: Empty, New: format(vb), Kind: Added})
		default:
			diffValue(p, va, vb, out)
		}
	}
}

// embeddedObject parses a multi-line string that holds a YAML or JSON
// object; nil otherwise.
func embeddedObject(s string) map[string]any {
	if !strings.Contains(s, "\n") {
		return nil
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m, useNumber); err != nil || len(m) == 0 {
		return nil
	}
	return m
}

// format writes a value on one line: scalars as they are (strings quoted
// when empty, multi-line or looking like another scalar), maps and lists
// as compact JSON.
func format(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		// Quoted when it would read as something else: empty, several
		// lines, or a number, boolean or null.
		if x == "" || strings.ContainsAny(x, "\n\r") || json.Valid([]byte(x)) {
			q, _ := json.Marshal(x)
			return string(q)
		}
		return x
	case json.Number:
		return x.String()
	case bool:
		return fmt.Sprint(x)
	default:
		data, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(data)
	}
}
