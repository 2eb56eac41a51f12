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
	v := View{Cluster: ClusterName(host, ps.port, ""), Network: n, Endpoints: make([]ViewEndpoint, 0, len(ps.eps))}
	scale := gw.scale
	firstGateway := -1
	// index finds gateway entries once there are many of them.
	type gwKey struct {
		addr    string
		port    uint32
		loc     string
		network NetworkID
	}
	var index map[gwKey]int
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
			te := ""
			if e.mtls {
				te = TLSModeIstio
			}
			v.Endpoints = append(v.Endpoints, ViewEndpoint{
				Address: e.addr, Port: e.port, Weight: scale, Locality: e.locStr,
				Cluster: e.cluster, Network: e.network, TLSMode: te, Loc: e.loc,
			})
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
			g := &chosen[gi]
			locStr, loc := e.locStr, e.loc
			if g.Locality != "" {
				locStr, loc = g.Locality, parseLocality(g.Locality)
			}
			cluster := g.Cluster
			if cluster == "" {
				cluster = e.cluster
			}
			k := gwKey{g.Address, g.Port, locStr, e.network}
			at := -1
			if index != nil {
				if j, ok := index[k]; ok {
					at = j
				}
			} else if firstGateway >= 0 {
				for j := firstGateway; j < len(v.Endpoints); j++ {
					x := &v.Endpoints[j]
					if x.Gateway && x.Address == k.addr && x.Port == k.port && x.Locality == k.loc && x.Network == k.network {
						at = j
						break
					}
				}
			}
			if at >= 0 {
				x := &v.Endpoints[at]
				x.Weight = addWeight(x.Weight, w)
				x.Cluster = min(x.Cluster, cluster)
				continue
			}
			if firstGateway < 0 {
				firstGateway = len(v.Endpoints)
			}
			v.Endpoints = append(v.Endpoints, ViewEndpoint{
				Address: g.Address, Port: g.Port, Weight: w, Locality: locStr,
				Cluster: cluster, Network: e.network, Gateway: true, TLSMode: TLSModeIstio, Loc: loc,
			})
			if index != nil {
				index[k] = len(v.Endpoints) - 1
			} else if len(v.Endpoints)-firstGateway > 32 {
				// Direct entries may sit between gateway entries: index them all.
				index = map[gwKey]int{}
				for j := firstGateway; j < len(v.Endpoints); j++ {
					if x := &v.Endpoints[j]; x.Gateway {
						index[gwKey{x.Address, x.Port, x.Locality, x.Network}] = j
					}
				}
			}
		}
	}
	if !slices.IsSortedFunc(v.Endpoints, compareViewEndpoints) {
		slices.SortFunc(v.Endpoints, compareViewEndpoints)
	}
	return v
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
