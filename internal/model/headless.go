package model

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// EndpointAddr is an endpoint's address and (target) port.
type EndpointAddr struct {
	Address string
	Port    uint32
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
		out = append(out, EndpointAddr{Address: e.addr, Port: e.port})
	}
	slices.SortFunc(out, func(a, b EndpointAddr) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
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
