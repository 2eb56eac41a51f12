package xds

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	sendTimeouts   prometheus.Counter
	nacks          *prometheus.CounterVec
	responses      *prometheus.CounterVec
	proxies        prometheus.Gauge
	publishSeconds prometheus.Histogram
	// sendBudgetBytes and sendBudgetWaits describe the send budget.
	sendBudgetBytes prometheus.Gauge
	sendBudgetWaits prometheus.Counter
	// sendBudgetTimeouts counts streams closed waiting for the budget.
	sendBudgetTimeouts prometheus.Counter
	// views and viewRefusals describe the views' lifecycle.
	views        prometheus.Gauge
	viewRefusals prometheus.Counter
	// requestsRefused counts requests over a size or names limit.
	requestsRefused *prometheus.CounterVec
	// namesCacheBytes is the memory of the shared resource-name lists.
	namesCacheBytes prometheus.Gauge
	// drained counts streams a drain ended or refused.
	drained *prometheus.CounterVec
}

// newMetrics makes the metrics and registers them with reg, if not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sendTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_xds_send_timeouts_total",
			Help: "xDS streams closed because sending a response blocked past the send timeout.",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_nacks_total",
			Help: "xDS responses rejected by proxies, by type (cds, eds, lds, rds).",
		}, []string{"type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_responses_total",
			Help: "xDS responses sent, by type (cds, eds, lds, rds).",
		}, []string{"type"}),
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_xds_connected_proxies",
			Help: "ADS streams whose proxy is identified.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "causeway_xds_publish_seconds",
			Help:    "Time to bring every xDS view up to a new snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		sendBudgetBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_xds_send_budget_bytes",
			Help: "Bytes of large xDS responses in flight (sent, not yet acknowledged), bounded by the send budget.",
		}),
		sendBudgetWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_xds_send_budget_waits_total",
			Help: "Large xDS responses that waited for the send budget before being sent.",
		}),
		sendBudgetTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_xds_send_budget_timeouts_total",
			Help: "xDS streams closed because a response waited for the send budget past the budget wait (--xds-send-budget-wait).",
		}),
		views: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_xds_views",
			Help: "xDS views (one resource type of one network, namespace and cluster that proxies claim) the server holds, unused ones included until their grace ends.",
		}),
		viewRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_xds_view_refusals_total",
			Help: "xDS requests refused because the view limit (--xds-max-views) was reached and the proxy's network or cluster is unknown to the mesh.",
		}),
		requestsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_requests_refused_total",
			Help: "xDS requests refused for a limit, by reason (names: more resource names than --xds-max-request-names).",
		}, []string{"reason"}),
		namesCacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_xds_names_cache_bytes",
			Help: "Memory of the shared resource-name lists of xDS requests, bounded by --xds-names-cache-bytes.",
		}),
		drained: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_drained_streams_total",
			Help: "xDS streams a drain (SIGTERM, --drain-duration) ended (outcome closed) or refused as they opened (outcome refused).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.sendTimeouts, m.nacks, m.responses, m.proxies, m.publishSeconds, m.sendBudgetBytes, m.sendBudgetWaits,
			m.sendBudgetTimeouts, m.views, m.viewRefusals, m.requestsRefused, m.namesCacheBytes, m.drained)
	}
	return m
}

// gcpLogger hands go-control-plane's logs to slog. Its info lines (one per
// watch opened) are debug here: at info level they would flood the log.
type gcpLogger struct {
	log *slog.Logger
}

func (l gcpLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, "go-control-plane", "detail", fmt.Sprintf(format, args...))
}

func (l gcpLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args) }
func (l gcpLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args) }
func (l gcpLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args) }
func (l gcpLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args) }
