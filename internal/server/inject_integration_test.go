package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationInjection registers the control plane's loopback webhook
// with a real kube-apiserver (Istio's selectors, the mesh root as
// caBundle) and checks what the API server stores for pods of labeled,
// unlabeled and revisioned namespaces, pods that opt in or out, an
// injected one and one of the host network. Every injected pod passed the
// API server's validation, since it was stored.
func TestIntegrationInjection(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1"}, MutatingWebhooks: true})
	c := env.Cluster("cluster1")
	cs := c.Client()
	ctx := t.Context()
	must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1"}))(t)
	for ns, labels := range map[string]map[string]string{
		"labeled":     {inject.LabelInjection: "enabled"},
		"plain":       nil,
		"rev-default": {inject.LabelRevision: "default"},
		"rev-canary":  {inject.LabelRevision: "canary"},
		"disabled":    {inject.LabelInjection: "disabled"},
		"remote":      {"causeway.test/remote": "true"},
	} {
		must(testenv.CreateNamespace(ctx, cs, ns, labels))(t)
	}

	// The serving certificate names localhost, the host of the webhook URL.
	rs := serveCluster(t, c, Config{WebhookAddr: "127.0.0.1:0", CA: ca.Config{CustomHosts: []string{"localhost"}}})
	testkit.Eventually(t, testkit.WaitTimeout, "webhook listener", func() string {
		if rs.srv.WebhookAddr() == nil {
			return "not listening"
		}
		return ""
	})

	// The remote path, as a remote cluster's webhook calls it: for the
	// namespace "remote" only. Created first: the API server sees
	// configurations in order, so once the second one works (below), so
	// does this one.
	remoteURL := fmt.Sprintf("https://localhost:%d%scluster/cluster2/net/net2", webhookPort(t, rs), inject.PathPrefix)
	remote := inject.WebhookConfiguration("causeway-remote-injector", "", admissionregistrationv1.WebhookClientConfig{
		URL: &remoteURL, CABundle: rs.srv.CA().Root(),
	})
	remote.Webhooks = remote.Webhooks[:1]
	remote.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"causeway.test/remote": "true"}}
	must(cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, remote, metav1.CreateOptions{}))(t)
	url := fmt.Sprintf("https://localhost:%d%s", webhookPort(t, rs), inject.Path)
	wc := inject.WebhookConfiguration("causeway-sidecar-injector", "", admissionregistrationv1.WebhookClientConfig{
		URL: &url, CABundle: rs.srv.CA().Root(),
	})
	must(cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, wc, metav1.CreateOptions{}))(t)

	pods := cs.CoreV1().Pods
	create := func(ns, name string, mutate func(*corev1.Pod)) *corev1.Pod {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{
				ServiceAccountName: "sa-" + name,
				Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/app:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
				}},
			},
		}
		if mutate != nil {
			mutate(p)
		}
		return must(pods(ns).Create(ctx, p, metav1.CreateOptions{}))(t)
	}
	// The API server calls a new webhook configuration once its informer
	// has it: create a pod of the labeled namespace until one is injected.
	tries := 0
	testkit.Eventually(t, 30*time.Second, "the API server never called the webhook", func() string {
		tries++
		if create("labeled", fmt.Sprintf("warmup-%d", tries-1), nil).Annotations[inject.AnnotationStatus] == "" {
			return fmt.Sprintf("no pod of the labeled namespace injected after %d tries", tries)
		}
		return ""
	})

	injected := func(p *corev1.Pod) bool { return p.Annotations[inject.AnnotationStatus] != "" }
	for _, tc := range []struct {
		ns, name string
		mutate   func(*corev1.Pod)
		want     bool
		network  string
	}{
		{"labeled", "web", nil, true, "net1"},
		{"labeled", "podnet", func(p *corev1.Pod) { p.Labels[model.LabelNetwork] = "net9" }, true, "net9"},
		{"labeled", "optout", func(p *corev1.Pod) { p.Labels[inject.LabelInject] = "false" }, false, ""},
		{"labeled", "hostnet", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false, ""},
		{"plain", "web", nil, false, ""},
		{"plain", "optin", func(p *corev1.Pod) { p.Labels[inject.LabelInject] = "true" }, true, "net1"},
		{"rev-default", "web", nil, true, "net1"},
		{"rev-canary", "web", nil, false, ""},
		{"disabled", "optin", func(p *corev1.Pod) { p.Labels[inject.LabelInject] = "true" }, false, ""},
		// cluster2 is unknown to the model: the URL's network.
		{"remote", "web", nil, true, "net2"},
	} {
		t.Run(tc.ns+"/"+tc.name, func(t *testing.T) {
			p := create(tc.ns, tc.name, tc.mutate)
			if injected(p) != tc.want {
				t.Fatalf("stored pod injected = %v, want %v; containers %v", injected(p), tc.want, names(p.Spec.Containers))
			}
			if !tc.want {
				if slices.Contains(names(p.Spec.Containers), inject.ProxyName) || len(p.Spec.InitContainers) != 0 || len(p.Spec.Volumes) != 0 {
					t.Errorf("pod not injected but changed: containers %v, init %v, volumes %d",
						names(p.Spec.Containers), names(p.Spec.InitContainers), len(p.Spec.Volumes))
				}
				return
			}
			cluster := "cluster1"
			if tc.ns == "remote" {
				cluster = "cluster2"
			}
			checkInjected(t, p, cluster, tc.network)
		})
	}

	// An injected pod is left alone: its status annotation names what the
	// pod already has, and nothing is added twice.
	t.Run("labeled/already-injected", func(t *testing.T) {
		src := must(pods("labeled").Get(ctx, "web", metav1.GetOptions{}))(t)
		p := src.DeepCopy()
		p.ObjectMeta = metav1.ObjectMeta{Namespace: "labeled", Name: "copy", Labels: src.Labels, Annotations: src.Annotations}
		p.Spec.NodeName = ""
		got := must(pods("labeled").Create(ctx, p, metav1.CreateOptions{}))(t)
		if n := len(got.Spec.Containers); n != 2 {
			t.Errorf("containers %v, want app and one istio-proxy", names(got.Spec.Containers))
		}
		if n := len(got.Spec.InitContainers); n != 1 {
			t.Errorf("init containers %v, want one istio-init", names(got.Spec.InitContainers))
		}
	})

	// Resource and proxy config annotations produce a pod the API server
	// validates; as in Istio's template, the annotations replace the
	// defaults whole (no CPU limit here).
	t.Run("labeled/resources", func(t *testing.T) {
		p := create("labeled", "big", func(p *corev1.Pod) {
			p.Annotations = map[string]string{
				inject.AnnotationProxyCPU: "3", inject.AnnotationProxyMem: "2Gi", inject.AnnotationMemLimit: "4Gi",
				inject.AnnotationConfig: "concurrency: 2\n",
			}
		})
		if !injected(p) {
			t.Fatal("not injected")
		}
		r := p.Spec.Containers[len(p.Spec.Containers)-1].Resources
		if r.Requests.Cpu().String() != "3" || r.Requests.Memory().String() != "2Gi" || r.Limits.Memory().String() != "4Gi" || !r.Limits.Cpu().IsZero() {
			t.Errorf("proxy resources %+v, want requests 3/2Gi, limit memory 4Gi", r)
		}
	})

	// The other modes' pods (native sidecars, CNI) pass the API server's
	// validation too: injected here, created where no webhook runs.
	for _, mode := range []struct {
		name        string
		native, cni bool
	}{{"native", true, false}, {"cni", false, true}, {"native-cni", true, true}} {
		t.Run("plain/"+mode.name, func(t *testing.T) {
			in := inject.New(inject.Config{ClusterID: "cluster1", NativeSidecars: mode.native, CNI: mode.cni})
			src := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "plain", Name: mode.name, Labels: map[string]string{"app": "x"}},
				// Set by the ServiceAccount admission plugin in a real
				// cluster, before webhooks run; testenv turns it off.
				Spec: corev1.PodSpec{
					ServiceAccountName: "x",
					InitContainers:     []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:1"}},
					Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1",
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}}}},
				},
			}
			out, err := in.Inject(src, inject.Target{})
			if err != nil {
				t.Fatal(err)
			}
			got := must(pods("plain").Create(ctx, out, metav1.CreateOptions{}))(t)
			wantInit := []string{"migrate", inject.InitName}
			switch {
			case mode.native && mode.cni:
				wantInit = []string{inject.ValidationName, inject.ProxyName, "migrate"}
			case mode.native:
				wantInit = []string{inject.InitName, inject.ProxyName, "migrate"}
			case mode.cni:
				wantInit = []string{inject.ValidationName, "migrate"}
			}
			if n := names(got.Spec.InitContainers); !slices.Equal(n, wantInit) {
				t.Errorf("init containers %v, want %v", n, wantInit)
			}
		})
	}

	// The webhook does not block pods it cannot inject: a bad resource
	// annotation is admitted unchanged.
	t.Run("labeled/bad-annotation", func(t *testing.T) {
		p := create("labeled", "bad", func(p *corev1.Pod) {
			p.Annotations = map[string]string{inject.AnnotationProxyMem: "lots"}
		})
		if injected(p) {
			t.Errorf("pod with a bad %s injected", inject.AnnotationProxyMem)
		}
	})

	// No leftover: deleting works, so nothing stored is half-valid.
	if err := pods("labeled").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func webhookPort(t *testing.T, rs *runningServer) int {
	t.Helper()
	addr := rs.srv.WebhookAddr().String()
	i := strings.LastIndexByte(addr, ':')
	var port int
	if _, err := fmt.Sscan(addr[i+1:], &port); err != nil {
		t.Fatalf("webhook address %s: %v", addr, err)
	}
	return port
}

func names(cs []corev1.Container) []string {
	var out []string
	for i := range cs {
		out = append(out, cs[i].Name)
	}
	return out
}

// checkInjected checks a stored injected pod: the sidecar's containers,
// environment, volumes and rewritten probe.
func checkInjected(t *testing.T, p *corev1.Pod, cluster, network string) {
	t.Helper()
	if got := names(p.Spec.Containers); !slices.Equal(got, []string{"app", inject.ProxyName}) {
		t.Errorf("containers %v, want [app istio-proxy]", got)
	}
	if got := names(p.Spec.InitContainers); !slices.Equal(got, []string{inject.InitName}) {
		t.Errorf("init containers %v, want [istio-init]", got)
	}
	proxy := p.Spec.Containers[len(p.Spec.Containers)-1]
	env := map[string]string{}
	for _, e := range proxy.Env {
		env[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		"ISTIO_META_CLUSTER_ID":        cluster,
		"ISTIO_META_NETWORK":           network,
		"CA_ADDR":                      "istiod.istio-system.svc:15012",
		"ISTIO_META_INTERCEPTION_MODE": "REDIRECT",
		"ISTIO_META_APP_CONTAINERS":    "app",
		"ISTIO_META_WORKLOAD_NAME":     p.Name,
		"ISTIO_META_OWNER":             "kubernetes://apis/v1/namespaces/" + p.Namespace + "/pods/" + p.Name,
		"TRUST_DOMAIN":                 "cluster.local",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	var probers map[string]json.RawMessage
	if err := json.Unmarshal([]byte(env["ISTIO_KUBE_APP_PROBERS"]), &probers); err != nil || probers["/app-health/app/readyz"] == nil {
		t.Errorf("ISTIO_KUBE_APP_PROBERS %q: want /app-health/app/readyz (%v)", env["ISTIO_KUBE_APP_PROBERS"], err)
	}
	if hg := p.Spec.Containers[0].ReadinessProbe.HTTPGet; hg == nil || hg.Path != "/app-health/app/readyz" || hg.Port.IntValue() != 15020 {
		t.Errorf("app readiness probe %+v, want /app-health/app/readyz on 15020", hg)
	}
	vols := map[string]corev1.Volume{}
	for i := range p.Spec.Volumes {
		vols[p.Spec.Volumes[i].Name] = p.Spec.Volumes[i]
	}
	if tok := vols["istio-token"].Projected; tok == nil || tok.Sources[0].ServiceAccountToken.Audience != "istio-ca" {
		t.Errorf("istio-token volume %+v, want a projected token for audience istio-ca", vols["istio-token"])
	}
	if cm := vols["istiod-ca-cert"].ConfigMap; cm == nil || cm.Name != "istio-ca-root-cert" {
		t.Errorf("istiod-ca-cert volume %+v, want ConfigMap istio-ca-root-cert", vols["istiod-ca-cert"])
	}
	if p.Labels[inject.LabelTLSMode] != "istio" {
		t.Errorf("label %s = %q, want istio", inject.LabelTLSMode, p.Labels[inject.LabelTLSMode])
	}
}
