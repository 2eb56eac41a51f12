package inject

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/model"
)

func names(cs []corev1.Container) []string {
	out := make([]string, 0, len(cs))
	for i := range cs {
		out = append(out, cs[i].Name)
	}
	return out
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// TestInjectMatchesIstiod holds the behaviors the parity test with istiod
// found missing (test/parity/inject_test.go), one case each, so that each
// fails here without its fix.
func TestInjectMatchesIstiod(t *testing.T) {
	withAnn := func(ann map[string]string) *corev1.Pod {
		p := basePod()
		p.Annotations = ann
		return p
	}
	for _, tc := range []struct {
		name   string
		in     *Injector
		pod    *corev1.Pod
		target Target
		check  func(t *testing.T, out *corev1.Pod)
	}{
		{name: "network label from the model", in: testInjector(false, false), pod: basePod(), check: func(t *testing.T, out *corev1.Pod) {
			if got := out.Labels[model.LabelNetwork]; got != "network1" {
				t.Errorf("label %s = %q, want network1", model.LabelNetwork, got)
			}
		}},
		{name: "no network, no label", in: testInjector(false, false), pod: basePod(), target: Target{Cluster: "elsewhere"}, check: func(t *testing.T, out *corev1.Pod) {
			if got, ok := out.Labels[model.LabelNetwork]; ok {
				t.Errorf("label %s = %q, want none", model.LabelNetwork, got)
			}
		}},
		{name: "pod ports [] without ports", in: testInjector(false, false), pod: func() *corev1.Pod {
			p := basePod()
			p.Spec.Containers[0].Ports = nil
			return p
		}(), check: func(t *testing.T, out *corev1.Pod) {
			if e, ok := envOf(findProxy(out), "ISTIO_META_POD_PORTS"); !ok || e.Value != "[]" {
				t.Errorf("ISTIO_META_POD_PORTS = %+v, %v; want []", e, ok)
			}
		}},
		{name: "PROXY_CONFIG without the agent's default discoveryAddress", in: testInjector(false, false), pod: basePod(), check: func(t *testing.T, out *corev1.Pod) {
			if e, _ := envOf(findProxy(out), "PROXY_CONFIG"); e.Value != "{}" {
				t.Errorf("PROXY_CONFIG = %s, want {}", e.Value)
			}
		}},
		{name: "PROXY_CONFIG with a revision's discoveryAddress", in: New(Config{Revision: "canary"}), pod: basePod(), check: func(t *testing.T, out *corev1.Pod) {
			if e, _ := envOf(findProxy(out), "PROXY_CONFIG"); e.Value != `{"discoveryAddress":"istiod-canary.istio-system.svc:15012"}` {
				t.Errorf("PROXY_CONFIG = %s, want the canary istiod", e.Value)
			}
		}},
		{name: "resource env of its own container", in: testInjector(false, false), pod: basePod(), check: func(t *testing.T, out *corev1.Pod) {
			for _, e := range findProxy(out).Env {
				if r := e.ValueFrom; r != nil && r.ResourceFieldRef != nil && r.ResourceFieldRef.ContainerName != "" {
					t.Errorf("%s names container %q, want none", e.Name, r.ResourceFieldRef.ContainerName)
				}
			}
		}},
		{name: "nativeSidecar annotation on", in: testInjector(false, false), pod: withAnn(map[string]string{AnnotationNative: "true"}), check: func(t *testing.T, out *corev1.Pod) {
			if got := names(out.Spec.InitContainers); !slices.Equal(got, []string{InitName, ProxyName}) {
				t.Errorf("init containers %v, want istio-init, istio-proxy", got)
			}
		}},
		{name: "nativeSidecar annotation off", in: testInjector(false, true), pod: withAnn(map[string]string{AnnotationNative: "false"}), check: func(t *testing.T, out *corev1.Pod) {
			if got := names(out.Spec.Containers); !slices.Equal(got, []string{"app", ProxyName}) {
				t.Errorf("containers %v, want app, istio-proxy", got)
			}
		}},
		{name: "hold the application", in: testInjector(false, false), pod: withAnn(map[string]string{AnnotationConfig: "holdApplicationUntilProxyStarts: true"}), check: func(t *testing.T, out *corev1.Pod) {
			if got := names(out.Spec.Containers); !slices.Equal(got, []string{ProxyName, "app"}) {
				t.Errorf("containers %v, want istio-proxy first", got)
			}
			if l := out.Spec.Containers[0].Lifecycle; l == nil || l.PostStart == nil || !slices.Equal(l.PostStart.Exec.Command, []string{"pilot-agent", "wait"}) {
				t.Errorf("lifecycle %+v, want postStart pilot-agent wait", l)
			}
		}},
		{name: "TPROXY", in: testInjector(false, false), pod: withAnn(map[string]string{AnnotationInterceptionMode: ModeTProxy}), check: func(t *testing.T, out *corev1.Pod) {
			p := findProxy(out)
			sc := p.SecurityContext
			if *sc.RunAsUser != 0 || *sc.RunAsNonRoot || *sc.RunAsGroup != ProxyUID || !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) {
				t.Errorf("security context %+v, want uid 0, gid 1337, NET_ADMIN", sc)
			}
			if e, _ := envOf(p, "ISTIO_META_INTERCEPTION_MODE"); e.Value != ModeTProxy {
				t.Errorf("ISTIO_META_INTERCEPTION_MODE = %q", e.Value)
			}
			if args := findContainer(out.Spec.InitContainers, InitName).Args; !slices.Contains(args, ModeTProxy) {
				t.Errorf("istio-init args %v, want -m TPROXY", args)
			}
		}},
		{name: "NONE has no istio-init", in: testInjector(false, false), pod: withAnn(map[string]string{AnnotationConfig: "interceptionMode: NONE"}), check: func(t *testing.T, out *corev1.Pod) {
			if len(out.Spec.InitContainers) != 0 {
				t.Errorf("init containers %v, want none", names(out.Spec.InitContainers))
			}
		}},
		{name: "capture annotations", in: testInjector(false, false), pod: withAnn(map[string]string{
			AnnotationIncludeOutboundIPRanges: "10.0.0.0/8", AnnotationExcludeOutboundIPRanges: "10.96.0.1/32",
			AnnotationIncludeInboundPorts: "8080", AnnotationExcludeInboundPorts: "9090",
			AnnotationIncludeOutboundPorts: "443", AnnotationExcludeOutboundPorts: "5432",
			AnnotationKubevirtInterfaces: "net1", AnnotationExcludeInterfaces: "net2",
		}), check: func(t *testing.T, out *corev1.Pod) {
			want := "istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i 10.0.0.0/8 -x 10.96.0.1/32 -b 8080 -d 15090,15021,9090,15020 -q 443 -o 5432 -k net1 -c net2 --log_output_level=default:info"
			if got := strings.Join(findContainer(out.Spec.InitContainers, InitName).Args, " "); got != want {
				t.Errorf("istio-init args\n got %s\nwant %s", got, want)
			}
		}},
		{name: "log levels, readiness and image", in: testInjector(false, false), pod: withAnn(map[string]string{
			AnnotationLogLevel: "debug", AnnotationComponentLog: "upstream:debug", AnnotationAgentLogLevel: "default:debug",
			AnnotationReadinessPeriod: "30", AnnotationReadinessFailure: "10", AnnotationReadinessDelay: "2",
			AnnotationProxyImage: "registry.example/proxyv2:custom",
		}), check: func(t *testing.T, out *corev1.Pod) {
			p := findProxy(out)
			if got := strings.Join(p.Args[4:], " "); got != "--proxyLogLevel=debug --proxyComponentLogLevel=upstream:debug --log_output_level=default:debug" {
				t.Errorf("proxy log args %s", got)
			}
			if r := p.ReadinessProbe; r.PeriodSeconds != 30 || r.FailureThreshold != 10 || r.InitialDelaySeconds != 2 {
				t.Errorf("readiness %+v, want 30 s, 10 failures, 2 s delay", r)
			}
			if p.Image != "registry.example/proxyv2:custom" || findContainer(out.Spec.InitContainers, InitName).Image != p.Image {
				t.Errorf("images %s, want the annotation's", p.Image)
			}
		}},
		{name: "lifecycle hooks and unknown port names", in: testInjector(false, false), pod: func() *corev1.Pod {
			p := basePod()
			c := &p.Spec.Containers[0]
			c.Lifecycle = &corev1.Lifecycle{
				PreStop:   &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/stop", Port: intstr.FromString("http")}},
				PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
			}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("nope")}}}
			return p
		}(), check: func(t *testing.T, out *corev1.Pod) {
			c := out.Spec.Containers[0]
			if g := c.Lifecycle.PreStop.HTTPGet; g == nil || g.Path != "/app-lifecycle/app/prestopz" || g.Port.IntVal != agentPort {
				t.Errorf("preStop %+v, want the agent's /app-lifecycle/app/prestopz", c.Lifecycle.PreStop)
			}
			if c.Lifecycle.PostStart.Exec == nil {
				t.Errorf("exec postStart rewritten: %+v", c.Lifecycle.PostStart)
			}
			if g := c.ReadinessProbe.HTTPGet; g.Path != "/app-health/app/readyz" || g.Port.IntVal != agentPort {
				t.Errorf("readiness %+v, want rewritten to the agent", g)
			}
			e, _ := envOf(findProxy(out), "ISTIO_KUBE_APP_PROBERS")
			var probers map[string]prober
			if err := json.Unmarshal([]byte(e.Value), &probers); err != nil {
				t.Fatal(err)
			}
			if p, ok := probers["/app-lifecycle/app/prestopz"]; !ok || p.HTTPGet.Port.IntVal != 8080 {
				t.Errorf("preStop prober %+v, want port 8080", p)
			}
			if _, ok := probers["/app-health/app/readyz"]; ok {
				t.Errorf("a prober for the unknown port name: %s", e.Value)
			}
		}},
		{name: "another status port", in: testInjector(false, true), pod: func() *corev1.Pod {
			p := withAnn(map[string]string{AnnotationStatusPort: "15030"})
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}
			return p
		}(), check: func(t *testing.T, out *corev1.Pod) {
			if g := out.Spec.Containers[0].LivenessProbe.HTTPGet; g == nil || g.Port.IntVal != 15030 {
				t.Errorf("liveness %+v, want the agent on 15030", out.Spec.Containers[0].LivenessProbe)
			}
			if args := findContainer(out.Spec.InitContainers, InitName).Args; !slices.Contains(args, "15090,15021,15030") {
				t.Errorf("istio-init args %v, want -d 15090,15021,15030", args)
			}
			if cmd := findProxy(out).Lifecycle.PreStop.Exec.Command; !slices.Contains(cmd, "--debug-port=15030") {
				t.Errorf("preStop %v, want the drain on 15030", cmd)
			}
		}},
		{name: "no status port", in: testInjector(false, false), pod: withAnn(map[string]string{AnnotationStatusPort: "0"}), check: func(t *testing.T, out *corev1.Pod) {
			p := findProxy(out)
			if p.ReadinessProbe != nil || p.StartupProbe != nil {
				t.Errorf("proxy probes %+v %+v, want none", p.ReadinessProbe, p.StartupProbe)
			}
			if args := findContainer(out.Spec.InitContainers, InitName).Args; !slices.Contains(args, "15090,15021") {
				t.Errorf("istio-init args %v, want -d 15090,15021", args)
			}
		}},
		{name: "CNI", in: testInjector(true, false), pod: func() *corev1.Pod {
			p := withAnn(map[string]string{AnnotationExcludeInboundPorts: "9090"})
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "migrate:1"}}
			return p
		}(), check: func(t *testing.T, out *corev1.Pod) {
			if got := names(out.Spec.InitContainers); !slices.Equal(got, []string{ValidationName, "migrate"}) {
				t.Errorf("init containers %v, want istio-validation first", got)
			}
			v := out.Spec.InitContainers[0]
			if !slices.Contains(v.Args, "--run-validation") || *v.SecurityContext.RunAsUser != ProxyUID || v.SecurityContext.Capabilities.Add != nil {
				t.Errorf("istio-validation %+v, want validation only, as 1337, no capability", v)
			}
			for k, want := range map[string]string{
				AnnotationInterceptionMode: ModeRedirect, AnnotationIncludeOutboundIPRanges: "*",
				AnnotationIncludeInboundPorts: "*", AnnotationExcludeInboundPorts: "9090,15020",
			} {
				if got := out.Annotations[k]; got != want {
					t.Errorf("annotation %s = %q, want %q", k, got, want)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.in.Inject(tc.pod, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out)
		})
	}
}

// TestInjectRefusesBadAnnotations: values istiod refuses make the pod
// uninjectable (the webhook admits it without sidecar), with an error that
// names the annotation.
func TestInjectRefusesBadAnnotations(t *testing.T) {
	for k, v := range map[string]string{
		AnnotationInterceptionMode:        "MAGIC",
		AnnotationConfig:                  "interceptionMode: MAGIC",
		AnnotationReadinessPeriod:         "-1",
		AnnotationExcludeOutboundIPRanges: "10.0.0.0/40",
		AnnotationIncludeOutboundIPRanges: "*,10.0.0.0/8",
		AnnotationIncludeInboundPorts:     "http",
		AnnotationExcludeOutboundPorts:    "70000",
		AnnotationStatusPort:              "http",
	} {
		p := basePod()
		p.Annotations = map[string]string{k: v}
		_, err := testInjector(false, false).Inject(p, Target{})
		if err == nil || errors.Is(err, ErrSkip) {
			t.Errorf("%s=%q: err %v, want an error", k, v, err)
			continue
		}
		if name := strings.TrimPrefix(k, "proxy.istio.io/"); !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), "interception mode") {
			t.Errorf("%s=%q: error %q does not name the annotation", k, v, err)
		}
	}
}

// TestInjectOverride: the pod's own istio-proxy container overrides
// fields of the injected one (a strategic merge), is recorded in
// proxy.istio.io/overrides, and its uid is the one the capture exempts.
func TestInjectOverride(t *testing.T) {
	p := basePod()
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
		Name: ProxyName, Image: "auto",
		Env:             []corev1.EnvVar{{Name: "EXTRA", Value: "1"}, {Name: "ISTIO_META_CLUSTER_ID", Value: "mine"}},
		SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(1500))},
	})
	out, err := testInjector(false, false).Inject(p, Target{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(out.Spec.Containers); !slices.Equal(got, []string{"app", ProxyName}) {
		t.Fatalf("containers %v, want app and one istio-proxy", got)
	}
	proxy := findProxy(out)
	if proxy.Image != DefaultProxyImage {
		t.Errorf("image %s, want the injected one for auto", proxy.Image)
	}
	if e, ok := envOf(proxy, "EXTRA"); !ok || e.Value != "1" {
		t.Errorf("EXTRA %+v, want the pod's", e)
	}
	if e, _ := envOf(proxy, "ISTIO_META_CLUSTER_ID"); e.Value != "cluster1" {
		t.Errorf("ISTIO_META_CLUSTER_ID %q, want the injector's cluster1", e.Value)
	}
	if e, ok := envOf(proxy, "PILOT_CERT_PROVIDER"); !ok || e.Value != "istiod" {
		t.Errorf("PILOT_CERT_PROVIDER %+v: the injected env is kept", e)
	}
	if *proxy.SecurityContext.RunAsUser != 1500 || !*proxy.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v, want uid 1500 over the injected context", proxy.SecurityContext)
	}
	args := findContainer(out.Spec.InitContainers, InitName).Args
	if i := slices.Index(args, "-u"); args[i+1] != "1500" {
		t.Errorf("istio-init args %v, want -u 1500", args)
	}
	if a := out.Annotations[AnnotationProxyOverrides]; !strings.Contains(a, `"EXTRA"`) || strings.Contains(a, "auto") {
		t.Errorf("%s = %s, want the overlay, without the auto image", AnnotationProxyOverrides, a)
	}
	if e, _ := envOf(proxy, "ISTIO_META_APP_CONTAINERS"); e.Value != "app" {
		t.Errorf("ISTIO_META_APP_CONTAINERS %q, want app only", e.Value)
	}
}

// FuzzInjectAnnotations: any value of the annotations the injector parses
// either injects a pod whose patch encodes, or is refused with an error;
// it never panics.
func FuzzInjectAnnotations(f *testing.F) {
	keys := []string{
		AnnotationInterceptionMode, AnnotationStatusPort, AnnotationReadinessPeriod, AnnotationProxyImage,
		AnnotationIncludeOutboundIPRanges, AnnotationExcludeInboundPorts, AnnotationIncludeOutboundPorts,
		AnnotationConfig, AnnotationNative, AnnotationProxyCPU, AnnotationLogLevel,
	}
	f.Add(uint8(0), "TPROXY", false)
	f.Add(uint8(1), "0", true)
	f.Add(uint8(4), "10.0.0.0/8,*", false)
	f.Add(uint8(7), "holdApplicationUntilProxyStarts: true\ninterceptionMode: NONE", true)
	f.Fuzz(func(t *testing.T, k uint8, v string, cni bool) {
		p := basePod()
		p.Annotations = map[string]string{keys[int(k)%len(keys)]: v}
		out, err := testInjector(cni, false).Inject(p, Target{})
		if err != nil {
			return
		}
		if _, err := Patch(p, out); err != nil {
			t.Fatalf("%s=%q: the patch does not encode: %v", keys[int(k)%len(keys)], v, err)
		}
	})
}
