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
	// clusters are the ids of the clusters with objects, sorted; shared.
	clusters []ClusterID
}

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
// Service port port (not the target port). ok is false if h or port is
// unknown. See buildView for the rules.
func (sn *Snapshot) View(h Host, port uint32, network NetworkID) (v View, ok bool) {
	st := sn.svc.get(h)
	if st == nil {
		return View{}, false
	}
	ps := st.port(port)
	if ps == nil {
		return View{}, false
	}
	return buildView(h, ps, network, sn.gw, sn.policy), true
}

// LocalView returns only the endpoints of network itself, directly (weight
// 1, no gateways): what an east-west gateway of that network forwards to.
// ok is false if h or port is unknown.
func (sn *Snapshot) LocalView(h Host, port uint32, network NetworkID) (v View, ok bool) {
	st := sn.svc.get(h)
	if st == nil {
		return View{}, false
	}
	ps := st.port(port)
	if ps == nil {
		return View{}, false
	}
	return buildLocalView(h, ps, network), true
}

// Gateways returns the gateways of network n, sorted by address and port.
func (sn *Snapshot) Gateways(n NetworkID) []Gateway {
	return slices.Clone(sn.gw.byNetwork[n])
}
