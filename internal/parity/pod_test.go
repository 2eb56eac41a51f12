package parity

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestApplyPatch(t *testing.T) {
	pod := []byte(`{"metadata":{"name":"p","labels":{"a":"1"}},"spec":{"containers":[{"name":"app","image":"x"}]}}`)
	for _, tc := range []struct {
		name, patch string
		check       func(*corev1.Pod) string
		wantErr     string
	}{
		{name: "no patch", check: func(p *corev1.Pod) string {
			if p.Name != "p" || len(p.Spec.Containers) != 1 {
				return "pod changed"
			}
			return ""
		}},
		{name: "istiod's shape: add, replace, escaped key", patch: `[
			{"op":"add","path":"/spec/containers/-","value":{"name":"istio-proxy","image":"proxyv2"}},
			{"op":"replace","path":"/metadata/labels/a","value":"2"},
			{"op":"add","path":"/metadata/labels/security.istio.io~1tlsMode","value":"istio"}]`,
			check: func(p *corev1.Pod) string {
				if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != "istio-proxy" {
					return "no istio-proxy"
				}
				if p.Labels["a"] != "2" || p.Labels["security.istio.io/tlsMode"] != "istio" {
					return "labels " + strings.Join([]string{p.Labels["a"], p.Labels["security.istio.io/tlsMode"]}, ",")
				}
				return ""
			}},
		{name: "not a patch", patch: `{"op":"add"}`, wantErr: "decode the JSON patch"},
		{name: "a path that is not there", patch: `[{"op":"replace","path":"/spec/nope/x","value":1}]`, wantErr: "apply the JSON patch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ApplyPatch(pod, []byte(tc.patch))
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(p); msg != "" {
				t.Error(msg)
			}
		})
	}
	if _, err := ApplyPatch(pod, make([]byte, maxPatchBytes+1)); err == nil {
		t.Error("a patch over the bound is applied")
	}
}

func TestPodFacts(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{"app": "web", "empty": ""},
			Annotations: map[string]string{"sidecar.istio.io/status": `{"containers":["istio-proxy"],"revision":"default"}`},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "web",
			InitContainers:     []corev1.Container{{Name: "istio-init", Args: []string{"-p", "15001"}}},
			Containers: []corev1.Container{{Name: "app"}, {
				Name: "istio-proxy",
				Env: []corev1.EnvVar{
					{Name: "PROXY_CONFIG", Value: `{"concurrency":2,"discoveryAddress":"istiod:15012"}`},
					{Name: "ISTIO_META_POD_PORTS", Value: "[\n]"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "istio-envoy", MountPath: "/etc/istio/proxy"}},
			}},
			Volumes: []corev1.Volume{{Name: "istio-envoy", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}},
		},
	}
	got, err := PodFacts(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{
		"label/app":   "web",
		"label/empty": `""`,
		"annotation/sidecar.istio.io/status/containers":                   `["istio-proxy"]`,
		"annotation/sidecar.istio.io/status/revision":                     "default",
		"initContainer/istio-init/index":                                  "0",
		"initContainer/istio-init/args":                                   `["-p","15001"]`,
		"initContainer/istio-init/resources":                              "{}",
		"container/app/index":                                             "0",
		"container/app/resources":                                         "{}",
		"container/istio-proxy/index":                                     "1",
		"container/istio-proxy/resources":                                 "{}",
		"container/istio-proxy/env/PROXY_CONFIG/value/concurrency":        "2",
		"container/istio-proxy/env/PROXY_CONFIG/value/discoveryAddress":   "istiod:15012",
		"container/istio-proxy/env/ISTIO_META_POD_PORTS/value":            "[]",
		"container/istio-proxy/env/POD_NAME/valueFrom/fieldRef/fieldPath": "metadata.name",
		"container/istio-proxy/volumeMounts/istio-envoy/mountPath":        "/etc/istio/proxy",
		"volume/istio-envoy/emptyDir/medium":                              "Memory",
		"spec/serviceAccountName":                                         "web",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("PodFacts (-want +got):\n%s", d)
	}
}

// TestPodFactsRatchet: a difference between two injected pods is a fact
// path a table row can name, and one no row names stays unexplained.
func TestPodFactsRatchet(t *testing.T) {
	mk := func(mode string) Facts {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy",
			Env: []corev1.EnvVar{{Name: "ISTIO_META_INTERCEPTION_MODE", Value: mode}}}}}}
		f, err := PodFacts(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	diffs := Compare("default/plain", mk("TPROXY"), mk("REDIRECT"))
	if len(diffs) != 1 || diffs[0].Path != "container/istio-proxy/env/ISTIO_META_INTERCEPTION_MODE/value" || diffs[0].Side() != SideValue {
		b, _ := json.Marshal(diffs)
		t.Fatalf("diffs %s, want the interception mode's value", b)
	}
	table, err := ParseTable([]byte("| ID | Nodes | Path | Side | Reason |\n| --- | --- | --- | --- | --- |\n| I9 | `*/plain` | `container/istio-proxy/env/*` | value | test |\n"))
	if err != nil {
		t.Fatal(err)
	}
	if un, _, used := table.Explain(diffs); len(un) != 0 || used["I9"] != 1 {
		t.Errorf("unexplained %v, used %v; want I9 to explain it", un, used)
	}
	if un, _, _ := table.Explain(Compare("default/other", mk("TPROXY"), mk("REDIRECT"))); len(un) != 1 {
		t.Errorf("a case no row names is explained: %v", un)
	}
}
