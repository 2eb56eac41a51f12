package clusters

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster set's own instruments. Gauges derived from the
// state (clusters by state, endpoints) are collected at scrape time by
// internal/debug from [Set.Statuses].
type metrics struct {
	syncDuration *prometheus.HistogramVec
	secretErrors prometheus.Counter
	swaps        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "causeway_cluster_sync_duration_seconds",
			Help:    "Time from the start of a cluster's watch to its initial list being in the model.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"cluster"}),
		secretErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_remote_secret_errors_total",
			Help: "Remote secret entries (or changes to them) refused: bad kubeconfig, refused credential, colliding cluster id.",
		}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_remote_secret_swaps_total",
			Help: "Clusters moved in place to the changed kubeconfig of their remote secret, once its new watch had synced.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.syncDuration, m.secretErrors, m.swaps} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return nil, fmt.Errorf("clusters: metrics already registered: give each cluster set its own registry: %w", err)
			}
			return nil, fmt.Errorf("clusters: register metrics: %w", err)
		}
	}
	return m, nil
}
