package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// MaxReviewBytes bounds an AdmissionReview body. The API server caps a
// request at 3 MiB; a review carries the object (and, for updates, the
// old one), so 4 MiB is what a real peer sends.
const MaxReviewBytes = 4 << 20

// Path is the webhook's path; PathPrefix+"cluster/C/net/N" names the
// cluster and network of a remote cluster's pods, as Istio's remote
// profile does.
const (
	Path       = "/inject"
	PathPrefix = "/inject/"
)

// Handler returns the webhook: POST an AdmissionReview of a Pod CREATE,
// get an AdmissionReview back. A request that is not a review gets an
// HTTP error; a review it cannot handle (not a pod, an undecodable pod, a
// bad annotation) is allowed without a patch and logged, so that a pod is
// never blocked by the injector itself (see docs/injection.md). Requests
// are counted in causeway_injection_requests_total of reg (nil: not
// counted), by result.
func (in *Injector) Handler(log *slog.Logger, reg prometheus.Registerer) (http.Handler, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_injection_requests_total",
		Help: "Requests of the sidecar injection webhook, by result: injected (answered with a patch), skipped (the pod is left alone: opted out, host network, already injected, not a pod creation), failed (admitted without sidecar because it could not be injected; see the log), rejected (not an AdmissionReview: HTTP error).",
	}, []string{"result"})
	if reg != nil {
		if err := reg.Register(requests); err != nil {
			return nil, fmt.Errorf("inject: register metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path, func(w http.ResponseWriter, r *http.Request) {
		requests.WithLabelValues(in.serve(w, r, log, Target{})).Inc()
	})
	mux.HandleFunc("POST "+PathPrefix+"cluster/{cluster}/net/{network}", func(w http.ResponseWriter, r *http.Request) {
		t := Target{Cluster: model.ClusterID(r.PathValue("cluster")), Network: model.NetworkID(r.PathValue("network"))}
		requests.WithLabelValues(in.serve(w, r, log, t)).Inc()
	})
	return mux, nil
}

// Results of a webhook request.
const (
	resultInjected = "injected"
	resultSkipped  = "skipped"
	resultFailed   = "failed"
	resultRejected = "rejected"
)

// serve answers one webhook request and returns its result.
func (in *Injector) serve(w http.ResponseWriter, r *http.Request, log *slog.Logger, t Target) string {
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		http.Error(w, "want Content-Type application/json", http.StatusUnsupportedMediaType)
		return resultRejected
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReviewBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("AdmissionReview over %d bytes", MaxReviewBytes), http.StatusRequestEntityTooLarge)
			return resultRejected
		}
		http.Error(w, "read the request: "+err.Error(), http.StatusBadRequest)
		return resultRejected
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "want an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
		return resultRejected
	}
	resp, result := in.review(review.Request, t, log)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encode the response: "+err.Error(), http.StatusInternalServerError)
		return resultFailed
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return result
}

// Review answers one admission request: the patch that injects the pod,
// or an allowed response without patch (logged with the reason) when the
// pod is skipped or cannot be injected.
func (in *Injector) Review(req *admissionv1.AdmissionRequest, t Target, log *slog.Logger) *admissionv1.AdmissionResponse {
	resp, _ := in.review(req, t, log)
	return resp
}

// review is Review, with the result.
func (in *Injector) review(req *admissionv1.AdmissionRequest, t Target, log *slog.Logger) (*admissionv1.AdmissionResponse, string) {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	name := req.Name
	leave := func(reason string, err error) (*admissionv1.AdmissionResponse, string) {
		attrs := []any{"namespace", req.Namespace, "name", name, "cluster", t.Cluster, "reason", reason}
		if err != nil {
			attrs = append(attrs, "err", err)
			log.Info("pod admitted without sidecar", attrs...)
			return resp, resultFailed
		}
		log.Debug("pod admitted without sidecar", attrs...)
		return resp, resultSkipped
	}
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create {
		return leave("not a pod creation: "+req.Kind.String()+" "+string(req.Operation), nil)
	}
	if len(req.Object.Raw) == 0 {
		return leave("the request carries no object", errors.New("empty object"))
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return leave("the pod does not decode", err)
	}
	if name == "" {
		name = pod.GenerateName
	}
	if t.Namespace == "" {
		t.Namespace = req.Namespace
	}
	if t.Cluster == "" {
		t.Cluster = in.cfg.ClusterID
	}
	injected, err := in.Inject(&pod, t)
	if err != nil {
		if skip, ok := errors.AsType[*Skip](err); ok {
			return leave(skip.Reason, nil)
		}
		return leave("the pod cannot be injected", err)
	}
	ops, err := Patch(&pod, injected)
	if err == nil && len(ops) > 0 {
		var b []byte
		b, err = json.Marshal(ops)
		resp.Patch = b
	}
	if err != nil {
		resp.Patch = nil
		return leave("the patch does not encode", err)
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	log.Debug("pod injected", "namespace", t.Namespace, "name", name, "cluster", t.Cluster)
	return resp, resultInjected
}

// WebhookConfiguration returns the MutatingWebhookConfiguration of
// revision rev ("" is default) with Istio's selectors:
//   - a namespace labeled istio.io/rev=REV (and not istio-injection) gets
//     every pod injected that does not opt out (sidecar.istio.io/inject=false);
//   - a pod labeled istio.io/rev=REV in a namespace with neither label;
//   - for the default revision also: a namespace labeled
//     istio-injection=enabled, and a pod labeled sidecar.istio.io/inject=true
//     in a namespace with neither label and without istio.io/rev.
//
// Each webhook calls client (a Service or a URL) with caBundle; path is
// Path or PathPrefix+"cluster/C/net/N". Failure policy Fail and
// reinvocation Never, the defaults of Istio's chart (the injector is
// idempotent, so IfNeeded would also be safe).
func WebhookConfiguration(name, rev string, client admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.MutatingWebhookConfiguration {
	if rev == "" {
		rev = "default"
	}
	sel := func(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: reqs}
	}
	is := func(k string, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpIn, Values: v}
	}
	not := func(k string, v ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: v}
	}
	absent := func(k string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpDoesNotExist}
	}
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	reinvoke := admissionregistrationv1.NeverReinvocationPolicy
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: *client.DeepCopy(),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvoke,
			NamespaceSelector:       ns,
			ObjectSelector:          obj,
		}
	}
	hooks := []admissionregistrationv1.MutatingWebhook{
		hook("rev.namespace.sidecar-injector.istio.io",
			sel(is(LabelRevision, rev), absent(LabelInjection)),
			sel(not(LabelInject, "false"))),
		hook("rev.object.sidecar-injector.istio.io",
			sel(absent(LabelRevision), absent(LabelInjection)),
			sel(not(LabelInject, "false"), is(LabelRevision, rev))),
	}
	if rev == "default" {
		hooks = append(hooks,
			hook("namespace.sidecar-injector.istio.io",
				sel(is(LabelInjection, "enabled")),
				sel(not(LabelInject, "false"))),
			hook("object.sidecar-injector.istio.io",
				sel(absent(LabelRevision), absent(LabelInjection)),
				sel(is(LabelInject, "true"), absent(LabelRevision))))
	}
	wc := &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelRevision: rev}},
		Webhooks:   hooks,
	}
	return wc
}
