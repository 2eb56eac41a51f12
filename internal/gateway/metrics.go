package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// reason is why the gateway closed a connection without passing it on.
type reason int

// Reasons a connection is refused; each is a value of the reason label of
// causeway_gateway_connection_errors_total.
const (
	// reasonHelloTimeout: no complete ClientHello within HelloTimeout.
	reasonHelloTimeout reason = iota
	// reasonBadHello: the bytes are not a TLS ClientHello, or the client
	// closed the connection before its end.
	reasonBadHello
	// reasonNoRoute: no filter chain matches the SNI and ALPN (an unknown
	// service, or no SNI at all).
	reasonNoRoute
	// reasonNoCluster: the filter chain's cluster is not in CDS.
	reasonNoCluster
	// reasonNoEndpoints: the cluster has no usable endpoint.
	reasonNoEndpoints
	// reasonDialFailed: connecting to the picked endpoint failed.
	reasonDialFailed
	// reasonHelloLimit: Config.MaxPendingHellos connections were already
	// waiting for their ClientHello; closed at once.
	reasonHelloLimit
	numReasons
)

func (r reason) String() string {
	switch r {
	case reasonHelloTimeout:
		return "hello_timeout"
	case reasonBadHello:
		return "bad_hello"
	case reasonNoRoute:
		return "no_route"
	case reasonNoCluster:
		return "no_cluster"
	case reasonNoEndpoints:
		return "no_endpoints"
	case reasonDialFailed:
		return "dial_failed"
	case reasonHelloLimit:
		return "hello_limit"
	default:
		return "unknown"
	}
}

// xDS resource kinds, for the type label of the xDS metrics.
const (
	kindListeners = iota
	kindClusters
	kindEndpoints
	numKinds
)

func kindName(k int) string {
	switch k {
	case kindListeners:
		return "lds"
	case kindClusters:
		return "cds"
	default:
		return "eds"
	}
}

// metrics are the gateway's Prometheus metrics, in a registry of its own.
// The accept path only touches children resolved here, never a label
// lookup.
type metrics struct {
	reg *prometheus.Registry

	accepted prometheus.Counter
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	errors   [numReasons]prometheus.Counter

	xdsConnected prometheus.Gauge
	xdsAck       [numKinds]prometheus.Counter
	xdsNack      [numKinds]prometheus.Counter
}

// newMetrics registers the metrics; table is the routing table in use and
// active the number of open connections, both read when scraped.
func newMetrics(table func() *Table, active, pendingHellos func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "causeway_gateway_connections_total",
			Help: "Connections accepted.",
		}),
		xdsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "causeway_gateway_xds_connected",
			Help: "1 while the ADS stream to the control plane is up.",
		}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_gateway_bytes_total",
		Help: "Bytes passed, by direction: in (client to endpoint, ClientHello included) and out (endpoint to client). " +
			"A connection's bytes are counted when each direction ends.",
	}, []string{"direction"})
	m.bytesIn = bytes.WithLabelValues("in")
	m.bytesOut = bytes.WithLabelValues("out")
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_gateway_connection_errors_total",
		Help: "Connections closed without being passed on, by reason: hello_timeout, bad_hello, no_route (unknown SNI), " +
			"no_cluster, no_endpoints, dial_failed, hello_limit (closed at once: too many connections were waiting for their ClientHello).",
	}, []string{"reason"})
	for r := range numReasons {
		m.errors[r] = errs.WithLabelValues(r.String())
	}
	updates := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_gateway_xds_updates_total",
		Help: "xDS responses, by type (lds, cds, eds) and result: ack (applied) or nack (rejected, last good config kept).",
	}, []string{"type", "result"})
	for k := range numKinds {
		m.xdsAck[k] = updates.WithLabelValues(kindName(k), "ack")
		m.xdsNack[k] = updates.WithLabelValues(kindName(k), "nack")
	}
	activeGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "causeway_gateway_connections_active",
		Help: "Connections open: reading the ClientHello, connecting, or passing bytes.",
	}, active)
	pendingGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "causeway_gateway_hellos_pending",
		Help: "Connections waiting for their TLS ClientHello (capped by --max-pending-hellos).",
	}, pendingHellos)
	m.reg.MustRegister(m.accepted, activeGauge, pendingGauge, bytes, errs, m.xdsConnected, updates,
		newClusterCollector(table),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// clusterCollector reports per-cluster connection counts from the counters
// of the current table's clusters, so that the accept path counts with an
// atomic add and clusters removed from the config leave the metrics.
type clusterCollector struct {
	table        func() *Table
	connections  *prometheus.Desc
	active       *prometheus.Desc
	endpointsNum *prometheus.Desc
}

func newClusterCollector(table func() *Table) *clusterCollector {
	return &clusterCollector{
		table: table,
		connections: prometheus.NewDesc("causeway_gateway_cluster_connections_total",
			"Connections passed to an endpoint of the cluster.", []string{"cluster"}, nil),
		active: prometheus.NewDesc("causeway_gateway_cluster_connections_active",
			"Connections open to an endpoint of the cluster.", []string{"cluster"}, nil),
		endpointsNum: prometheus.NewDesc("causeway_gateway_cluster_endpoints",
			"Endpoints the cluster balances over.", []string{"cluster"}, nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connections
	ch <- c.active
	ch <- c.endpointsNum
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.table()
	if t == nil {
		return
	}
	for name, cl := range t.Clusters {
		ch <- prometheus.MustNewConstMetric(c.connections, prometheus.CounterValue, float64(cl.stats.connections.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(cl.stats.active.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.endpointsNum, prometheus.GaugeValue, float64(len(cl.Endpoints)), name)
	}
}
