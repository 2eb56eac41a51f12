package model

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// EndpointAddr is an endpoint's address and (target) port, with its
// network and whether it speaks mesh mTLS (tlsMode=istio).
type EndpointAddr struct {
	Address string
	Port    uint32
	Network NetworkID
	MTLS    bool
}

// EndpointAddrs are the distinct endpoints (address, target port) of
// service h on Service port port, of every cluster and network, with a
// valid IP, sorted: the per-endpoint listeners istiod gives a captured
// sidecar for a headless service's TCP port. nil if h or port is unknown.
func (sn *Snapshot) EndpointAddrs(h Host, port uint32) []EndpointAddr {
	ps := sn.portState(h, port)
	if ps == nil {
		return nil
	}
	out := make([]EndpointAddr, 0, len(ps.eps))
	for i := range ps.eps {
		e := &ps.eps[i]
		if _, err := netip.ParseAddr(e.addr); err != nil {
			continue
		}
		out = append(out, EndpointAddr{Address: e.addr, Port: e.port, Network: e.network, MTLS: e.mtls})
	}
	slices.SortFunc(out, func(a, b EndpointAddr) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port),
			cmp.Compare(a.Network, b.Network), boolCompare(a.MTLS, b.MTLS))
	})
	return slices.Compact(out)
}

// PodHost is the host Causeway names one endpoint (pod) of a headless
// service h by, in per-pod cluster names and SNIs: its address with every
// '.' and ':' made a '-', as a label before h
// ("10-2-0-60.db.sample.svc.cluster.local"). The address, not the pod's
// hostname, because an endpoint is known by its address everywhere it
// goes (the listener the client dials, the gateway's cluster); it is
// unique in the pod's network and is a valid DNS label.
func PodHost(h Host, addr string) Host {
	return Host(strings.NewReplacer(".", "-", ":", "-").Replace(addr) + "." + string(h))
}

// PodGateways are the gateways through which a proxy in network from
// reaches endpoint e of headless service h directly, by a per-pod SNI
// (Causeway's better-than-istiod route for headless services across
// networks, docs/sidecars.md): those of e's network (with an IP address)
// when e is in another, non-empty network, speaks mesh mTLS (only that
// crosses a gateway), and h is not cluster-local. nil means the proxy
// gets istiod's shape for e (a listener to the ORIGINAL_DST cluster).
func (sn *Snapshot) PodGateways(h Host, e EndpointAddr, from NetworkID) []Gateway {
	if e.Network == from || e.Network == "" || !e.MTLS || sn.local.IsClusterLocal(h) {
		return nil
	}
	var out []Gateway
	for _, g := range sn.gw.byNetwork[e.Network] {
		if _, err := netip.ParseAddr(g.Address); err == nil {
			out = append(out, g)
		}
	}
	return out
}

// GatewayPods are the endpoints of headless service h on Service port
// port that an east-west gateway of network passes a per-pod SNI to: its
// network's own endpoints that speak mesh mTLS, unless h is cluster-local
// or network is empty. Sorted as EndpointAddrs.
func (sn *Snapshot) GatewayPods(h Host, port uint32, network NetworkID) []EndpointAddr {
	if network == "" || sn.local.IsClusterLocal(h) || !IsHeadless(sn.Service(h)) {
		return nil
	}
	var out []EndpointAddr
	for _, e := range sn.EndpointAddrs(h, port) {
		if e.Network == network && e.MTLS {
			out = append(out, e)
		}
	}
	return out
}

// ServiceMTLSStrict reports whether the workloads of svc's namespace
// accept only mTLS on port by the PeerAuthentications of some cluster:
// mesh-wide and namespace-wide policies, and workload policies with an
// empty selector (those that select every workload). This is istiod's
// best-effort "service mTLS mode", which decides whether a client sends
// mTLS to a destination it cannot see the endpoints of (the ORIGINAL_DST
// cluster of a headless service). Policies of any cluster count: a STRICT
// cluster's workloads refuse plaintext, and every sidecar accepts mTLS
// unless DISABLE.
func (sn *Snapshot) ServiceMTLSStrict(svc *ServiceInfo, port uint32) bool {
	if svc == nil {
		return false
	}
	w := Workload{Namespace: svc.Namespace}
	for _, policies := range sn.pa {
		if EffectiveMTLS(policies, sn.root, w, port) == MTLSStrict {
			return true
		}
	}
	return false
}
