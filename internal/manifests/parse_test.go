package manifests

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestSplitDocuments(t *testing.T) {
	type doc struct {
		Line int
		Data string
	}
	tests := []struct {
		name string
		in   string
		want []doc
	}{
		{"empty", "", nil},
		{"one without separator", "a: 1\nb: 2\n", []doc{{1, "a: 1\nb: 2\n"}}},
		{"leading separator", "---\na: 1\n", []doc{{2, "a: 1\n"}}},
		{"two, comment after separator, no final newline", "a: 1\n--- # next\nb: 2", []doc{{1, "a: 1\n"}, {3, "b: 2"}}},
		{"blank documents dropped", "---\n\n---\n  \n---\na: 1\n---\n", []doc{{6, "a: 1\n"}}},
		{"separator-like lines kept", "a: ---\n----\n...x\n", []doc{{1, "a: ---\n----\n...x\n"}}},
		{"content after the marker starts the next document", "a: 1\n--- b: 2\nc: 3\n", []doc{{1, "a: 1\n"}, {2, " b: 2\nc: 3\n"}}},
		{"document end marker", "a: 1\n...\nb: 2\n... # end\n", []doc{{1, "a: 1\n"}, {3, "b: 2\n"}}},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []doc{{1, "a: 1\r\n"}, {3, "b: 2\r\n"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []doc
			for _, d := range splitDocuments([]byte(tc.in)) {
				got = append(got, doc{d.line, string(d.data)})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("splitDocuments (-want +got):\n%s", diff)
			}
		})
	}
}

const helloworldYAML = `# the helloworld service of cluster c
apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: sample
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 5000
    targetPort: 5000
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: helloworld-x1
  namespace: sample
  labels:
    kubernetes.io/service-name: helloworld
addressType: IPv4
ports:
- name: http
  port: 5000
  protocol: TCP
endpoints:
- addresses: ["10.10.1.20"]
  conditions: {ready: true}
  nodeName: n1
  targetRef: {kind: Pod, namespace: sample, name: helloworld-v1}
`

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []object
	}{
		{
			name: "service and slice",
			in:   helloworldYAML,
			want: []object{
				{doc: 1, line: 1, kind: "Service", name: "sample/helloworld", value: &model.Service{
					Cluster: "c", Namespace: "sample", Name: "helloworld", Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.10",
					Ports: []model.ServicePort{{Name: "http", Port: 5000, TargetPort: 5000}},
				}},
				{doc: 2, line: 14, kind: "EndpointSlice", name: "sample/helloworld-x1", value: &model.EndpointSlice{
					Cluster: "c", Namespace: "sample", Name: "helloworld-x1", ServiceName: "helloworld",
					Ports: []model.EndpointPort{{Name: "http", Port: 5000, Protocol: "TCP"}},
					Endpoints: []model.SliceEndpoint{{
						Addresses: []string{"10.10.1.20"}, Ready: true, NodeName: "n1", Pod: "helloworld-v1",
					}},
				}},
			},
		},
		{
			name: "JSON List of a namespace, a node and a pod",
			in: `{"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system", "labels": {"topology.istio.io/network": "network1"}}},
  {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}},
   "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.11"}, {"type": "Hostname", "address": "n1"}]}},
  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleep-1", "namespace": "sample", "labels": {"security.istio.io/tlsMode": "istio"}},
   "spec": {"serviceAccountName": "sleep", "nodeName": "n1", "containers": [{"name": "sleep", "image": "curl"}]},
   "status": {"podIP": "10.10.1.30"}}
]}`,
			want: []object{
				{doc: 1, item: 1, line: 1, kind: "Namespace", name: "istio-system", value: &model.Namespace{Cluster: "c", Name: "istio-system", Network: "network1"}},
				{doc: 1, item: 2, line: 1, kind: "Node", name: "n1", value: &model.Node{
					Cluster: "c", Name: "n1", Labels: map[string]string{model.LabelZone: "z1"}, InternalIPs: []string{"192.168.1.11"},
				}},
				{doc: 1, item: 3, line: 1, kind: "Pod", name: "sample/sleep-1", value: &model.Pod{
					Cluster: "c", Namespace: "sample", Name: "sleep-1", IPs: []string{"10.10.1.30"}, TLSMode: "istio", ServiceAccount: "sleep", NodeName: "n1",
					Labels: map[string]string{model.LabelTLSMode: "istio"},
				}},
			},
		},
		{
			name: "comment-only and empty documents are skipped",
			in:   "# nothing here\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: sample}\n",
			want: []object{{doc: 2, line: 4, kind: "Namespace", name: "sample", value: &model.Namespace{Cluster: "c", Name: "sample"}}},
		},
		{name: "empty file", in: "", want: nil},
		{name: "empty List", in: "apiVersion: v1\nkind: List\nitems: []\n", want: []object{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseManifest(t.Context(), "c", []byte(tc.in))
			if err != nil {
				t.Fatalf("parseManifest: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(object{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("parseManifest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseManifestErrors(t *testing.T) {
	svc := func(extra string) string {
		return "apiVersion: v1\nkind: Service\nmetadata:\n  name: gw\n  namespace: istio-system\n" + extra
	}
	const ports = "spec:\n  ports:\n  - {name: tls, port: 15443}\n"
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error, in order
	}{
		{"unparsable YAML", "apiVersion: v1\nkind: [Service\n", []string{"line 2, document 1", "not valid YAML"}},
		{"unparsable second document", svc(ports) + "---\nkind: Pod\n  bad: indent\n", []string{"line 11, document 2", "not valid YAML: mapping values"}},
		{"duplicate YAML key", "apiVersion: v1\nkind: Namespace\nkind: Namespace\nmetadata: {name: x}\n", []string{"document 1", "not valid YAML", "kind"}},
		{"not a map", "- a\n- b\n", []string{"document 1", "not a Kubernetes object"}},
		{"scalar", "hello\n", []string{"not a Kubernetes object"}},
		{"missing kind", "apiVersion: v1\nmetadata: {name: x}\n", []string{"kind is missing", "Namespace, Service, EndpointSlice, Pod, Node"}},
		{"other kind without a name", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\n", []string{"Deployment (apps/v1) has no metadata.name", "not a Kubernetes object"}},
		{"other kind without apiVersion", "kind: Deployment\nmetadata: {name: x}\n", []string{"kind Deployment has no apiVersion"}},
		{"wrong apiVersion", "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\n", []string{"kind EndpointSlice wants apiVersion discovery.k8s.io/v1", `"discovery.k8s.io/v1beta1"`}},
		{"kind not a string", "apiVersion: v1\nkind: 5\n", []string{"apiVersion and kind"}},
		{"service without ports", svc("spec:\n  type: ClusterIP\n"), []string{"service istio-system/gw has no ports", "spec.ports"}},
		{"misspelled field", svc("spec:\n  prots: []\n"), []string{"service: ", `unknown field "prots"`}},
		{"wrong field type", svc("spec:\n  ports:\n  - {name: tls, port: tls}\n"), []string{"service: ", "port"}},
		{"bad gateway port label", "apiVersion: v1\nkind: Service\nmetadata:\n  name: gw\n  namespace: istio-system\n  labels: {networking.istio.io/gatewayPort: tls}\n" + ports,
			[]string{"document 1", "service c/istio-system/gw", "networking.istio.io/gatewayPort"}},
		{"bad node selector", "apiVersion: v1\nkind: Service\nmetadata:\n  name: gw\n  namespace: istio-system\n  annotations: {traffic.istio.io/nodeSelector: 'os=linux'}\n" + ports,
			[]string{"service c/istio-system/gw", "traffic.istio.io/nodeSelector", "JSON map"}},
		{"service without namespace", "apiVersion: v1\nkind: Service\nmetadata: {name: gw}\n" + ports, []string{"service gw: metadata.namespace is empty"}},
		{"service without name", "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n" + ports, []string{"service: metadata.name is empty"}},
		{"namespace without name", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", []string{"namespace: metadata.name is empty"}},
		{"node without name", "apiVersion: v1\nkind: Node\n", []string{"node: metadata.name is empty"}},
		{"node bad address", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses: [{type: InternalIP, address: n1.lan}]\n",
			[]string{"node n1: status.addresses[0] (InternalIP)", `"n1.lan"`}},
		{"pod bad podIPs", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: s}\nstatus: {podIPs: [{ip: 10.1.1}]}\n",
			[]string{"pod s/p: status.podIPs[0]", `"10.1.1"`}},
		{"pod bad podIP", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: s}\nstatus: {podIP: x}\n",
			[]string{"pod s/p: status.podIP", `"x"`}},
		{"pod without namespace", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", []string{"pod p: metadata.namespace is empty"}},
		{"slice without service label", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s1, namespace: sample}\naddressType: IPv4\n",
			[]string{"endpointslice c/sample/s1", "kubernetes.io/service-name"}},
		{"slice bad address", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s1, namespace: sample, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nendpoints: [{addresses: [a.b]}]\n",
			[]string{"endpointslice c/sample/s1", `"a.b"`}},
		{"nested List", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n", []string{"document 1, item 1", "List inside a List"}},
		{"bad List item", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n",
			[]string{"line 1, document 1, item 2", "Secret (v1) has no metadata.name"}},
		{"null List item", "apiVersion: v1\nkind: List\nitems: [null]\n", []string{"item 1", "empty item"}},
		{"List with unknown field", "apiVersion: v1\nkind: List\nobjects: []\n", []string{"list: ", `unknown field "objects"`}},
		{"content after the marker is a document", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- b: 1\n", []string{"line 4, document 2", "kind is missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseManifest(t.Context(), "c", []byte(tc.in))
			if err == nil {
				t.Fatalf("parseManifest = %+v, want an error", got)
			}
			testkit.ContainsInOrder(t, "error", err.Error(), tc.want...)
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		helloworldYAML,
		"",
		"---\n---\n",
		`{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}}]}`,
		"apiVersion: v1\nkind: Service\nmetadata: {name: gw, namespace: istio-system, labels: {networking.istio.io/gatewayPort: '15443', topology.istio.io/network: n1}, annotations: {traffic.istio.io/nodeSelector: '{\"a\": \"b\"}'}}\nspec: {type: NodePort, ports: [{name: tls, port: 15443, nodePort: 31443, targetPort: tls}]}\nstatus: {loadBalancer: {ingress: [{ip: 192.168.1.240}, {hostname: gw.example}]}}\n",
		"apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/region: r}}\nstatus: {addresses: [{type: ExternalIP, address: 203.0.113.1}, {type: InternalIP, address: 'fd00::1'}]}\n",
		"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, namespace: n, labels: {kubernetes.io/service-name: a}}\naddressType: IPv6\nports: [{port: 1}, {}]\nendpoints: [{addresses: ['fd00::2'], conditions: {ready: false}, zone: z}]\n",
		"a: &a [*a]\n",
		"apiVersion: v1\nkind: List\nitems: [1, 'x', null]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := parseManifest(t.Context(), "c", data)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.kind == "" || o.name == "" || o.value == nil || o.doc < 1 || o.line < 1 {
				t.Errorf("incomplete object %+v", o)
			}
		}
	})
}
