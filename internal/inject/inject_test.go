package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/model"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testInjector(cni, native bool) *Injector {
	return New(Config{
		ClusterID:      "cluster1",
		CNI:            cni,
		NativeSidecars: native,
		Network: func(c model.ClusterID, label model.NetworkID) model.NetworkID {
			if label != "" {
				return label
			}
			if c == "cluster1" {
				return "network1"
			}
			return ""
		},
	})
}

func basePod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			Containers: []corev1.Container{{
				Name: "app", Image: "nginx:1.27",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			}},
		},
	}
}

// TestInjectGolden injects pods and compares the pod the patch yields,
// applied to the original JSON as the API server does, with a golden
// file (-update rewrites them).
func TestInjectGolden(t *testing.T) {
	probed := basePod()
	probed.Spec.Containers[0].ReadinessProbe = &corev1.Probe{TimeoutSeconds: 2, ProbeHandler: corev1.ProbeHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}}
	probed.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/live", Port: intstr.FromInt32(8080)}}}
	probed.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}

	annotated := basePod()
	annotated.Annotations = map[string]string{
		AnnotationProxyCPU: "250m", AnnotationProxyMem: "2Gi", AnnotationCPULimit: "1",
		AnnotationConfig: "holdApplicationUntilProxyStarts: true\nconcurrency: 2\n",
	}
	annotated.Labels[model.LabelNetwork] = "podnet"

	deployed := basePod()
	deployed.Name, deployed.GenerateName = "", "web-7d9f8b6c5-"
	deployed.Labels = map[string]string{"app.kubernetes.io/name": "webapp", "version": "v2", "pod-template-hash": "7d9f8b6c5"}
	deployed.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8b6c5", UID: "u1", Controller: new(true)}}

	noProbeRewrite := basePod()
	noProbeRewrite.Annotations = map[string]string{AnnotationRewrite: "false"}
	noProbeRewrite.Spec.Containers[0].ReadinessProbe = probed.Spec.Containers[0].LivenessProbe.DeepCopy()

	// HTTPS with a host header, gRPC, and an init container's probe.
	probed.Spec.Containers = append(probed.Spec.Containers, corev1.Container{
		Name: "api", Image: "registry.example/api:1",
		ReadinessProbe: &corev1.Probe{PeriodSeconds: 5, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/healthz", Port: intstr.FromInt32(8443), Scheme: corev1.URISchemeHTTPS,
			HTTPHeaders: []corev1.HTTPHeader{{Name: "Host", Value: "api.example"}}}}},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}},
	})

	prom := basePod()
	prom.Annotations = map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus-io/path": "/metrics"}
	promOff := basePod()
	promOff.Annotations = map[string]string{"prometheus.io/scrape": "false"}

	withInit := basePod()
	withInit.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:1"}}

	for _, tc := range []struct {
		name        string
		pod         *corev1.Pod
		cni, native bool
		t           Target
	}{
		{"basic", basePod(), false, false, Target{}},
		{"cni", basePod(), true, false, Target{}},
		{"probes", probed, false, false, Target{}},
		{"no-probe-rewrite", noProbeRewrite, false, false, Target{}},
		{"annotations", annotated, false, false, Target{}},
		{"deployment", deployed, false, false, Target{}},
		{"remote", basePod(), false, false, Target{Cluster: "cluster2", Network: "network2"}},
		{"init-containers", withInit, false, false, Target{}},
		{"native", withInit, false, true, Target{}},
		{"native-cni", withInit, true, true, Target{}},
		{"prometheus", prom, false, false, Target{}},
		{"prometheus-off", promOff, false, false, Target{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInjector(tc.cni, tc.native)
			orig, err := json.Marshal(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			got, err := in.Inject(tc.pod, tc.t)
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			if again, _ := json.Marshal(tc.pod); !bytes.Equal(again, orig) {
				t.Fatal("Inject changed its input")
			}
			ops, err := Patch(tc.pod, got)
			if err != nil {
				t.Fatal(err)
			}
			patched := applyPatch(t, orig, ops)
			want, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(decode(t, want), decode(t, patched)); d != "" {
				t.Errorf("patched pod differs from the injected one (-injected +patched):\n%s", d)
			}
			golden(t, filepath.Join("testdata", tc.name+".json"), patched)
		})
	}
}

func applyPatch(t *testing.T, doc []byte, ops []PatchOp) []byte {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(b)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch: %v", err)
	}
	return out
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), buf.String()); d != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it after review):\n%s", path, d)
	}
}

func TestInjectSkips(t *testing.T) {
	in := testInjector(false, false)
	hostNet := basePod()
	hostNet.Spec.HostNetwork = true
	injected := basePod()
	injected.Annotations = map[string]string{AnnotationStatus: `{"containers":["istio-proxy"]}`}
	optOutLabel := basePod()
	optOutLabel.Labels[LabelInject] = "false"
	optOutAnn := basePod()
	optOutAnn.Annotations = map[string]string{AnnotationInject: "false"}
	kubeSystem := basePod()
	kubeSystem.Namespace = "kube-system"
	labelWins := basePod()
	labelWins.Labels[LabelInject] = "false"
	labelWins.Annotations = map[string]string{AnnotationInject: "true"}
	nodeLease := basePod()
	nodeLease.Namespace = "kube-node-lease"
	for name, pod := range map[string]*corev1.Pod{
		"host network": hostNet, "already injected": injected, "label opt-out": optOutLabel,
		"annotation opt-out": optOutAnn, "kube-system": kubeSystem, "kube-node-lease": nodeLease, "label wins over annotation": labelWins,
	} {
		if _, err := in.Inject(pod, Target{}); !errors.Is(err, ErrSkip) {
			t.Errorf("%s: Inject error %v, want a skip", name, err)
		}
	}
	bad := basePod()
	bad.Annotations = map[string]string{AnnotationProxyMem: "lots"}
	if _, err := in.Inject(bad, Target{}); err == nil || errors.Is(err, ErrSkip) || !strings.Contains(err.Error(), AnnotationProxyMem) {
		t.Errorf("bad resource annotation: error %v, want one naming %s", err, AnnotationProxyMem)
	}
	// Only "false" opts out; the label wins over the annotation.
	for name, mutate := range map[string]func(*corev1.Pod){
		"label no":         func(p *corev1.Pod) { p.Labels[LabelInject] = "no" },
		"annotation FALSE": func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "FALSE"} },
		"label true, annotation false": func(p *corev1.Pod) {
			p.Labels[LabelInject] = "true"
			p.Annotations = map[string]string{AnnotationInject: "false"}
		},
	} {
		p := basePod()
		mutate(p)
		if _, err := in.Inject(p, Target{}); err != nil {
			t.Errorf("%s: %v, want injected", name, err)
		}
	}
	// Injecting the injected pod again leaves it alone: idempotent.
	for _, native := range []bool{false, true} {
		in := testInjector(false, native)
		out, err := in.Inject(basePod(), Target{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Inject(out, Target{}); !errors.Is(err, ErrSkip) {
			t.Errorf("native %v: second injection: error %v, want a skip", native, err)
		}
		// Without the status annotation, the capture's init container
		// still tells (istio-proxy alone is an override, see
		// TestInjectOverride).
		delete(out.Annotations, AnnotationStatus)
		if _, err := in.Inject(out, Target{}); !errors.Is(err, ErrSkip) {
			t.Errorf("native %v: injection of a pod with istio-init: error %v, want a skip", native, err)
		}
	}
}

func review(t *testing.T, pod *corev1.Pod, op admissionv1.Operation) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: op,
			Namespace: pod.Namespace, Name: pod.Name, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	h, err := testInjector(false, false).Handler(slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, ct string, body []byte) (int, admissionv1.AdmissionReview) {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		h.ServeHTTP(rec, req)
		var r admissionv1.AdmissionReview
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("response: %v", err)
			}
		}
		return rec.Code, r
	}

	code, r := post("/inject", "application/json", review(t, basePod(), admissionv1.Create))
	if code != http.StatusOK || r.Response == nil || !r.Response.Allowed || r.Response.UID != "uid-1" ||
		r.Response.PatchType == nil || len(r.Response.Patch) == 0 || r.APIVersion != "admission.k8s.io/v1" {
		t.Fatalf("/inject: status %d, response %+v", code, r.Response)
	}

	// The remote path's cluster and network reach the pod's environment.
	_, r = post("/inject/cluster/cluster2/net/network2", "application/json", review(t, basePod(), admissionv1.Create))
	for _, want := range []string{`"ISTIO_META_CLUSTER_ID","value":"cluster2"`, `"ISTIO_META_NETWORK","value":"network2"`} {
		if !strings.Contains(string(r.Response.Patch), want) {
			t.Errorf("remote path: patch lacks %s", want)
		}
	}

	// A review it cannot handle is allowed unchanged, and logged.
	bad := basePod()
	bad.Annotations = map[string]string{AnnotationCPULimit: "x"}
	_, r = post("/inject", "application/json", review(t, bad, admissionv1.Create))
	if !r.Response.Allowed || r.Response.Patch != nil {
		t.Errorf("bad annotation: response %+v, want allowed without patch", r.Response)
	}
	if !strings.Contains(logs.String(), "pod admitted without sidecar") || !strings.Contains(logs.String(), AnnotationCPULimit) {
		t.Errorf("bad annotation not logged with its reason: %s", logs.String())
	}
	_, r = post("/inject", "application/json", review(t, basePod(), admissionv1.Update))
	if !r.Response.Allowed || r.Response.Patch != nil {
		t.Errorf("update: response %+v, want allowed without patch", r.Response)
	}

	if code, _ := post("/inject", "text/plain", review(t, basePod(), admissionv1.Create)); code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: status %d, want 415", code)
	}
	if code, _ := post("/inject", "application/json", []byte(`{"kind":"AdmissionReview"}`)); code != http.StatusBadRequest {
		t.Errorf("review without request: status %d, want 400", code)
	}
	big := bytes.Repeat([]byte(" "), MaxReviewBytes+1)
	if code, _ := post("/inject", "application/json", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, want 413", code)
	}
	// Injected: /inject and the remote path; failed: the bad annotation;
	// skipped: the update; rejected: the three HTTP errors.
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "causeway_injection_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if d := cmp.Diff(map[string]float64{"injected": 2, "failed": 1, "skipped": 1, "rejected": 3}, got); d != "" {
		t.Errorf("causeway_injection_requests_total by result (-want +got):\n%s", d)
	}
}
