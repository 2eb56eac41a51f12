package parity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
	xp "github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

const (
	// injectTablePath is the injection's table of deliberate differences.
	injectTablePath = "../../docs/injection.md"
	// Istio's injection template and its chart's values, in the module
	// tools/istio pins (tools/istio/build.sh also copies them beside
	// pilot-discovery).
	istioTemplateFile = "manifests/charts/istio-control/istio-discovery/files/injection-template.yaml"
	istioValuesFile   = "manifests/charts/istio-control/istio-discovery/values.yaml"
	// injectReportEnv names a file the injection report is also written to.
	injectReportEnv = "CAUSEWAY_INJECT_PARITY_REPORT"
	// maxReviewResponse bounds an injector's answer read.
	maxReviewResponse = 8 << 20
)

// The values both injectors get.
const (
	injHub         = "docker.io/istio"
	injTag         = "1.31.4"
	injCluster     = "cluster1"
	injNetwork     = "network1"
	injMeshID      = "mesh1"
	injTrustDomain = "mesh.example"
	injNamespace   = "apps"
)

// injectCase is a pod both injectors are asked about.
type injectCase struct {
	name string
	// path is the webhook path; empty is /inject.
	path string
	pod  corev1.Pod
	// reinject names an earlier case: the pod is istiod's injected pod
	// of that case, sent again (a reinvoked webhook, a re-created pod).
	reinject string
	// skipped: istiod leaves the pod without a sidecar; refused: istiod
	// refuses it.
	skipped, refused bool
	// native: in a setup of automatic native sidecars, istiod makes
	// istio-proxy a native sidecar.
	native bool
}

// TestInjectionParityWithIstiod is the parity proof of issue 16's
// injection: the same AdmissionReviews go to istiod's injector (Istio's
// own template and chart values, read from the pinned module) and to
// Causeway's, with the same values; each answer's JSON patch is applied to
// the pod, the result is defaulted by the real API server (a dry-run
// create, as admission would store it), and the two pods are compared
// field by field. Every difference must be a row of the table of
// deliberate differences in docs/injection.md.
func TestInjectionParityWithIstiod(t *testing.T) {
	testreq.NotShort(t, "injection parity test: starts a kube-apiserver and istiod")
	bins := testenv.RequireIstio(t)
	testenv.RequireBinaries(t, false)
	table := loadInjectTable(t)
	tmpl := testenv.RequireIstioFile(t, "injection-template.yaml", istioTemplateFile)
	chartValues := testenv.RequireIstioFile(t, "injection-values.yaml", istioValuesFile)

	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{injCluster}})
	c := env.Clusters[0]
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := c.InstallCRDs(ctx, bins.CRDs); err != nil {
		t.Fatal(err)
	}
	cs := c.Client()
	for _, ns := range []string{systemNamespace, injNamespace} {
		if _, err := testenv.CreateNamespace(ctx, cs, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	var all []xp.Difference
	for _, setup := range injectSetups() {
		all = append(all, compareInjectors(ctx, t, env, bins, setup, string(tmpl), chartValues)...)
	}
	unexplained, gaps, used := table.Explain(all)
	report := injectReport(all, unexplained, gaps, used, table)
	if f := os.Getenv(injectReportEnv); f != "" {
		if err := os.WriteFile(f, []byte(report), 0o600); err != nil {
			t.Errorf("write %s: %v", f, err)
		}
	}
	t.Log("\n" + report)
	if len(unexplained) > 0 {
		t.Errorf("%d injection difference(s) from istiod that no row of %s explains: fix Causeway's injector, or add a row with the reason", len(unexplained), injectTablePath)
	}
	if stale := table.StaleGaps(used); len(stale) > 0 {
		t.Errorf("known gaps of %s that match nothing any more (closed: delete their rows): %s", injectTablePath, strings.Join(stale, ", "))
	}
	for _, r := range table.Rows {
		if used[r.ID] == 0 {
			t.Errorf("deliberate difference %s of %s matches nothing: delete the row, or add the case that shows it", r.ID, injectTablePath)
		}
	}
}

// injectSetup is one configuration both injectors run with, and the
// cases compared under it.
type injectSetup struct {
	// name prefixes the names of its cases in the report.
	name string
	// revision is the control plane revision ("" is default).
	revision string
	// cni turns on Istio's CNI mode (values pilot.cni.enabled) and
	// Causeway's --injection-cni.
	cni bool
	// nativeAuto leaves istiod's ENABLE_NATIVE_SIDECARS at its default,
	// auto (native sidecars when every kubelet, or the pod's node's, is
	// 1.33 or newer), and Causeway's --native-sidecars at its default,
	// auto: the model's decision from the cluster's Nodes.
	nativeAuto bool
	// kubelets are the Nodes of the cluster and their kubelet versions,
	// set before istiod starts. Nodes stay for the later setups.
	kubelets map[string]string
	cases    []injectCase
}

// injectSetups are the configurations compared: Istio's defaults with
// every case, then a revision with CNI on a few.
func injectSetups() []injectSetup {
	cases := injectCases()
	some := func(names ...string) []injectCase {
		var out []injectCase
		for i := range cases {
			if slices.Contains(names, cases[i].name) {
				out = append(out, cases[i])
			}
		}
		return out
	}
	// onNode is the plain pod scheduled on node (spec.nodeName), or not
	// (empty node); native is what istiod must decide for it.
	onNode := func(name, node string, native bool) injectCase {
		tc := some("plain")[0]
		tc.pod = *tc.pod.DeepCopy()
		tc.name, tc.pod.Spec.NodeName, tc.native = name, node, native
		return tc
	}
	return []injectSetup{
		{name: "default", cases: cases},
		// Every kubelet is new: native; a pod naming a node the
		// cluster does not have is decided by all nodes.
		{name: "native-auto", nativeAuto: true, kubelets: map[string]string{"worker": "v1.34.1"},
			cases: []injectCase{onNode("plain", "", true), onNode("on-worker", "worker", true), onNode("on-unknown-node", "gone", true)}},
		// One kubelet is old: not native, but for a pod on a new node.
		{name: "native-auto-mixed", nativeAuto: true, kubelets: map[string]string{"worker": "v1.34.1", "old": "v1.32.3"},
			cases: []injectCase{onNode("plain", "", false), onNode("on-worker", "worker", true), onNode("on-old", "old", false)}},
		{name: "canary-cni", revision: "canary", cni: true, cases: some("plain", "ports-probes", "native-sidecar", "capture-annotations", "status-port-other", "status-port-none", "proxy-override")},
	}
}

// compareInjectors starts istiod with setup's configuration, builds
// Causeway's injector with the same, sends both every case of setup and
// returns the differences of the pods they make, each case named
// SETUP/CASE. istiod is stopped on return.
func compareInjectors(ctx context.Context, t *testing.T, env *testenv.Env, bins testenv.IstioBinaries, setup injectSetup, tmpl string, chartValues []byte) []xp.Difference {
	t.Helper()
	c := env.Clusters[0]
	cs := c.Client()
	values, err := injectorValues(chartValues, setup.revision, setup.cni)
	if err != nil {
		t.Fatal(err)
	}
	cm := "istio-sidecar-injector"
	istiodSvc := "istiod"
	if setup.revision != "" {
		cm += "-" + setup.revision
		istiodSvc += "-" + setup.revision
	}
	cmObj := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cm, Namespace: systemNamespace},
		Data:       map[string]string{"config": injectorConfig(tmpl), "values": values},
	}
	// istiod reads it at its start: an earlier setup's is replaced.
	_, err = cs.CoreV1().ConfigMaps(systemNamespace).Create(ctx, cmObj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = cs.CoreV1().ConfigMaps(systemNamespace).Update(ctx, cmObj, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	// As Istio's chart writes the mesh config of a revision: its proxies
	// connect to the revision's istiod.
	mesh := "trustDomain: " + injTrustDomain + "\n"
	if setup.revision != "" {
		mesh += "defaultConfig:\n  discoveryAddress: " + istiodSvc + "." + systemNamespace + ".svc:15012\n"
	}
	nativeAuto := setKubelets(ctx, t, cs, setup)
	istiodEnv := []string{"INJECT_ENABLED=true", "REVISION=" + setup.revision}
	if !setup.nativeAuto {
		istiodEnv = append(istiodEnv, "ENABLE_NATIVE_SIDECARS=false")
	}
	// With --httpsAddr empty istiod serves its webhooks, /inject among
	// them, on its plain HTTP address.
	ist, err := env.StartIstiod(ctx, bins, testenv.IstiodOptions{
		Cluster:    c,
		MeshConfig: mesh,
		Env:        istiodEnv,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ist.Stop()

	in := inject.New(inject.Config{
		ProxyImage:  injHub + "/proxyv2:" + injTag,
		ClusterID:   injCluster,
		TrustDomain: injTrustDomain,
		MeshID:      injMeshID,
		Revision:    setup.revision,
		CNI:         setup.cni,
		NativeAuto:  nativeAuto,
		// The model's rule in `causeway serve`: the pod's own label,
		// else the topology.istio.io/network label of its cluster's
		// istio-system (network1 for cluster1; none for the remote
		// cluster, whose webhook URL names its network).
		Network: func(c model.ClusterID, label model.NetworkID) model.NetworkID {
			if label != "" || c != injCluster {
				return label
			}
			return injNetwork
		},
	})
	handler, err := in.Handler(slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	cw := httptest.NewServer(handler)
	defer cw.Close()

	var all []xp.Difference
	injected := map[string]*corev1.Pod{} // istiod's pod of each case
	for i := range setup.cases {
		tc := &setup.cases[i]
		name := setup.name + "/" + tc.name
		path := tc.path
		if path == "" {
			path = inject.Path
		}
		pod := &tc.pod
		if tc.reinject != "" {
			if pod = injected[tc.reinject]; pod == nil {
				t.Fatalf("%s: reinjects case %q, which is not before it", name, tc.reinject)
			}
		}
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		istPod, istAllowed, err := injectVia(ctx, "http://"+ist.HTTPAddr+path, raw)
		if err != nil {
			t.Fatalf("%s: istiod: %v\n%s", name, err, ist.Tail())
		}
		injected[tc.name] = istPod
		cwPod, cwAllowed, err := injectVia(ctx, cw.URL+path, raw)
		if err != nil {
			t.Fatalf("%s: causeway: %v", name, err)
		}
		// The oracle must have done what the case is about, so that no
		// case compares two untouched pods by mistake.
		_, sidecar := istPod.Annotations[inject.AnnotationStatus]
		if want := !tc.skipped; sidecar != want || istAllowed != !tc.refused {
			t.Fatalf("%s: istiod injected: %v, allowed: %v; the case wants injected %v, allowed %v: fix the case", name, sidecar, istAllowed, want, !tc.refused)
		}
		if native := slices.ContainsFunc(istPod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == inject.ProxyName }); setup.nativeAuto && native != tc.native {
			t.Fatalf("%s: istiod made a native sidecar: %v; the case wants %v: fix the case", name, native, tc.native)
		}
		var facts [2]xp.Facts
		for i, p := range []*corev1.Pod{istPod, cwPod} {
			stored, err := cs.CoreV1().Pods(injNamespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatalf("%s: the API server refuses the pod %s injected: %v", name, []string{"istiod", "causeway"}[i], err)
			}
			if facts[i], err = xp.PodFacts(stored); err != nil {
				t.Fatal(err)
			}
			facts[i]["review/allowed"] = strconv.FormatBool([]bool{istAllowed, cwAllowed}[i])
		}
		all = append(all, xp.Compare(name, facts[0], facts[1])...)
	}
	return all
}

func loadInjectTable(t *testing.T) *xp.Table {
	t.Helper()
	doc, err := os.ReadFile(injectTablePath)
	if err != nil {
		t.Fatal(err)
	}
	table, err := xp.ParseTable(doc)
	if err != nil {
		t.Fatalf("%s: %v", injectTablePath, err)
	}
	return table
}

// injectorConfig is the ConfigMap's "config" as Istio's chart writes it
// with its defaults: the sidecar template, policy enabled.
func injectorConfig(template string) string {
	var b strings.Builder
	b.WriteString("defaultTemplates: [sidecar]\npolicy: enabled\nalwaysInjectSelector: []\nneverInjectSelector: []\ninjectedAnnotations: {}\ntemplates:\n  sidecar: |\n")
	for line := range strings.SplitSeq(strings.TrimRight(template, "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}

// injectorValues is the ConfigMap's "values" as Istio's chart writes it
// (the chart's defaults, only the keys the template reads), with the
// values of this test.
func injectorValues(chart []byte, revision string, cni bool) (string, error) {
	var doc map[string]map[string]any
	if err := yaml.Unmarshal(chart, &doc); err != nil {
		return "", fmt.Errorf("Istio's chart values: %w", err)
	}
	d := doc["_internal_defaults_do_not_set"]
	global, ok := d["global"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("Istio's chart values have no global section")
	}
	global["hub"], global["tag"] = injHub, injTag
	global["network"], global["meshID"] = injNetwork, injMeshID
	global["istioNamespace"] = systemNamespace
	mc, _ := global["multiCluster"].(map[string]any)
	if mc == nil {
		mc = map[string]any{}
		global["multiCluster"] = mc
	}
	mc["clusterName"] = injCluster
	gateways, _ := d["gateways"].(map[string]any)
	pilotCNI, _ := d["cni"].(map[string]any)
	if pilotCNI == nil {
		pilotCNI = map[string]any{}
	}
	pilotCNI["enabled"] = cni
	values := map[string]any{
		"global":                 global,
		"sidecarInjectorWebhook": d["sidecarInjectorWebhook"],
		"revision":               revision,
		"pilot":                  map[string]any{"cni": pilotCNI, "env": d["env"]},
		"gateways":               map[string]any{"securityContext": gateways["securityContext"], "seccompProfile": gateways["seccompProfile"]},
	}
	b, err := json.Marshal(values)
	if err != nil {
		return "", fmt.Errorf("encode the injector's values: %w", err)
	}
	return string(b), nil
}

// injectVia posts an AdmissionReview of a Pod CREATE of raw to url and
// returns the pod with the answer's patch applied (raw itself when the
// answer has none), and whether the answer allows the pod.
func injectVia(ctx context.Context, url string, raw []byte) (*corev1.Pod, bool, error) {
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("11111111-2222-3333-4444-555555555555"),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: injNamespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReviewResponse))
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, false, fmt.Errorf("decode the answer: %w", err)
	}
	if out.Response == nil {
		return nil, false, fmt.Errorf("an answer without a response: %s", b)
	}
	if !out.Response.Allowed {
		pod, err := xp.ApplyPatch(raw, nil)
		return pod, false, err
	}
	pod, err := xp.ApplyPatch(raw, out.Response.Patch)
	return pod, true, err
}

// setKubelets creates or updates the Nodes of setup.kubelets with their
// kubelet versions. For a setup of automatic native sidecars it returns
// Causeway's decision as `causeway serve` wires it: a model store holding
// the cluster's Nodes, converted as its informers convert them.
func setKubelets(ctx context.Context, t *testing.T, cs kubernetes.Interface, setup injectSetup) func(model.ClusterID, string) bool {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(setup.kubelets)) {
		node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			node, err = cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		node.Status.NodeInfo.KubeletVersion = setup.kubelets[name]
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !setup.nativeAuto {
		return nil
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore(model.Config{})
	for i := range nodes.Items {
		store.UpsertNode(kubeconv.Node(injCluster, &nodes.Items[i]))
	}
	return store.NativeSidecars
}

// injectCases are the pods compared: what issue 16 names (plain, ports and
// probes, annotation overrides, proxy.istio.io/config, app probes, native
// sidecars) and the remote cluster's path.
func injectCases() []injectCase {
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f7b9c4", UID: "u1", Controller: new(true)}}
	app := func(c ...corev1.Container) corev1.PodSpec {
		return corev1.PodSpec{ServiceAccountName: "web", Containers: c}
	}
	httpGet := func(path string, port intstr.IntOrString) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}, PeriodSeconds: 5, TimeoutSeconds: 2}
	}
	meta := func(labels, annotations map[string]string) metav1.ObjectMeta {
		l := map[string]string{"app": "web", "version": "v1", "pod-template-hash": "5d8f7b9c4"}
		maps.Copy(l, labels)
		return metav1.ObjectMeta{GenerateName: "web-5d8f7b9c4-", Namespace: injNamespace, Labels: l, Annotations: annotations, OwnerReferences: owner}
	}
	web := corev1.Container{Name: "web", Image: "registry.example/web:1"}
	withPorts := corev1.Container{
		Name: "web", Image: "registry.example/web:1",
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "grpc", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: httpGet("/ready", intstr.FromString("http")),
		LivenessProbe:  httpGet("/live", intstr.FromInt32(8080)),
	}
	return []injectCase{
		{name: "plain", pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: app(web)}},
		{name: "ports-probes", pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			InitContainers:     []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:1"}},
			Containers:         []corev1.Container{withPorts, {Name: "side", Image: "registry.example/side:1", Ports: []corev1.ContainerPort{{ContainerPort: 7070}}}},
		}}},
		{name: "resources", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationProxyCPU: "250m", inject.AnnotationProxyMem: "256Mi",
			inject.AnnotationCPULimit: "1", inject.AnnotationMemLimit: "512Mi",
		}), Spec: app(web)}},
		{name: "requests-only", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationProxyCPU: "300m",
		}), Spec: app(web)}},
		{name: "proxy-config", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationConfig: "concurrency: 2\nterminationDrainDuration: 10s\n",
		}), Spec: app(web)}},
		{name: "no-probe-rewrite", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationRewrite: "false",
		}), Spec: app(withPorts)}},
		{name: "prometheus", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics",
		}), Spec: app(withPorts)}},
		{name: "canonical-labels", pod: corev1.Pod{ObjectMeta: meta(map[string]string{
			"app.kubernetes.io/name": "shop", "app.kubernetes.io/version": "2.0", inject.LabelWorkloadName: "shop-web",
		}, nil), Spec: app(web)}},
		{name: "network-label", pod: corev1.Pod{ObjectMeta: meta(map[string]string{model.LabelNetwork: "network2"}, nil), Spec: app(web)}},
		{name: "bare-pod", pod: corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: injNamespace},
			Spec:       app(web),
		}},
		{name: "native-sidecar", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"sidecar.istio.io/nativeSidecar": "true",
		}), Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			InitContainers:     []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:1"}},
			Containers:         []corev1.Container{withPorts},
		}}},
		{name: "probe-kinds", pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: app(corev1.Container{
			Name: "web", Image: "registry.example/web:1",
			Ports: []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "grpc", ContainerPort: 9090}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromString("https"), Scheme: corev1.URISchemeHTTPS, Host: "web.local",
				HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}}}},
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8443)}}, TimeoutSeconds: 4},
			StartupProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090, Service: new("health")}}},
		}, corev1.Container{
			Name: "worker", Image: "registry.example/worker:1",
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			Lifecycle:     &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/stop", Port: intstr.FromInt32(8080)}}},
		})}},
		{name: "hold-application", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationConfig: "holdApplicationUntilProxyStarts: true\n",
		}), Spec: app(web)}},
		{name: "log-levels", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"sidecar.istio.io/logLevel": "debug", "sidecar.istio.io/componentLogLevel": "upstream:debug",
			"sidecar.istio.io/agentLogLevel": "default:debug",
		}), Spec: app(web)}},
		{name: "capture-annotations", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
			"traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.96.0.1/32",
			"traffic.sidecar.istio.io/includeInboundPorts":     "8080",
			"traffic.sidecar.istio.io/excludeInboundPorts":     "9090",
			"traffic.sidecar.istio.io/excludeOutboundPorts":    "5432",
			"traffic.sidecar.istio.io/includeOutboundPorts":    "443",
		}), Spec: app(withPorts)}},
		{name: "interception-tproxy", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"sidecar.istio.io/interceptionMode": "TPROXY",
		}), Spec: app(web)}},
		{name: "proxy-image", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"sidecar.istio.io/proxyImage": "registry.example/istio/proxyv2:custom",
		}), Spec: app(web)}},
		{name: "status-port", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"readiness.status.sidecar.istio.io/periodSeconds":    "30",
			"readiness.status.sidecar.istio.io/failureThreshold": "10",
		}), Spec: app(web)}},
		{name: "status-port-other", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationStatusPort: "15030", "sidecar.istio.io/nativeSidecar": "true",
			inject.AnnotationExcludeInboundPorts: "9090",
		}), Spec: app(withPorts)}},
		{name: "status-port-none", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationStatusPort: "0",
		}), Spec: app(web)}},
		{name: "bad-status-port", skipped: true, refused: true, pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationStatusPort: "http",
		}), Spec: app(web)}},
		{name: "proxy-override", pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: app(web, corev1.Container{
			Name: inject.ProxyName, Image: "auto",
			Env: []corev1.EnvVar{{Name: "EXTRA", Value: "1"}, {Name: "ISTIO_META_CLUSTER_ID", Value: "mine"}},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("500m"),
			}},
			SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(1500)), RunAsGroup: new(int64(1500))},
		})}},
		{name: "proxy-override-native", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"sidecar.istio.io/nativeSidecar": "true",
		}), Spec: app(corev1.Container{Name: inject.ProxyName, Image: "registry.example/proxyv2:mine"}, web)}},
		{name: "prometheus-off", pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			"prometheus.io/scrape": "false",
		}), Spec: app(web)}},
		{name: "annotation-opt-out", skipped: true, pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{inject.AnnotationInject: "false"}), Spec: app(web)}},
		{name: "already-injected", reinject: "ports-probes"},
		{name: "already-injected-native", reinject: "native-sidecar"},
		{name: "opt-out", skipped: true, pod: corev1.Pod{ObjectMeta: meta(map[string]string{inject.LabelInject: "false"}, nil), Spec: app(web)}},
		{name: "bad-annotation", skipped: true, refused: true, pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationProxyCPU: "lots",
		}), Spec: app(web)}},
		{name: "bad-capture-annotation", skipped: true, refused: true, pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationExcludeOutboundIPRanges: "10.0.0.0/40",
		}), Spec: app(web)}},
		{name: "bad-interception-mode", skipped: true, refused: true, pod: corev1.Pod{ObjectMeta: meta(nil, map[string]string{
			inject.AnnotationInterceptionMode: "MAGIC",
		}), Spec: app(web)}},
		{name: "unknown-probe-port", pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: app(corev1.Container{
			Name: "web", Image: "registry.example/web:1",
			ReadinessProbe: httpGet("/ready", intstr.FromString("nope")),
		})}},
		{name: "remote-cluster", path: inject.PathPrefix + "cluster/cluster2/net/network2",
			pod: corev1.Pod{ObjectMeta: meta(nil, nil), Spec: app(withPorts)}},
	}
}

// injectReport is the diff, unexplained first, then the known gaps, then
// what each row of the table explained.
func injectReport(all, unexplained, gaps []xp.Difference, used map[string]int, table *xp.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "injection parity with istiod: %d difference(s), %d not in %s, %d known gap(s)\n\n", len(all), len(unexplained), injectTablePath, len(gaps))
	if len(unexplained) > 0 {
		b.WriteString("##### NOT EXPLAINED\n")
		b.WriteString(xp.Format(unexplained))
		b.WriteString("\n")
	}
	tagged := func(match func(xp.Difference) (xp.Row, bool)) []xp.Difference {
		var out []xp.Difference
		for _, d := range all {
			if r, ok := match(d); ok {
				d.Path += "  [" + r.ID + "]"
				out = append(out, d)
			}
		}
		return out
	}
	for _, part := range []struct {
		title string
		rows  []xp.Row
		match func(xp.Difference) (xp.Row, bool)
	}{{"KNOWN GAPS", table.Gaps, table.MatchGap}, {"EXPLAINED", table.Rows, table.Match}} {
		if len(part.rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "##### %s (row: count)\n", part.title)
		for _, r := range part.rows {
			fmt.Fprintf(&b, "  %s: %d  (%s)\n", r.ID, used[r.ID], r.Reason)
		}
		if ds := tagged(part.match); len(ds) > 0 {
			fmt.Fprintf(&b, "\n##### %s, in full\n", part.title)
			b.WriteString(xp.Format(ds))
		}
		b.WriteString("\n")
	}
	return b.String()
}
