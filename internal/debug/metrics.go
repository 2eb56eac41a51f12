package debug

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
)

// collector turns the published state into gauges at scrape time, so that
// nothing on the hot path updates a metric.
type collector struct {
	snapshot func() *model.Snapshot
	statuses func() []clusters.Status

	clustersDesc  *prometheus.Desc
	staleDesc     *prometheus.Desc
	endpointsDesc *prometheus.Desc
	droppedDesc   *prometheus.Desc
	badDesc       *prometheus.Desc
	servicesDesc  *prometheus.Desc
	gatewaysDesc  *prometheus.Desc
	ignoredDesc   *prometheus.Desc
}

// NewCollector returns the collector of Causeway's state gauges: clusters by
// state, seconds each unreachable cluster's data has been stale, endpoints
// by cluster and network, endpoints dropped for want of a gateway by
// network, unusable remote secret entries, services and gateways.
func NewCollector(snapshot func() *model.Snapshot, statuses func() []clusters.Status) prometheus.Collector {
	return &collector{
		snapshot: snapshot,
		statuses: statuses,
		clustersDesc: prometheus.NewDesc("causeway_clusters",
			"Watched clusters (and unusable remote secret entries, state error) by state.", []string{"state"}, nil),
		staleDesc: prometheus.NewDesc("causeway_cluster_stale_seconds",
			"Seconds since an unreachable cluster's API server last answered (0 when live).", []string{"cluster"}, nil),
		endpointsDesc: prometheus.NewDesc("causeway_endpoints",
			"Ready endpoint addresses by cluster and network.", []string{"cluster", "network"}, nil),
		droppedDesc: prometheus.NewDesc("causeway_endpoints_dropped_no_gateway",
			"Endpoints left out of other networks' views because their network has no gateway, by network.", []string{"network"}, nil),
		badDesc: prometheus.NewDesc("causeway_remote_secret_invalid_entries",
			"Remote secret entries that cannot be used (bad kubeconfig, refused credential, colliding cluster id).", nil, nil),
		servicesDesc: prometheus.NewDesc("causeway_services", "Services known to the mesh (by host).", nil, nil),
		gatewaysDesc: prometheus.NewDesc("causeway_gateways", "East-west gateways of every network.", nil, nil),
		ignoredDesc: prometheus.NewDesc("causeway_gateway_annotations_ignored",
			"Unparsable networking.istio.io/gatewayPort labels and traffic.istio.io/nodeSelector annotations of gateway Services, ignored (the Service is kept with the defaults; /debug/networks names them).", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clustersDesc, c.staleDesc, c.endpointsDesc, c.droppedDesc, c.badDesc, c.servicesDesc, c.gatewaysDesc, c.ignoredDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	byState := map[clusters.State]int{}
	bad := 0
	sts := c.statuses()
	for i := range sts {
		st := &sts[i]
		byState[st.State]++
		if st.State == clusters.StateError {
			bad++
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.staleDesc, prometheus.GaugeValue, st.StaleSeconds, string(st.ID))
	}
	for _, s := range clusters.States() {
		ch <- prometheus.MustNewConstMetric(c.clustersDesc, prometheus.GaugeValue, float64(byState[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.badDesc, prometheus.GaugeValue, float64(bad))

	sn := c.snapshot()
	if sn == nil {
		return
	}
	stats := sn.Stats()
	for cl, nets := range stats.Endpoints {
		for n, count := range nets {
			ch <- prometheus.MustNewConstMetric(c.endpointsDesc, prometheus.GaugeValue, float64(count), string(cl), string(n))
		}
	}
	for n, count := range stats.DroppedNoGateway {
		ch <- prometheus.MustNewConstMetric(c.droppedDesc, prometheus.GaugeValue, float64(count), string(n))
	}
	ch <- prometheus.MustNewConstMetric(c.servicesDesc, prometheus.GaugeValue, float64(stats.Services))
	ch <- prometheus.MustNewConstMetric(c.gatewaysDesc, prometheus.GaugeValue, float64(stats.Gateways))
	ch <- prometheus.MustNewConstMetric(c.ignoredDesc, prometheus.GaugeValue, float64(stats.IgnoredGatewayAnnotations))
}
