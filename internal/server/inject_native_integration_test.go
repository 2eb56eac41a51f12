package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationInjectionNativeAuto runs the webhook of a real server
// with --native-sidecars=auto against a real kube-apiserver: istio-proxy is
// a native sidecar once every Node's kubelet is 1.33 or newer, not while
// one is older, and for a pod whose node is new whatever the others are.
// The decision follows kubelet upgrades and new Nodes through the
// informers.
func TestIntegrationInjectionNativeAuto(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1"}, MutatingWebhooks: true})
	c := env.Cluster("cluster1")
	cs := c.Client()
	ctx := t.Context()
	must(testenv.CreateNamespace(ctx, cs, "istio-system", nil))(t)
	must(testenv.CreateNamespace(ctx, cs, "mesh", map[string]string{inject.LabelInjection: "enabled"}))(t)
	setKubelet := func(name, version string) {
		t.Helper()
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			n = must(cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}))(t)
		}
		n.Status.NodeInfo.KubeletVersion = version
		must(cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}))(t)
	}
	setKubelet("old", "v1.32.4")

	rs := serveCluster(t, c, Config{WebhookAddr: "127.0.0.1:0", CA: ca.Config{CustomHosts: []string{"localhost"}},
		Inject: inject.Config{NativeSidecarsAuto: true}})
	testkit.Eventually(t, testkit.WaitTimeout, "webhook listener", func() string {
		if rs.srv.WebhookAddr() == nil {
			return "not listening"
		}
		return ""
	})
	url := fmt.Sprintf("https://localhost:%d%s", webhookPort(t, rs), inject.Path)
	wc := inject.WebhookConfiguration("causeway-sidecar-injector", "", admissionregistrationv1.WebhookClientConfig{
		URL: &url, CABundle: rs.srv.CA().Root(),
	})
	must(cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, wc, metav1.CreateOptions{}))(t)

	n := 0
	create := func(node string) *corev1.Pod {
		t.Helper()
		n++
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "mesh", Name: fmt.Sprintf("web-%d", n), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{ServiceAccountName: "web", NodeName: node,
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		return must(cs.CoreV1().Pods("mesh").Create(ctx, p, metav1.CreateOptions{}))(t)
	}
	// The API server calls a new webhook configuration once its informer
	// has it.
	testkit.Eventually(t, 30*time.Second, "the API server never called the webhook", testkit.Holds(func() bool {
		return create("").Annotations[inject.AnnotationStatus] != ""
	}))
	native := func(p *corev1.Pod) bool {
		if p.Annotations[inject.AnnotationStatus] == "" {
			t.Fatalf("pod %s not injected", p.Name)
		}
		i := slices.IndexFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == inject.ProxyName })
		inContainers := slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == inject.ProxyName })
		if (i >= 0) == inContainers {
			t.Fatalf("pod %s: istio-proxy among init containers %v and containers %v, want one of them", p.Name,
				names(p.Spec.InitContainers), names(p.Spec.Containers))
		}
		if i >= 0 {
			if rp := p.Spec.InitContainers[i].RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
				t.Fatalf("pod %s: native istio-proxy without restartPolicy Always", p.Name)
			}
		}
		return i >= 0
	}
	// waitModel waits until the informers delivered the Nodes' versions.
	waitModel := func(node string, want bool) {
		t.Helper()
		testkit.Eventually(t, testkit.WaitTimeout, fmt.Sprintf("decision for node %q = %t", node, want), func() string {
			if got := rs.srv.store.NativeSidecars("cluster1", node); got != want {
				return fmt.Sprintf("decision %t", got)
			}
			return ""
		})
	}

	waitModel("", false)
	if native(create("")) {
		t.Error("native sidecar with a kubelet of 1.32 in the cluster")
	}
	setKubelet("old", "v1.33.0")
	waitModel("", true)
	if !native(create("")) {
		t.Error("no native sidecar when every kubelet is 1.33 or newer")
	}
	// A new Node of an older kubelet turns it off, but not for a pod
	// scheduled on a new node.
	setKubelet("older", "v1.31.2")
	waitModel("", false)
	if native(create("")) {
		t.Error("native sidecar after a Node with a kubelet of 1.31 joined")
	}
	if !native(create("old")) {
		t.Error("no native sidecar for a pod on a node of kubelet 1.33")
	}
	if native(create("older")) {
		t.Error("native sidecar for a pod on a node of kubelet 1.31")
	}
	// The pod's annotation still overrides the decision.
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mesh", Name: "annotated", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{inject.AnnotationNative: "true"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	if !native(must(cs.CoreV1().Pods("mesh").Create(ctx, p, metav1.CreateOptions{}))(t)) {
		t.Error("annotation sidecar.istio.io/nativeSidecar=true not honored under auto")
	}
}
