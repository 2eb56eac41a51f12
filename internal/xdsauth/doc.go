// Package xdsauth authenticates the ADS streams of the control plane's
// secure port (:15012) as istiod does: the client proves a Kubernetes
// service account, with a client certificate of the mesh CA or with a
// service-account token that a TokenReview accepts in the cluster its node
// names (internal/ca does both checks, with the CA's TokenReview cache and
// rate limit), and the node may claim only that service account's
// namespace and name. The check needs the node, which comes with the
// first request, so a gRPC stream interceptor wraps each ADS stream and
// decides on its first message; a refused stream ends with Unauthenticated
// or PermissionDenied and a message that says what to send instead, and
// is counted in causeway_xds_auth_refused_total{reason}. The plaintext
// port does not use it.
package xdsauth
