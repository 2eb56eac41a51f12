// Package inject is Causeway's sidecar injector: it turns a Pod of an
// admission.k8s.io/v1 AdmissionReview into the JSON patch (RFC 6902) that
// adds Istio's sidecar as istiod's injection template does for the
// supported Istio version: the istio-init container (unless CNI does the
// capture), the istio-proxy container with its environment, volumes and
// probes, app probes rewritten to the agent, the
// sidecar.istio.io/status annotation and Istio's canonical labels.
//
// [Injector.Inject] is pure apart from the network decision, which comes
// from [Config.Network] (the model's network rules); [Injector.ServeHTTP]
// is the webhook (/inject, /inject/cluster/C/net/N) and the server only
// wires it to a TLS listener. [WebhookConfiguration] is the
// MutatingWebhookConfiguration with Istio's selectors.
package inject
