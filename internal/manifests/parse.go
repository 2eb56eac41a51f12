package manifests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
)

// The kinds a manifest may hold, and the apiVersion each must carry.
var kinds = [...]struct{ kind, apiVersion string }{
	{"Namespace", "v1"},
	{"Service", "v1"},
	{"EndpointSlice", "discovery.k8s.io/v1"},
	{"Pod", "v1"},
	{"Node", "v1"},
	{"List", "v1"},
}

const acceptedKinds = "Namespace, Service, EndpointSlice, Pod, Node (v1, EndpointSlice discovery.k8s.io/v1) or a List of them"

// object is one Kubernetes object of a manifest file, converted.
type object struct {
	doc  int // 1-based document in the file
	item int // 1-based item of a List, 0 outside one
	line int // first line of the document
	kind string
	// name is NS/NAME for namespaced kinds, NAME for the others.
	name string
	// value is a *model.Namespace, *model.Service, *model.EndpointSlice,
	// *model.Pod or *model.Node.
	value any
}

// where is the position of o for messages: "line 12, document 2, item 3".
func (o *object) where() string {
	s := "line " + strconv.Itoa(o.line) + ", document " + strconv.Itoa(o.doc)
	if o.item > 0 {
		s += ", item " + strconv.Itoa(o.item)
	}
	return s
}

// docError is an error about one document of a file.
type docError struct {
	doc, item, line int
	err             error
}

func (e *docError) Error() string {
	o := object{doc: e.doc, item: e.item, line: e.line}
	return o.where() + ": " + e.err.Error()
}

func (e *docError) Unwrap() error { return e.err }

// parseManifest parses one manifest file of cluster: YAML or JSON, several
// documents separated by "---" lines, each a Namespace, Service,
// EndpointSlice, Pod, Node or a List of them. Empty documents are skipped.
// Objects of other kinds are returned as *Skipped.
// Errors say where (line, document, List item) and what. It stops with
// ctx's error once ctx is done.
func parseManifest(ctx context.Context, cluster model.ClusterID, data []byte) ([]object, error) {
	var out []object
	for i, d := range splitDocuments(data) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		doc := i + 1
		js, err := yaml.YAMLToJSONStrict(d.data)
		if err != nil {
			line, msg := yamlError(err, d.line)
			return nil, &docError{doc: doc, line: line, err: errors.New("not valid YAML: " + msg)}
		}
		js = bytes.TrimSpace(js)
		if len(js) == 0 || string(js) == "null" {
			continue
		}
		objs, err := decodeObject(cluster, js, false)
		if err != nil {
			if ie, ok := errors.AsType[*itemError](err); ok {
				return nil, &docError{doc: doc, item: ie.item, line: d.line, err: ie.err}
			}
			return nil, &docError{doc: doc, line: d.line, err: err}
		}
		for j := range objs {
			objs[j].doc, objs[j].line = doc, d.line
		}
		out = append(out, objs...)
	}
	return out, nil
}

// itemError is an error about one item of a List.
type itemError struct {
	item int
	err  error
}

func (e *itemError) Error() string { return "item " + strconv.Itoa(e.item) + ": " + e.err.Error() }
func (e *itemError) Unwrap() error { return e.err }

// document is one YAML document of a file and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments splits a YAML stream into documents at the markers YAML
// defines: a line starting with "---" (what follows on that line begins the
// next document) or "..." (document end). Blank documents are left out. It
// keeps the starting line of each document, which apimachinery's YAML reader
// does not report, and leaves no marker inside a document (the YAML decoder
// would silently read only the first of several).
func splitDocuments(data []byte) []document {
	var docs []document
	add := func(d []byte, line int) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, document{line: line, data: d})
		}
	}
	start, startLine, line := 0, 1, 1
	for pos := 0; pos < len(data); line++ {
		next := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		switch l := data[pos:next]; {
		case marker(l, "---"):
			add(data[start:pos], startLine)
			start, startLine = pos+3, line
			if rest := bytes.TrimSpace(l[3:]); len(rest) == 0 || rest[0] == '#' {
				start, startLine = next, line+1
			}
		case marker(l, "..."):
			add(data[start:pos], startLine)
			start, startLine = next, line+1
		}
		pos = next
	}
	add(data[start:], startLine)
	return docs
}

// marker reports whether line starts with the YAML marker m followed by a
// blank or the end of the line.
func marker(line []byte, m string) bool {
	rest, ok := bytes.CutPrefix(line, []byte(m))
	return ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n')
}

// yamlError turns the YAML decoder's error, which counts lines from the
// start of the document, into one that names the line of the file.
func yamlError(err error, docLine int) (line int, msg string) {
	msg = err.Error()
	const tag = "yaml: line "
	i := strings.Index(msg, tag)
	if i < 0 {
		return docLine, msg
	}
	rest := msg[i+len(tag):]
	digits, after, ok := strings.Cut(rest, ": ")
	n, convErr := strconv.Atoi(digits)
	if !ok || convErr != nil || n < 1 {
		return docLine, msg
	}
	return docLine + n - 1, after
}

// typeMeta is what every object starts with.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// decodeObject decodes one object (JSON) into converted objects: one, or
// the items of a List. A kind the model does not read (or another API
// group's kind of the same name) is skipped; a kind it reads must have its
// apiVersion and is decoded strictly.
func decodeObject(cluster model.ClusterID, js []byte, inList bool) ([]object, error) {
	if js[0] != '{' {
		return nil, errors.New("not a Kubernetes object: want a map with apiVersion, kind and metadata")
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, fmt.Errorf("apiVersion and kind: %w", err)
	}
	if tm.Kind == "" {
		return nil, errors.New("kind is missing: want one of " + acceptedKinds)
	}
	read, err := kindRead(tm)
	if err != nil {
		return nil, err
	}
	if !read {
		return skippedObject(tm, js)
	}
	switch tm.Kind {
	case "List":
		if inList {
			return nil, errors.New("a List inside a List is not accepted: list the objects themselves")
		}
		return decodeList(cluster, js)
	case "Namespace":
		return decodeNamespace(cluster, js)
	case "Node":
		return decodeNode(cluster, js)
	case "Pod":
		return decodePod(cluster, js)
	case "Service":
		return decodeService(cluster, js)
	default: // EndpointSlice
		return decodeEndpointSlice(cluster, js)
	}
}

// kindRead reports whether the model reads objects of tm's kind and API
// group. A kind it reads, in its group, with another apiVersion is an
// error.
func kindRead(tm typeMeta) (bool, error) {
	known := false
	for _, k := range kinds {
		if k.kind != tm.Kind {
			continue
		}
		if tm.APIVersion != k.apiVersion {
			if apiGroup(tm.APIVersion) != apiGroup(k.apiVersion) {
				// Another API group's kind of the same name (a Knative
				// Service, say): not one the model reads.
				return false, nil
			}
			return false, fmt.Errorf("kind %s wants apiVersion %s, not %q", tm.Kind, k.apiVersion, tm.APIVersion)
		}
		known = true
	}
	return known, nil
}

// decodeList decodes the items of a List, each numbered for errors; an
// empty item is refused.
func decodeList(cluster model.ClusterID, js []byte) ([]object, error) {
	var l struct {
		typeMeta
		Metadata json.RawMessage   `json:"metadata"`
		Items    []json.RawMessage `json:"items"`
	}
	if err := decodeStrict(js, &l); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	out := make([]object, 0, len(l.Items))
	for i, it := range l.Items {
		it = bytes.TrimSpace(it)
		if len(it) == 0 || string(it) == "null" {
			return nil, &itemError{item: i + 1, err: errors.New("empty item: remove it")}
		}
		objs, err := decodeObject(cluster, it, true)
		if err != nil {
			return nil, &itemError{item: i + 1, err: err}
		}
		objs[0].item = i + 1
		out = append(out, objs[0])
	}
	return out, nil
}

// decodeNamespace decodes a named Namespace.
func decodeNamespace(cluster model.ClusterID, js []byte) ([]object, error) {
	var ns corev1.Namespace
	if err := decodeStrict(js, &ns); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	if ns.Name == "" {
		return nil, errors.New("namespace: metadata.name is empty: name it")
	}
	return one("Namespace", ns.Name, kubeconv.Namespace(cluster, &ns)), nil
}

// decodeNode decodes a named Node whose internal and external addresses
// are IP addresses.
func decodeNode(cluster model.ClusterID, js []byte) ([]object, error) {
	var n corev1.Node
	if err := decodeStrict(js, &n); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.Name == "" {
		return nil, errors.New("node: metadata.name is empty: name it")
	}
	for i, a := range n.Status.Addresses {
		if a.Type != corev1.NodeExternalIP && a.Type != corev1.NodeInternalIP {
			continue
		}
		if _, err := netip.ParseAddr(a.Address); err != nil {
			return nil, fmt.Errorf("node %s: status.addresses[%d] (%s) %q is not an IP address", n.Name, i, a.Type, a.Address)
		}
	}
	return one("Node", n.Name, kubeconv.Node(cluster, &n)), nil
}

// decodePod decodes a namespaced Pod whose pod IPs are IP addresses.
func decodePod(cluster model.ClusterID, js []byte) ([]object, error) {
	var p corev1.Pod
	if err := decodeStrict(js, &p); err != nil {
		return nil, fmt.Errorf("pod: %w", err)
	}
	name, err := namespaced("pod", p.Namespace, p.Name)
	if err != nil {
		return nil, err
	}
	for i, ip := range p.Status.PodIPs {
		if _, err := netip.ParseAddr(ip.IP); err != nil {
			return nil, fmt.Errorf("pod %s: status.podIPs[%d] %q is not an IP address", name, i, ip.IP)
		}
	}
	if ip := p.Status.PodIP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("pod %s: status.podIP %q is not an IP address", name, ip)
		}
	}
	return one("Pod", name, kubeconv.Pod(cluster, &p)), nil
}

// decodeService decodes a namespaced Service with ports, refusing a bad
// gateway label or annotation.
func decodeService(cluster model.ClusterID, js []byte) ([]object, error) {
	var s corev1.Service
	if err := decodeStrict(js, &s); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	name, err := namespaced("service", s.Namespace, s.Name)
	if err != nil {
		return nil, err
	}
	if len(s.Spec.Ports) == 0 {
		return nil, fmt.Errorf("service %s has no ports: add spec.ports (the mesh routes services by port)", name)
	}
	ms, err := kubeconv.Service(cluster, &s)
	if err != nil {
		return nil, err
	}
	// Live discovery ignores a bad gateway label or annotation (as
	// Istio does) and warns; a manifest is checked input, so the
	// loader refuses it and says where it is.
	if len(ms.Ignored) > 0 {
		return nil, fmt.Errorf("service %s/%s/%s: %s", cluster, ms.Namespace, ms.Name, ms.Ignored[0])
	}
	return one("Service", name, ms), nil
}

// decodeEndpointSlice decodes a namespaced EndpointSlice.
func decodeEndpointSlice(cluster model.ClusterID, js []byte) ([]object, error) {
	var es discoveryv1.EndpointSlice
	if err := decodeStrict(js, &es); err != nil {
		return nil, fmt.Errorf("endpointslice: %w", err)
	}
	name, err := namespaced("endpointslice", es.Namespace, es.Name)
	if err != nil {
		return nil, err
	}
	mes, err := kubeconv.EndpointSlice(cluster, &es)
	if err != nil {
		return nil, err
	}
	return one("EndpointSlice", name, mes), nil
}

// Skipped is the value of an object of a kind the model does not read
// (ServiceAccount, Deployment, ConfigMap, an Istio CR, ...): it is counted
// and otherwise left alone.
type Skipped struct{ Kind string }

// skippedObject checks that js is a Kubernetes object (apiVersion, kind and
// a metadata.name or generateName) of a kind the model does not read, and
// returns it as skipped. Anything else is an error: a document without a
// name is a mistake whatever its kind.
func skippedObject(tm typeMeta, js []byte) ([]object, error) {
	if tm.APIVersion == "" {
		return nil, fmt.Errorf("kind %s has no apiVersion: not a Kubernetes object", tm.Kind)
	}
	var m struct {
		Metadata struct {
			Name         string `json:"name"`
			GenerateName string `json:"generateName"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("%s metadata: %w", tm.Kind, err)
	}
	if m.Metadata.Name == "" && m.Metadata.GenerateName == "" {
		return nil, fmt.Errorf("%s (%s) has no metadata.name: not a Kubernetes object", tm.Kind, tm.APIVersion)
	}
	return one(tm.Kind, m.Metadata.Name, &Skipped{Kind: tm.Kind}), nil
}

// apiGroup is the group of an apiVersion: "" for the core group ("v1").
func apiGroup(apiVersion string) string {
	g, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return ""
	}
	return g
}

func one(kind, name string, v any) []object {
	return []object{{kind: kind, name: name, value: v}}
}

func namespaced(kind, ns, name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%s: metadata.name is empty: name it", kind)
	case ns == "":
		return "", fmt.Errorf("%s %s: metadata.namespace is empty: set it (manifests are read without a kubectl context)", kind, name)
	}
	return ns + "/" + name, nil
}

// decodeStrict decodes JSON into v, refusing fields v does not have (a
// misspelled field would otherwise be silently ignored).
func decodeStrict(js []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}
