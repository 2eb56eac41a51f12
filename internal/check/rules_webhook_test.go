package check

import (
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// generatedWebhook is the webhook configuration `manifest generate` makes
// for revision rev with caBundle root.
func generatedWebhook(t *testing.T, rev string, root []byte) admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	objs, err := install.Generate(install.ProfilePrimary, install.Values{ClusterID: "c1", Image: "causeway:test", Revision: rev, CABundle: string(root)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if wc, ok := o.(*admissionregistrationv1.MutatingWebhookConfiguration); ok {
			return *wc
		}
	}
	t.Fatal("no webhook configuration")
	return admissionregistrationv1.MutatingWebhookConfiguration{}
}

// urlWebhook is the generated configuration, calling url instead.
func urlWebhook(t *testing.T, root []byte, url string) admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	wc := generatedWebhook(t, "", root)
	for i := range wc.Webhooks {
		wc.Webhooks[i].ClientConfig.Service = nil
		wc.Webhooks[i].ClientConfig.URL = &url
	}
	return wc
}

func revDep(ns, name, rev string) appsv1.Deployment {
	d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	d.Spec.Template.Labels = map[string]string{"istio.io/rev": rev}
	return d
}

func nsWith(name string, labels map[string]string) corev1.Namespace {
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestWebhookRules(t *testing.T) {
	root, _, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := pki.NewRoot(pki.RootOptions{CommonName: "Other Root CA"})
	if err != nil {
		t.Fatal(err)
	}
	rootCM := &corev1.ConfigMap{Data: map[string]string{install.RootCertKey: string(root)}}
	labeled := []corev1.Namespace{
		nsWith("istio-system", nil),
		nsWith("apps", map[string]string{"istio-injection": "enabled"}),
		nsWith("canary-apps", map[string]string{"istio.io/rev": "canary"}),
		nsWith("default-rev", map[string]string{"istio.io/rev": "default"}),
		nsWith("off", map[string]string{"istio-injection": "disabled", "istio.io/rev": "canary"}),
	}
	gatewayDep := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "off"}}
	gatewayDep.Spec.Template.Annotations = map[string]string{"inject.istio.io/templates": "gateway"}
	plainDep := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "off"}}
	plainDep.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "app:1"}}
	autoDep := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "auto", Namespace: "off"}}
	autoDep.Spec.Template.Spec.Containers = []corev1.Container{{Name: "istio-proxy", Image: "auto"}}

	tests := []struct {
		name string
		st   injectionState
		// want: status and a part of the message, in order, of the
		// webhook and injection checks' lines.
		want []string
	}{
		{
			name: "default webhook with the root: enabled and rev=default served, canary not",
			st:   injectionState{namespaces: labeled, webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{generatedWebhook(t, "", root)}, rootConfigMap: rootCM},
			want: []string{"fail namespace canary-apps is labeled istio.io/rev=canary but no injection webhook serves revision canary (revisions with a webhook here: default)"},
		},
		{
			name: "both revisions: all served, ok",
			st: injectionState{namespaces: labeled, rootConfigMap: rootCM, webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{
				generatedWebhook(t, "", root), generatedWebhook(t, "canary", root),
			}},
			want: []string{"ok 2 injection webhook configuration(s), trusting the mesh root"},
		},
		{
			name: "only a canary webhook: the enabled and default namespaces are not served",
			st:   injectionState{namespaces: labeled, rootConfigMap: rootCM, webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{generatedWebhook(t, "canary", root)}},
			want: []string{
				"fail namespace apps is labeled istio-injection=enabled but no injection webhook serves it (revisions with a webhook here: canary)",
				"fail namespace default-rev is labeled istio.io/rev=default but no injection webhook serves revision default",
			},
		},
		{
			name: "no webhook at all",
			st:   injectionState{namespaces: labeled[:2]},
			want: []string{"fail namespace apps is labeled istio-injection=enabled but no injection webhook serves it (revisions with a webhook here: none)"},
		},
		{
			name: "caBundle of another root, and an empty one",
			st: injectionState{namespaces: labeled[:2], rootConfigMap: rootCM, webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{
				generatedWebhook(t, "", other), generatedWebhook(t, "canary", nil),
			}},
			want: []string{
				`fail injection webhook istio-sidecar-injector (rev.namespace.sidecar-injector.istio.io) trusts "CN=Other Root CA,O=Istio", not the mesh root "CN=Root CA,O=Istio" of ConfigMap istio-ca-root-cert`,
				"fail injection webhook istio-sidecar-injector-canary (rev.namespace.sidecar-injector.istio.io) has no caBundle",
			},
		},
		{
			name: "a remote webhook that calls an IP",
			st:   injectionState{namespaces: labeled[:2], rootConfigMap: rootCM, webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{urlWebhook(t, root, "https://192.0.2.10:15017/inject/cluster/c2/net/n2")}},
			want: []string{"fail injection webhook istio-sidecar-injector calls https://192.0.2.10:15017/inject/cluster/c2/net/n2, an IP"},
		},
		{
			name: "pods labeled with a revision: canary unserved, default served",
			st: injectionState{namespaces: []corev1.Namespace{nsWith("plain", nil)}, rootConfigMap: rootCM,
				webhooks:            []admissionregistrationv1.MutatingWebhookConfiguration{generatedWebhook(t, "", root)},
				revisionDeployments: []appsv1.Deployment{revDep("plain", "canary-app", "canary"), revDep("plain", "default-app", "default")}},
			want: []string{"fail Deployment plain/canary-app labels its pods istio.io/rev=canary but no injection webhook serves them (revisions with a webhook here: default)"},
		},
		{
			name: "no mesh root known",
			st:   injectionState{namespaces: labeled[:2], webhooks: []admissionregistrationv1.MutatingWebhookConfiguration{generatedWebhook(t, "", root)}},
			want: []string{"warn cannot tell whether injection webhook istio-sidecar-injector trusts the mesh root"},
		},
		{
			name: "gateways that need injection in a disabled namespace",
			st:   injectionState{rootConfigMap: rootCM, disabledDeployments: []appsv1.Deployment{autoDep, gatewayDep, plainDep}, namespaces: labeled[:1]},
			want: []string{
				"fail Deployment off/auto expects injection (container istio-proxy has image: auto)",
				"fail Deployment off/gw expects injection (inject.istio.io/templates=gateway)",
				"ok no injection webhook, and no namespace asks for injection",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mesh{cfg: Config{SystemNamespace: "istio-system", Now: time.Now}, snaps: []*snapshot{{name: "c1", injection: tt.st}}}
			var got []Result
			got = append(got, disabledGatewayRule(m)...)
			got = append(got, webhookRule(m)...)
			if len(got) != len(tt.want) {
				t.Fatalf("%d results, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				status, msg, _ := strings.Cut(w, " ")
				if string(got[i].Status) != status || !strings.Contains(got[i].Message, msg) {
					t.Errorf("result %d: %s %s, want %s ...%s...", i, got[i].Status, got[i].Message, status, msg)
				}
				if got[i].Status != OK && got[i].Fix == "" {
					t.Errorf("result %d has no fix", i)
				}
			}
		})
	}
}
