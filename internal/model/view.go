package model

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// buildView is the split-horizon view of one service port for a proxy of
// network n (see Snapshot.View).
//
// Weights are Istio's: every weight is multiplied by the scale of gw (the
// least common multiple of the gateway counts). An endpoint of n or of the
// empty network is direct, weight 1 x scale. An endpoint of another network
// m with gateways is replaced by m's gateways in the endpoint's cluster if
// there are any, else all of m's gateways, each getting scale / (gateways
// chosen); only mTLS-capable endpoints cross networks. Gateway entries are
// one per gateway per locality of the endpoints they stand for, unless the
// gateway has its own locality. An endpoint of another network without
// gateways is left out (NoGatewayDrop) or direct (NoGatewayDirect, and
// always for a proxy of the empty network). With only set (a cluster-local
// host), endpoints of other clusters than only are left out first.
func buildView(host Host, ps *portState, n NetworkID, only ClusterID, gw *gatewaySet, policy NoGatewayPolicy) View {
	b := viewBuilder{
		v:            View{Cluster: ClusterName(host, ps.port, ""), Network: n, Endpoints: make([]ViewEndpoint, 0, len(ps.eps))},
		firstGateway: -1,
	}
	scale := gw.scale
	for i := range ps.eps {
		e := &ps.eps[i]
		if only != "" && e.cluster != only {
			continue
		}
		direct := e.network == n || e.network == ""
		gws := gw.byNetwork[e.network]
		if !direct && len(gws) == 0 {
			if n != "" && policy != NoGatewayDirect {
				continue
			}
			direct = true
		}
		if direct {
			b.addDirect(e, scale)
			continue
		}
		if !e.mtls {
			continue
		}
		chosen := gw.byNetCluster[netCluster{e.network, e.cluster}]
		if len(chosen) == 0 {
			chosen = gws
		}
		w := scale / uint32(len(chosen))
		for gi := range chosen {
			b.addThroughGateway(e, &chosen[gi], w)
		}
	}
	if !slices.IsSortedFunc(b.v.Endpoints, compareViewEndpoints) {
		slices.SortFunc(b.v.Endpoints, compareViewEndpoints)
	}
	return b.v
}

// gwKey identifies a gateway entry of a view.
type gwKey struct {
	addr    string
	port    uint32
	loc     string
	network NetworkID
}

// viewBuilder is a view being built, with what finds its gateway entries.
type viewBuilder struct {
	v            View
	firstGateway int // index of the first gateway entry, -1 before one
	// index finds gateway entries once there are many of them.
	index map[gwKey]int
}

// addDirect adds endpoint e as it is, with weight scale.
func (b *viewBuilder) addDirect(e *endpoint, scale uint32) {
	te := ""
	if e.mtls {
		te = TLSModeIstio
	}
	b.v.Endpoints = append(b.v.Endpoints, ViewEndpoint{
		Address: e.addr, Port: e.port, Weight: scale, Locality: e.locStr,
		Cluster: e.cluster, Network: e.network, TLSMode: te, Loc: e.loc,
	})
}

// addThroughGateway adds weight w to gateway g's entry for endpoint e, made
// if missing: one per gateway per locality (the endpoint's, unless the
// gateway has its own), in the lowest cluster it stands for.
func (b *viewBuilder) addThroughGateway(e *endpoint, g *Gateway, w uint32) {
	locStr, loc := e.locStr, e.loc
	if g.Locality != "" {
		locStr, loc = g.Locality, parseLocality(g.Locality)
	}
	cluster := g.Cluster
	if cluster == "" {
		cluster = e.cluster
	}
	k := gwKey{g.Address, g.Port, locStr, e.network}
	if at := b.findGateway(k); at >= 0 {
		x := &b.v.Endpoints[at]
		x.Weight = addWeight(x.Weight, w)
		x.Cluster = min(x.Cluster, cluster)
		return
	}
	if b.firstGateway < 0 {
		b.firstGateway = len(b.v.Endpoints)
	}
	b.v.Endpoints = append(b.v.Endpoints, ViewEndpoint{
		Address: g.Address, Port: g.Port, Weight: w, Locality: locStr,
		Cluster: cluster, Network: e.network, Gateway: true, TLSMode: TLSModeIstio, Loc: loc,
	})
	b.indexGateway(k)
}

// findGateway is the index of gateway entry k in the view, or -1.
func (b *viewBuilder) findGateway(k gwKey) int {
	if b.index != nil {
		if j, ok := b.index[k]; ok {
			return j
		}
		return -1
	}
	if b.firstGateway < 0 {
		return -1
	}
	for j := b.firstGateway; j < len(b.v.Endpoints); j++ {
		x := &b.v.Endpoints[j]
		if x.Gateway && x.Address == k.addr && x.Port == k.port && x.Locality == k.loc && x.Network == k.network {
			return j
		}
	}
	return -1
}

// indexGateway indexes the gateway entry k just appended; past 32 entries
// since the first gateway entry it starts the index.
func (b *viewBuilder) indexGateway(k gwKey) {
	if b.index != nil {
		b.index[k] = len(b.v.Endpoints) - 1
		return
	}
	if len(b.v.Endpoints)-b.firstGateway > 32 {
		// Direct entries may sit between gateway entries: index them all.
		b.index = map[gwKey]int{}
		for j := b.firstGateway; j < len(b.v.Endpoints); j++ {
			if x := &b.v.Endpoints[j]; x.Gateway {
				b.index[gwKey{x.Address, x.Port, x.Locality, x.Network}] = j
			}
		}
	}
}

// compareViewEndpoints orders view entries by address, port, locality, then
// cluster, network and gateway flag for a total order.
func compareViewEndpoints(a, b ViewEndpoint) int {
	return cmp.Or(
		strings.Compare(a.Address, b.Address),
		cmp.Compare(a.Port, b.Port),
		strings.Compare(a.Locality, b.Locality),
		cmp.Compare(a.Cluster, b.Cluster),
		cmp.Compare(a.Network, b.Network),
		boolCompare(a.Gateway, b.Gateway),
	)
}

func addWeight(a, b uint32) uint32 {
	return uint32(min(uint64(a)+uint64(b), math.MaxUint32))
}

// buildLocalView is what an east-west gateway of network n forwards to: the
// endpoints of n itself, directly, weight 1; with only set (a
// cluster-local host), only those of cluster only.
func buildLocalView(host Host, ps *portState, n NetworkID, only ClusterID) View {
	v := View{Cluster: ClusterName(host, ps.port, ""), Network: n, Endpoints: []ViewEndpoint{}}
	for i := range ps.eps {
		e := &ps.eps[i]
		if e.network != n || (only != "" && e.cluster != only) {
			continue
		}
		te := ""
		if e.mtls {
			te = TLSModeIstio
		}
		v.Endpoints = append(v.Endpoints, ViewEndpoint{
			Address: e.addr, Port: e.port, Weight: 1, Locality: e.locStr,
			Cluster: e.cluster, Network: e.network, TLSMode: te, Loc: e.loc,
		})
	}
	return v
}
