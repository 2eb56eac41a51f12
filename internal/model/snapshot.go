package model

import (
	"slices"
	"strings"
	"sync"
)

// Snapshot is the model at one point in time. It never changes; everything
// it returns is either a fresh value or shared and read-only (as said per
// method). Snapshots share unchanged parts with each other.
type Snapshot struct {
	policy NoGatewayPolicy
	svc    svcMap
	gw     *gatewaySet
	net    *netConfig
	agg    *frozenAggregates
	sorted *sortedServices
	local  ClusterLocalHosts
	pa     map[ClusterID][]PeerAuthentication
	gwCfg  *GatewayConfig
	root   string
	// clusters are the ids of the clusters with objects, sorted; shared.
	clusters []ClusterID
}

// PeerAuthentications returns the PeerAuthentications of cluster c, sorted
// by namespace and name. The slice is shared: read-only.
func (sn *Snapshot) PeerAuthentications(c ClusterID) []PeerAuthentication {
	return sn.pa[c]
}

// RootNamespace is the system namespace: its PeerAuthentications without
// a selector are mesh-wide.
func (sn *Snapshot) RootNamespace() string { return sn.root }

// sortedServices is the sorted list of ServiceInfo of one generation of
// ServiceInfo values, built on first use and shared by the snapshots of that
// generation.
type sortedServices struct {
	gen  uint64
	once sync.Once
	list []*ServiceInfo
}

// Services returns every service, sorted by Host. The slice and the values
// are shared: read-only.
func (sn *Snapshot) Services() []*ServiceInfo {
	sn.sorted.once.Do(func() {
		list := make([]*ServiceInfo, 0, sn.svc.size)
		sn.svc.all(func(st *svcState) { list = append(list, st.info) })
		slices.SortFunc(list, func(a, b *ServiceInfo) int { return strings.Compare(string(a.Host), string(b.Host)) })
		sn.sorted.list = list
	})
	return sn.sorted.list
}

// Service returns the service of host h, nil if unknown. The value is
// shared: read-only.
func (sn *Snapshot) Service(h Host) *ServiceInfo {
	if st := sn.svc.get(h); st != nil {
		return st.info
	}
	return nil
}

// View returns what a proxy of network (may be "") sees of service h on
// Service port port (not the target port), whatever its cluster: ViewIn
// without the cluster-local rule. ok is false if h or port is unknown.
func (sn *Snapshot) View(h Host, port uint32, network NetworkID) (v View, ok bool) {
	return sn.ViewIn(h, port, "", network)
}

// ViewIn returns what a proxy of cluster (may be "": unknown) and network
// (may be "") sees of service h on Service port port (not the target
// port). ok is false if h or port is unknown. See buildView for the rules;
// for a cluster-local host (NewClusterLocalHosts) and a known cluster,
// only that cluster's endpoints count.
func (sn *Snapshot) ViewIn(h Host, port uint32, cluster ClusterID, network NetworkID) (v View, ok bool) {
	ps := sn.portState(h, port)
	if ps == nil {
		return View{}, false
	}
	return buildView(h, ps, network, sn.onlyCluster(h, cluster), sn.gw, sn.policy), true
}

// LocalView returns only the endpoints of network itself, directly (weight
// 1, no gateways): what an east-west gateway of that network forwards to,
// whatever its cluster (LocalViewIn without the cluster-local rule). ok is
// false if h or port is unknown.
func (sn *Snapshot) LocalView(h Host, port uint32, network NetworkID) (v View, ok bool) {
	return sn.LocalViewIn(h, port, "", network)
}

// LocalViewIn is LocalView for a gateway of cluster (may be ""): for a
// cluster-local host, only the endpoints of that cluster.
func (sn *Snapshot) LocalViewIn(h Host, port uint32, cluster ClusterID, network NetworkID) (v View, ok bool) {
	ps := sn.portState(h, port)
	if ps == nil {
		return View{}, false
	}
	return buildLocalView(h, ps, network, sn.onlyCluster(h, cluster)), true
}

func (sn *Snapshot) portState(h Host, port uint32) *portState {
	st := sn.svc.get(h)
	if st == nil {
		return nil
	}
	return st.port(port)
}

// onlyCluster is the one cluster whose endpoints a proxy of cluster sees
// of h: cluster itself if h is cluster-local, else "" (all).
func (sn *Snapshot) onlyCluster(h Host, cluster ClusterID) ClusterID {
	if cluster != "" && sn.local.IsClusterLocal(h) {
		return cluster
	}
	return ""
}

// Gateways returns the gateways of network n, sorted by address and port.
func (sn *Snapshot) Gateways(n NetworkID) []Gateway {
	return slices.Clone(sn.gw.byNetwork[n])
}
