// Package ca is the control plane's certificate authority at run time: it
// loads the plug-in CA of the config cluster (Istio's `cacerts` Secret of
// the system namespace, reloaded when it changes) or, without one, a
// self-signed root it keeps in the Secret `istio-ca-secret`; it answers
// istio.v1.auth.IstioCertificateService/CreateCertificate for workloads that
// prove their identity with a Kubernetes service-account token (checked by
// a TokenReview in the cluster named by the `clusterid` request metadata);
// it serves the control plane's own TLS certificate (istiod's DNS names and
// every custom host), rotated before it expires and when the CA changes;
// and it publishes the root in the ConfigMap `istio-ca-root-cert` of every
// namespace of every cluster it is given. The crypto is internal/pki's;
// this package adds Kubernetes, gRPC, rotation and metrics.
package ca
