package gateway

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Versions are the xDS version_info of the resources a table was built from.
type Versions struct {
	Listeners string `json:"listeners"`
	Clusters  string `json:"clusters"`
	Endpoints string `json:"endpoints"`
}

// Endpoint is an upstream address of a cluster and its load-balancing
// weight (at least 1).
type Endpoint struct {
	Address netip.AddrPort
	Weight  uint32
	// dial is Address as "IP:PORT", computed once rather than per
	// connection.
	dial string
}

func newEndpoint(ap netip.AddrPort, weight uint32) Endpoint {
	return Endpoint{Address: ap, Weight: weight, dial: ap.String()}
}

// Cluster is where a route sends its connections: the endpoints in use
// (those of the best priority that has a usable one) and a balancer over
// them. A Cluster never changes once built; a table built after its
// endpoints change holds a new one.
type Cluster struct {
	Name string
	// ConnectTimeout bounds dialing an endpoint.
	ConnectTimeout time.Duration
	Endpoints      []Endpoint

	bal   *balancer
	stats *clusterStats
}

// clusterStats count a cluster's connections. They belong to the cluster
// name, not to one Cluster value: every table that has the name shares
// them, so they survive endpoint updates.
type clusterStats struct {
	connections atomic.Uint64
	active      atomic.Int64
}

// pick returns the endpoint the next connection goes to; false when the
// cluster has none.
func (c *Cluster) pick() (*Endpoint, bool) {
	if c.bal == nil {
		return nil, false
	}
	return &c.Endpoints[c.bal.pick()], true
}

// Route is one filter chain of the gateway's listener: the connections it
// takes and the cluster they go to.
type Route struct {
	// Name is the filter chain's name, may be empty.
	Name string
	// ServerNames are the SNIs it matches, lowercase; "*.example.com"
	// matches any name ending in ".example.com"; none matches any.
	ServerNames []string
	// TLS is set when the chain asks for transport protocol "tls" (every
	// connection the gateway passes is TLS; it only ranks the chain above
	// one that asks for nothing, as Envoy does).
	TLS bool
	// ALPN are the application protocols it matches; none matches any.
	ALPN []string
	// ClusterName is the tcp_proxy's cluster.
	ClusterName string
	// Cluster is the cluster of that name, nil when CDS has none.
	Cluster *Cluster
}

// Table is what the gateway routes by: SNI → filter chain → cluster →
// weighted endpoints. It is immutable once built (only the balancers'
// positions and the connection counters move), so the accept path reads it
// through an atomic pointer without a lock.
type Table struct {
	// Versions of the resources it was built from.
	Versions Versions
	// Listener is the name of the listener it was built from, "" when LDS
	// holds none for this gateway.
	Listener string
	// Routes in the listener's order; Default is its default filter chain,
	// nil when it has none.
	Routes   []*Route
	Default  *Route
	Clusters map[string]*Cluster

	exact     map[string]*matchSet // by server name
	wildcards map[string]*matchSet // by suffix: "*.example.com" under ".example.com"
	any       *matchSet            // chains without server names
}

// matchSet holds the chains of one server name, by transport protocol.
type matchSet struct {
	tls, plain *alpnSet
}

// alpnSet holds chains of one server name and transport protocol by ALPN.
type alpnSet struct {
	byProto map[string]*Route
	any     *Route
}

// Route finds the filter chain for a connection, following Envoy's
// filter chain match order: the exact server name, else the longest
// wildcard suffix, else the chains without server names; inside those,
// a chain for transport protocol "tls" ranks above one without; then the
// first of the client's ALPN protocols that a chain lists, else the chain
// without ALPN; else the listener's default chain. As in Envoy, a level
// that matched is not left for a less specific one when the next level
// finds nothing. nil means no chain takes the connection.
func (t *Table) Route(serverName string, alpn []string) *Route {
	if t == nil {
		return nil
	}
	ms := t.exact[serverName]
	if ms == nil && serverName != "" {
		for i := 0; i < len(serverName); i++ {
			if serverName[i] == '.' {
				if ms = t.wildcards[serverName[i:]]; ms != nil {
					break
				}
			}
		}
	}
	if ms == nil {
		ms = t.any
	}
	if ms == nil {
		return t.Default
	}
	set := ms.tls
	if set == nil {
		set = ms.plain
	}
	for _, p := range alpn {
		if r := set.byProto[p]; r != nil {
			return r
		}
	}
	if set.any != nil {
		return set.any
	}
	return t.Default
}

// tableInputs are the last accepted xDS resources, decoded.
type tableInputs struct {
	versions Versions
	// listeners are this gateway's listeners that LDS holds, by name.
	listeners map[string]*listenerConfig
	clusters  map[string]clusterConfig
	// endpoints by EDS resource name.
	endpoints map[string][]Endpoint
}

// buildTables builds the routing table of each listener of names (in
// that order) from in; the tables share one set of clusters. Clusters
// whose settings and endpoints equal those of prev (the tables built
// before, may be nil) are reused as they are, so an update keeps the
// balancing position of every cluster it does not touch; connection
// counters are carried over by cluster name.
//
// in must be valid (decodeListener rejects duplicate matches);
// buildTables does not modify it, and the tables share its slices.
func buildTables(in tableInputs, names []string, prev []*Table) []*Table {
	var prevClusters map[string]*Cluster
	if len(prev) > 0 {
		prevClusters = prev[0].Clusters
	}
	clusters := buildClusters(in, prevClusters)
	out := make([]*Table, len(names))
	for i, name := range names {
		out[i] = routeTable(in.versions, clusters, in.listeners[name])
	}
	return out
}

// buildClusters builds the clusters of in, reusing those of prev (may be
// nil) that did not change.
func buildClusters(in tableInputs, prev map[string]*Cluster) map[string]*Cluster {
	clusters := make(map[string]*Cluster, len(in.clusters))
	for name, cc := range in.clusters {
		eps := cc.static
		if cc.edsName != "" {
			eps = in.endpoints[cc.edsName]
		}
		old := prev[name]
		switch {
		case old != nil && old.ConnectTimeout == cc.connectTimeout && slices.Equal(old.Endpoints, eps):
			clusters[name] = old
		default:
			c := &Cluster{Name: name, ConnectTimeout: cc.connectTimeout, Endpoints: eps}
			if old != nil {
				c.stats = old.stats
			} else {
				c.stats = new(clusterStats)
			}
			if len(eps) > 0 {
				weights := make([]uint32, len(eps))
				for i, e := range eps {
					weights[i] = e.Weight
				}
				c.bal = newBalancer(weights)
			}
			clusters[name] = c
		}
	}
	return clusters
}

// routeTable is the table of listener l (nil: LDS holds none) over
// clusters.
func routeTable(versions Versions, clusters map[string]*Cluster, l *listenerConfig) *Table {
	t := &Table{Versions: versions, Clusters: clusters}
	if l == nil {
		return t
	}
	t.Listener = l.name
	resolve := func(r Route) *Route {
		r.Cluster = t.Clusters[r.ClusterName]
		return &r
	}
	t.Routes = make([]*Route, len(l.routes))
	for i, r := range l.routes {
		rt := resolve(r)
		t.Routes[i] = rt
		if len(rt.ServerNames) == 0 {
			t.any = t.any.add(rt)
			continue
		}
		for _, name := range rt.ServerNames {
			if suffix, ok := strings.CutPrefix(name, "*"); ok {
				t.wildcards = addTo(t.wildcards, suffix, rt)
			} else {
				t.exact = addTo(t.exact, name, rt)
			}
		}
	}
	if l.defaultRoute != nil {
		t.Default = resolve(*l.defaultRoute)
	}
	return t
}

func addTo(m map[string]*matchSet, key string, r *Route) map[string]*matchSet {
	if m == nil {
		m = make(map[string]*matchSet)
	}
	m[key] = m[key].add(r)
	return m
}

// add files r under its transport protocol and ALPN; the first chain wins
// a match it shares with a later one (decodeListener refuses such
// listeners, so this does not happen with a table built from xDS).
func (ms *matchSet) add(r *Route) *matchSet {
	if ms == nil {
		ms = new(matchSet)
	}
	set := &ms.plain
	if r.TLS {
		set = &ms.tls
	}
	if *set == nil {
		*set = new(alpnSet)
	}
	s := *set
	if len(r.ALPN) == 0 {
		if s.any == nil {
			s.any = r
		}
		return ms
	}
	if s.byProto == nil {
		s.byProto = make(map[string]*Route, len(r.ALPN))
	}
	for _, p := range r.ALPN {
		if _, dup := s.byProto[p]; !dup {
			s.byProto[p] = r
		}
	}
	return ms
}
