package check

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/pki"
)

// Istio's injection labels and annotations.
const (
	labelInjection = "istio-injection"
	labelInject    = "sidecar.istio.io/inject"
	// annotationTemplates names the injection templates of a pod; Istio's
	// gateway chart asks for "gateway".
	annotationTemplates = "inject.istio.io/templates"
)

// injectorHook is one webhook of a MutatingWebhookConfiguration that
// injects sidecars.
type injectorHook struct {
	config string
	hook   *admissionregistrationv1.MutatingWebhook
}

// injectors are the sidecar injection webhooks of a cluster: Istio's
// names (*.sidecar-injector.istio.io) or a path under /inject, Causeway's
// and istiod's.
func injectors(whs []admissionregistrationv1.MutatingWebhookConfiguration) []injectorHook {
	var out []injectorHook
	for i := range whs {
		for j := range whs[i].Webhooks {
			h := &whs[i].Webhooks[j]
			if strings.HasSuffix(h.Name, "sidecar-injector.istio.io") || strings.HasPrefix(hookPath(h.ClientConfig), "/inject") {
				out = append(out, injectorHook{config: whs[i].Name, hook: h})
			}
		}
	}
	return out
}

func hookPath(c admissionregistrationv1.WebhookClientConfig) string {
	if c.Service != nil && c.Service.Path != nil {
		return *c.Service.Path
	}
	if c.URL != nil {
		if u, err := url.Parse(*c.URL); err == nil {
			return u.Path
		}
	}
	return ""
}

// webhookSelects reports whether the API server sends a pod with podLabels in
// namespace ns to the webhook.
func webhookSelects(h *admissionregistrationv1.MutatingWebhook, ns *corev1.Namespace, podLabels map[string]string) bool {
	match := func(sel *metav1.LabelSelector, set map[string]string) bool {
		if sel == nil {
			return true
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && s.Matches(labels.Set(set))
	}
	return match(h.NamespaceSelector, ns.Labels) && match(h.ObjectSelector, podLabels)
}

// webhookRule flags the home lab's injection pitfalls: a namespace that asks
// for injection (istio-injection=enabled, or istio.io/rev=REV) that no
// webhook serves, and a webhook whose caBundle is not the mesh root.
func webhookRule(m *mesh) []Result {
	var out []Result
	for _, s := range m.snaps {
		st := &s.injection
		if st.err != nil {
			out = append(out, Result{Warn, s.name, CheckWebhook, fmt.Sprintf("cannot read namespaces, webhook configurations or ConfigMap %s: %v", install.RootCertConfigMap, st.err),
				"the check needs list on namespaces, mutatingwebhookconfigurations and deployments, and get on configmaps of the system namespace"})
			continue
		}
		hooks := injectors(st.webhooks)
		before := len(out)
		out = append(out, unservedNamespaces(s, hooks)...)
		out = append(out, unservedWorkloads(s, hooks)...)
		out = append(out, caBundleResults(m, s, hooks)...)
		out = append(out, webhookHostResults(m, s, hooks)...)
		if len(out) == before {
			configs := map[string]bool{}
			for _, h := range hooks {
				configs[h.config] = true
			}
			msg := "no injection webhook, and no namespace asks for injection"
			if len(configs) > 0 {
				msg = fmt.Sprintf("%d injection webhook configuration(s), trusting the mesh root; every namespace that asks for injection is served", len(configs))
			}
			out = append(out, Result{OK, s.name, CheckWebhook, msg, ""})
		}
	}
	return out
}

// unservedNamespaces: namespaces labeled for injection whose pods no
// injection webhook receives.
func unservedNamespaces(s *snapshot, hooks []injectorHook) []Result {
	var out []Result
	revs := servedRevisions(hooks)
	for i := range s.injection.namespaces {
		ns := &s.injection.namespaces[i]
		inj, rev := ns.Labels[labelInjection], ns.Labels[install.LabelRevision]
		if inj != "enabled" && (inj != "" || rev == "") {
			continue // does not ask (or turns it off)
		}
		if slices.ContainsFunc(hooks, func(h injectorHook) bool { return webhookSelects(h.hook, ns, nil) }) {
			continue
		}
		served := "none"
		if len(revs) > 0 {
			served = strings.Join(revs, ", ")
		}
		if inj == "enabled" {
			out = append(out, Result{Fail, s.name, CheckWebhook,
				fmt.Sprintf("namespace %s is labeled istio-injection=enabled but no injection webhook serves it (revisions with a webhook here: %s): its pods start without sidecars", ns.Name, served),
				fmt.Sprintf("register the default revision's webhook: causeway manifest generate --profile primary (or remote) ... --only MutatingWebhookConfiguration | kubectl --context %s apply -f -; or, for a revisioned control plane: kubectl --context %s label namespace %s istio-injection- istio.io/rev=REVISION", s.name, s.name, ns.Name)})
			continue
		}
		out = append(out, Result{Fail, s.name, CheckWebhook,
			fmt.Sprintf("namespace %s is labeled istio.io/rev=%s but no injection webhook serves revision %s (revisions with a webhook here: %s): its pods start without sidecars", ns.Name, rev, rev, served),
			fmt.Sprintf("register revision %s's webhook: causeway manifest generate --profile primary (or remote) --revision %s ... --only MutatingWebhookConfiguration | kubectl --context %s apply -f -; or relabel to a served revision: kubectl --context %s label namespace %s istio.io/rev=REVISION --overwrite", rev, rev, s.name, s.name, ns.Name)})
	}
	return out
}

// unservedWorkloads: Deployments whose pods are labeled istio.io/rev=REV
// that no injection webhook receives (Istio's rev.object webhook of that
// revision selects them in a namespace without injection labels).
func unservedWorkloads(s *snapshot, hooks []injectorHook) []Result {
	var out []Result
	namespaces := map[string]*corev1.Namespace{}
	for i := range s.injection.namespaces {
		namespaces[s.injection.namespaces[i].Name] = &s.injection.namespaces[i]
	}
	revs := servedRevisions(hooks)
	served := "none"
	if len(revs) > 0 {
		served = strings.Join(revs, ", ")
	}
	for i := range s.injection.revisionDeployments {
		d := &s.injection.revisionDeployments[i]
		ns, ok := namespaces[d.Namespace]
		podLabels := d.Spec.Template.Labels
		if !ok || podLabels[labelInject] == "false" || slices.ContainsFunc(hooks, func(h injectorHook) bool { return webhookSelects(h.hook, ns, podLabels) }) {
			continue
		}
		rev := podLabels[install.LabelRevision]
		out = append(out, Result{Fail, s.name, CheckWebhook,
			fmt.Sprintf("Deployment %s/%s labels its pods istio.io/rev=%s but no injection webhook serves them (revisions with a webhook here: %s): they start without sidecars", d.Namespace, d.Name, rev, served),
			fmt.Sprintf("register revision %s's webhook: causeway manifest generate --profile primary (or remote) --revision %s ... --only MutatingWebhookConfiguration | kubectl --context %s apply -f -; or set the pod template's istio.io/rev to a served revision", rev, rev, s.name)})
	}
	return out
}

// servedRevisions are the istio.io/rev labels of the injection webhook
// configurations, sorted.
func servedRevisions(hooks []injectorHook) []string {
	var revs []string
	for _, h := range hooks {
		// The revision a webhook serves is what its namespace selector
		// asks of istio.io/rev.
		if sel := h.hook.NamespaceSelector; sel != nil {
			for _, r := range sel.MatchExpressions {
				if r.Key == install.LabelRevision && r.Operator == metav1.LabelSelectorOpIn {
					revs = append(revs, r.Values...)
				}
			}
		}
	}
	slices.Sort(revs)
	return slices.Compact(revs)
}

// meshRoot is the root the cluster's workloads trust: cacerts'
// root-cert.pem, else the ConfigMap istio-ca-root-cert the control plane
// publishes, else the self-signed CA's. It returns the root's SHA-256
// fingerprints, its first subject and where it was read.
func meshRoot(s *snapshot) (fps []string, subject, from string) {
	var pem []byte
	switch {
	case s.cacerts != nil && len(s.cacerts.Data[pki.FileRootCert]) > 0:
		pem, from = s.cacerts.Data[pki.FileRootCert], "cacerts "+pki.FileRootCert
	case s.injection.rootConfigMap != nil && s.injection.rootConfigMap.Data[install.RootCertKey] != "":
		pem, from = []byte(s.injection.rootConfigMap.Data[install.RootCertKey]), "ConfigMap "+install.RootCertConfigMap
	case s.caSecret != nil:
		pem, from = s.caSecret.Data[pki.FileRootCert], install.CASecretName
		if len(pem) == 0 {
			pem = s.caSecret.Data[pki.FileCACert]
		}
	}
	infos, err := pki.Inspect(pem)
	if err != nil {
		return nil, "", from
	}
	for i := range infos {
		fps = append(fps, infos[i].SHA256)
		if subject == "" {
			subject = infos[i].Subject
		}
	}
	return fps, subject, from
}

// caBundleResults: one line per injection webhook configuration whose
// caBundle is empty or is not the mesh root.
func caBundleResults(m *mesh, s *snapshot, hooks []injectorHook) []Result {
	if len(hooks) == 0 {
		return nil
	}
	ns := m.cfg.SystemNamespace
	fps, subject, from := meshRoot(s)
	fix := func(config string) string {
		return fmt.Sprintf("kubectl --context %s -n %s get configmap %s -o jsonpath='{.data.root-cert\\.pem}' > root-cert.pem (on a primary: cacerts' root-cert.pem), then regenerate the webhook with it: causeway manifest generate ... --ca-bundle root-cert.pem --only MutatingWebhookConfiguration | kubectl --context %s apply -f - (configuration %s)",
			s.name, ns, install.RootCertConfigMap, s.name, config)
	}
	var out []Result
	done := map[string]bool{}
	for _, h := range hooks {
		if done[h.config] {
			continue
		}
		bundle := h.hook.ClientConfig.CABundle
		switch {
		case len(bundle) == 0:
			out = append(out, Result{Fail, s.name, CheckWebhook,
				fmt.Sprintf("injection webhook %s (%s) has no caBundle: the API server cannot verify the control plane's certificate and refuses every pod the webhook selects", h.config, h.hook.Name),
				fix(h.config)})
		case len(fps) == 0:
			out = append(out, Result{Warn, s.name, CheckWebhook,
				fmt.Sprintf("cannot tell whether injection webhook %s trusts the mesh root: this cluster has neither cacerts nor ConfigMap %s/%s (yet)", h.config, ns, install.RootCertConfigMap),
				"once the control plane runs (or the primary holds this cluster's remote secret) the ConfigMap appears; check again"})
		default:
			infos, err := pki.Inspect(bundle)
			if err == nil && slices.ContainsFunc(infos, func(in pki.CertInfo) bool { return slices.Contains(fps, in.SHA256) }) {
				continue
			}
			got := "no certificate"
			if err == nil && len(infos) > 0 {
				got = fmt.Sprintf("%q", infos[0].Subject)
			}
			out = append(out, Result{Fail, s.name, CheckWebhook,
				fmt.Sprintf("injection webhook %s (%s) trusts %s, not the mesh root %q of %s: the API server cannot verify the control plane's certificate and refuses every pod the webhook selects", h.config, h.hook.Name, got, subject, from),
				fix(h.config)})
		}
		done[h.config] = true
	}
	return out
}

// expectsInjection says why a Deployment's pods need the injector: the
// gateway template (Istio's gateway chart), an explicit opt-in, or the
// image "auto" that only injection replaces. "" when they do not.
func expectsInjection(d *appsv1.Deployment) string {
	tpl := d.Spec.Template
	if t := tpl.Annotations[annotationTemplates]; slices.Contains(strings.Split(t, ","), "gateway") {
		return annotationTemplates + "=" + t
	}
	if tpl.Labels[labelInject] == "true" {
		return labelInject + "=true"
	}
	for i := range tpl.Spec.Containers {
		if c := &tpl.Spec.Containers[i]; c.Image == "auto" {
			return "container " + c.Name + " has image: auto"
		}
	}
	return ""
}

// disabledGatewayRule: a namespace labeled istio-injection=disabled that
// holds Deployments which only work injected (the home lab's gateway that
// never started).
func disabledGatewayRule(m *mesh) []Result {
	var out []Result
	for _, s := range m.snaps {
		for i := range s.injection.disabledDeployments {
			d := &s.injection.disabledDeployments[i]
			why := expectsInjection(d)
			if why == "" {
				continue
			}
			out = append(out, Result{Fail, s.name, CheckInjection,
				fmt.Sprintf("Deployment %s/%s expects injection (%s) but its namespace is labeled istio-injection=disabled, which no injection webhook overrides: its pods never get their proxy", d.Namespace, d.Name, why),
				fmt.Sprintf("kubectl --context %s label namespace %s istio-injection- (or deploy the gateway fully specified: causeway manifest generate --profile eastwest-gateway --gateway-image istio)", s.name, d.Namespace)})
		}
	}
	return out
}

// webhookHostResults: a webhook that calls a URL (a remote cluster's,
// through the primary's gateway) must name a host that a control plane's
// serving certificate covers, or the API server refuses the connection.
// Said only when a control plane is among the clusters checked.
func webhookHostResults(m *mesh, s *snapshot, hooks []injectorHook) []Result {
	cps := m.allControlPlanes()
	var out []Result
	done := map[string]bool{}
	for _, h := range hooks {
		if done[h.config] || h.hook.ClientConfig.URL == nil {
			continue
		}
		done[h.config] = true
		u, err := url.Parse(*h.hook.ClientConfig.URL)
		if err != nil {
			continue // the API server validates URLs
		}
		host := u.Hostname()
		if net.ParseIP(host) != nil {
			out = append(out, Result{Fail, s.name, CheckWebhook,
				fmt.Sprintf("injection webhook %s calls %s, an IP: the control plane's serving certificate names DNS names only, so the API server cannot verify it and refuses every pod the webhook selects", h.config, *h.hook.ClientConfig.URL),
				fmt.Sprintf("give the primary's gateway a DNS name that this cluster's API server resolves, add it to the primary (causeway manifest generate --profile primary ... --custom-host NAME), and regenerate this webhook: causeway manifest generate --profile remote ... --webhook-host NAME --only MutatingWebhookConfiguration | kubectl --context %s apply -f -", s.name)})
			continue
		}
		if len(cps) == 0 || slices.ContainsFunc(cps, func(cp controlPlane) bool { return covers(cp.sans, host) }) {
			continue
		}
		var names []string
		for _, cp := range cps {
			names = append(names, cp.cluster+"/"+cp.dep.Name)
		}
		out = append(out, Result{Fail, s.name, CheckWebhook,
			fmt.Sprintf("injection webhook %s calls %s, but no control plane's serving certificate (%s) names %s: the API server refuses every pod the webhook selects", h.config, *h.hook.ClientConfig.URL, strings.Join(names, ", "), host),
			fmt.Sprintf("add the name to the primary's certificate: causeway manifest generate --profile primary ... --custom-host %s | kubectl apply -f - (or point the webhook at a covered name with --webhook-host)", host)})
	}
	return out
}
