package ca

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the CA's counters. Their labels are bounded: clusters the
// control plane knows (an unknown claimed cluster counts as "unknown"),
// gRPC codes, and fixed words.
type metrics struct {
	// requests counts CreateCertificate calls by cluster and gRPC code.
	requests *prometheus.CounterVec
	// reviews counts token checks by cluster and outcome (reviewed: a
	// TokenReview was sent; cached: answered from the cache; limited:
	// refused because the cluster's review budget was spent).
	reviews *prometheus.CounterVec
	// loads counts CA loads by source Secret and result (ok, error).
	loads *prometheus.CounterVec
	// servingIssued counts serving certificates issued, by result.
	servingIssued *prometheus.CounterVec
	// rootWrites counts root ConfigMaps created or updated, by cluster and
	// operation (create, update).
	rootWrites *prometheus.CounterVec
	// rootErrors counts failed root ConfigMap writes, by cluster.
	rootErrors *prometheus.CounterVec
	// rootForeign counts root ConfigMaps left to the cluster's own control
	// plane although they hold another root, by cluster.
	rootForeign *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_certificate_requests_total",
			Help: "CreateCertificate calls, by cluster of the caller's token and gRPC status code.",
		}, []string{"cluster", "code"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_token_reviews_total",
			Help: "Token checks of CreateCertificate, by cluster and outcome: reviewed (a TokenReview was sent), cached (answered from the cache), limited (refused: the cluster's TokenReview rate limit was reached).",
		}, []string{"cluster", "outcome"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_loads_total",
			Help: "Loads of the CA from its Secret (cacerts or istio-ca-secret), by result.",
		}, []string{"secret", "result"}),
		servingIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_serving_certificates_total",
			Help: "Serving certificates of the control plane issued, by result.",
		}, []string{"result"}),
		rootWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_root_configmap_writes_total",
			Help: "Root ConfigMaps (istio-ca-root-cert) created or updated, by cluster and operation.",
		}, []string{"cluster", "op"}),
		rootErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_root_configmap_errors_total",
			Help: "Failed writes of root ConfigMaps (istio-ca-root-cert), by cluster.",
		}, []string{"cluster"}),
		rootForeign: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_ca_root_configmap_foreign_total",
			Help: "Root ConfigMaps left to the cluster's own control plane although they hold a different root, by cluster.",
		}, []string{"cluster"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.reviews, m.loads, m.servingIssued, m.rootWrites, m.rootErrors, m.rootForeign} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ca: register metrics: %w", err)
	}
	return m, nil
}
