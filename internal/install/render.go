package install

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Render writes objects as one YAML stream, documents separated by "---",
// in the given order, every mapping's keys sorted: the same objects always
// give the same bytes. Fields a server fills (metadata.creationTimestamp,
// status) are left out. A non-empty header becomes a comment
// line at the top.
func Render(objs []Object, header string) ([]byte, error) {
	var buf bytes.Buffer
	if header != "" {
		fmt.Fprintf(&buf, "# %s\n", header)
	}
	for i, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, fmt.Errorf("render %s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		// Status is the server's; a generated object has none.
		delete(m, "status")
		if spec, ok := m["spec"].(map[string]any); ok && len(spec) == 0 {
			delete(m, "spec") // a Namespace's
		}
		prune(m)
		data, err := yaml.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("render %s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

// prune removes, at any depth, the creationTimestamp: null the typed
// ObjectMeta leaves in every metadata (and pod template). Empty maps stay:
// some mean something (emptyDir: {}).
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			if k == "creationTimestamp" {
				delete(m, k)
			}
		case map[string]any:
			prune(x)
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}
