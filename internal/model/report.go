package model

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// NetworksReport says how the mesh is split in networks: what
// `causeway networks` prints and /debug/networks serves.
type NetworksReport struct {
	// Networks sorted by name; the empty network is included if it has
	// endpoints.
	Networks []NetworkReport `json:"networks"`
	// Warnings sorted, stable text.
	Warnings []string `json:"warnings"`
}

// NetworkReport is one network of a NetworksReport.
type NetworkReport struct {
	Name NetworkID `json:"name"`
	// Membership says how membership was decided: one line per rule that
	// places endpoints or clusters here, e.g. "fromRegistry: cluster2",
	// "fromCidr: 10.2.0.0/16", "namespace label: cluster1/istio-system",
	// "pod label: 3 pods".
	Membership []string `json:"membership"`
	// Clusters with endpoints in this network.
	Clusters []ClusterID `json:"clusters"`
	// Endpoints: ready endpoint addresses (distinct per service and
	// cluster).
	Endpoints int       `json:"endpoints"`
	Gateways  []Gateway `json:"gateways"`
}

// Stats are the model's counters, for metrics and /debug/clusters.
type Stats struct {
	// Services: hosts defined by at least one cluster.
	Services int
	// Endpoints by cluster and network (ready addresses, distinct per
	// service and cluster).
	Endpoints map[ClusterID]map[NetworkID]int
	// DroppedNoGateway: endpoints left out of the views of other networks
	// because their network has no gateway (policy drop), by network.
	DroppedNoGateway map[NetworkID]int
	// Networks: named networks known (with endpoints, gateways, rules or
	// labels).
	Networks int
	// Gateways of every network.
	Gateways int
	// IgnoredGatewayAnnotations: unparsable networking.istio.io/gatewayPort
	// labels and traffic.istio.io/nodeSelector annotations of gateway
	// Services, ignored (the Service is kept with the defaults).
	IgnoredGatewayAnnotations int
}

// aggregates are the store's running sums over every service state.
type aggregates struct {
	counts   map[ClusterID]map[NetworkID]int
	warnings map[string]int
	pods     map[NetworkID]map[ObjectKey]int
	dirty    bool
}

func newAggregates() aggregates {
	return aggregates{
		counts:   map[ClusterID]map[NetworkID]int{},
		warnings: map[string]int{},
		pods:     map[NetworkID]map[ObjectKey]int{},
	}
}

// replace takes old's contribution out and adds st's; either may be nil.
// Parts that are equal are not touched, so dirty means a real change.
func (a *aggregates) replace(old, st *svcState) {
	var oc, nc []netCount
	var ow, nw []string
	var op, np []podNet
	if old != nil {
		oc, ow, op = old.counts, old.warnings, old.labelPods
	}
	if st != nil {
		nc, nw, np = st.counts, st.warnings, st.labelPods
	}
	if !slices.Equal(oc, nc) {
		a.dirty = true
		for _, c := range oc {
			a.addCount(c.cluster, c.network, -c.n)
		}
		for _, c := range nc {
			a.addCount(c.cluster, c.network, c.n)
		}
	}
	if !slices.Equal(ow, nw) {
		a.dirty = true
		for _, w := range ow {
			if a.warnings[w]--; a.warnings[w] <= 0 {
				delete(a.warnings, w)
			}
		}
		for _, w := range nw {
			a.warnings[w]++
		}
	}
	if !slices.Equal(op, np) {
		a.dirty = true
		for _, p := range op {
			m := a.pods[p.network]
			if m[p.pod]--; m[p.pod] <= 0 {
				delete(m, p.pod)
			}
			if len(m) == 0 {
				delete(a.pods, p.network)
			}
		}
		for _, p := range np {
			m := a.pods[p.network]
			if m == nil {
				m = map[ObjectKey]int{}
				a.pods[p.network] = m
			}
			m[p.pod]++
		}
	}
}

func (a *aggregates) addCount(c ClusterID, n NetworkID, d int) {
	m := a.counts[c]
	if m == nil {
		m = map[NetworkID]int{}
		a.counts[c] = m
	}
	m[n] += d
	if m[n] <= 0 {
		delete(m, n)
	}
	if len(m) == 0 {
		delete(a.counts, c)
	}
}

// frozenAggregates is an immutable copy of aggregates for snapshots.
type frozenAggregates struct {
	counts   map[ClusterID]map[NetworkID]int
	warnings []string
	pods     map[NetworkID]int
}

func (a *aggregates) freeze() *frozenAggregates {
	a.dirty = false
	f := &frozenAggregates{
		counts:   make(map[ClusterID]map[NetworkID]int, len(a.counts)),
		warnings: slices.Sorted(maps.Keys(a.warnings)),
		pods:     make(map[NetworkID]int, len(a.pods)),
	}
	for c, m := range a.counts {
		f.counts[c] = maps.Clone(m)
	}
	for n, m := range a.pods {
		f.pods[n] = len(m)
	}
	return f
}

// networkNames returns every named network the snapshot knows, sorted, and
// the endpoint count of each (the empty network included).
func (sn *Snapshot) networkNames() (names []NetworkID, endpoints map[NetworkID]int) {
	endpoints = map[NetworkID]int{}
	set := map[NetworkID]bool{}
	for _, m := range sn.agg.counts {
		for n, k := range m {
			endpoints[n] += k
			set[n] = true
		}
	}
	for n := range sn.gw.byNetwork {
		set[n] = true
	}
	if sn.net.mn != nil {
		for n := range sn.net.mn.Networks {
			set[n] = true
		}
	}
	for _, n := range sn.net.nsNetwork {
		set[n] = true
	}
	for n := range sn.agg.pods {
		set[n] = true
	}
	if endpoints[""] == 0 {
		delete(set, "")
	}
	return slices.Sorted(maps.Keys(set)), endpoints
}

// dropped returns, by network, the endpoints that views of other networks
// leave out because their network has no gateway: policy drop, a named
// network without gateways, and another named network that a proxy could
// be in.
func (sn *Snapshot) dropped(names []NetworkID, endpoints map[NetworkID]int) map[NetworkID]int {
	out := map[NetworkID]int{}
	named := len(names)
	if slices.Contains(names, "") {
		named--
	}
	if named < 2 {
		return out
	}
	for _, n := range names {
		if n != "" && endpoints[n] > 0 && len(sn.gw.byNetwork[n]) == 0 {
			out[n] = endpoints[n]
		}
	}
	return out
}

// unknownRegistries warns of meshNetworks fromRegistry entries that name
// no cluster of the mesh: a misspelled id places nothing, silently.
func (sn *Snapshot) unknownRegistries() []string {
	if sn.net == nil || sn.net.mn == nil {
		return nil
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(sn.net.mn.Networks)) {
		for i, ep := range sn.net.mn.Networks[name].Endpoints {
			if ep.FromRegistry == "" {
				continue
			}
			if _, ok := slices.BinarySearch(sn.clusters, ep.FromRegistry); ok {
				continue
			}
			known := make([]string, len(sn.clusters))
			for j, c := range sn.clusters {
				known[j] = string(c)
			}
			out = append(out, fmt.Sprintf("meshNetworks network %q endpoints[%d]: fromRegistry %q names no cluster of the mesh (clusters: %s): it places nothing; use a cluster id (--cluster-id, a remote secret's data key, or a manifests folder name)",
				name, i, ep.FromRegistry, orNone(strings.Join(known, ", "))))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Networks reports every network: how membership was decided, its
// clusters, endpoints and gateways, and every warning.
func (sn *Snapshot) Networks() NetworksReport {
	names, endpoints := sn.networkNames()
	rep := NetworksReport{Networks: make([]NetworkReport, 0, len(names)), Warnings: []string{}}
	clustersOf := map[NetworkID][]ClusterID{}
	for _, c := range slices.Sorted(maps.Keys(sn.agg.counts)) {
		for n := range sn.agg.counts[c] {
			clustersOf[n] = append(clustersOf[n], c)
		}
	}
	for _, n := range names {
		nr := NetworkReport{
			Name:       n,
			Membership: sn.membership(n),
			Clusters:   clustersOf[n],
			Endpoints:  endpoints[n],
			Gateways:   slices.Clone(sn.gw.byNetwork[n]),
		}
		if nr.Clusters == nil {
			nr.Clusters = []ClusterID{}
		}
		if nr.Gateways == nil {
			nr.Gateways = []Gateway{}
		}
		rep.Networks = append(rep.Networks, nr)
	}
	rep.Warnings = append(rep.Warnings, sn.gw.warnings...)
	rep.Warnings = append(rep.Warnings, sn.unknownRegistries()...)
	rep.Warnings = append(rep.Warnings, sn.agg.warnings...)
	if sn.policy == NoGatewayDrop {
		for n, k := range sn.dropped(names, endpoints) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("network %q has no gateway: its %d endpoints are left out of the views of other networks (--no-gateway-endpoints=drop); label its east-west gateway Service %s=%s or list gateways in meshNetworks", n, k, LabelNetwork, n))
		}
	} else {
		for n, k := range sn.dropped(names, endpoints) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("network %q has no gateway: its %d endpoints are handed to other networks as directly reachable (--no-gateway-endpoints=direct)", n, k))
		}
	}
	slices.Sort(rep.Warnings)
	rep.Warnings = slices.Compact(rep.Warnings)
	return rep
}

// membership says how endpoints are placed in network n: its meshNetworks
// rules, the clusters whose system namespace names it, the pods labeled
// with it, and for "" that no rule placed them.
func (sn *Snapshot) membership(n NetworkID) []string {
	out := []string{}
	if sn.net.mn != nil {
		for _, ep := range sn.net.mn.Networks[n].Endpoints {
			switch {
			case ep.FromCIDR.IsValid():
				out = append(out, "fromCidr: "+normPrefix(ep.FromCIDR).String())
			case ep.FromRegistry != "":
				out = append(out, "fromRegistry: "+string(ep.FromRegistry))
			}
		}
	}
	for _, c := range slices.Sorted(maps.Keys(sn.net.nsNetwork)) {
		if sn.net.nsNetwork[c] == n {
			out = append(out, "namespace label: "+string(c)+"/"+sn.net.systemNamespace)
		}
	}
	if k := sn.agg.pods[n]; k > 0 {
		out = append(out, "pod label: "+strconv.Itoa(k)+" pods")
	}
	if n == "" {
		out = append(out, "no rule: endpoints that no rule placed in a network")
	}
	return out
}

// Stats returns the model's counters.
func (sn *Snapshot) Stats() Stats {
	names, endpoints := sn.networkNames()
	st := Stats{
		Services:         sn.svc.size,
		Endpoints:        make(map[ClusterID]map[NetworkID]int, len(sn.agg.counts)),
		DroppedNoGateway: map[NetworkID]int{},
		Gateways:         sn.gw.total,

		IgnoredGatewayAnnotations: sn.gw.ignored,
	}
	for c, m := range sn.agg.counts {
		st.Endpoints[c] = maps.Clone(m)
	}
	for _, n := range names {
		if n != "" {
			st.Networks++
		}
	}
	if sn.policy == NoGatewayDrop {
		st.DroppedNoGateway = sn.dropped(names, endpoints)
	}
	return st
}
