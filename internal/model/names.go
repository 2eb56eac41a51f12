package model

import (
	"net/netip"
	"slices"
)

// NameEntry is one hostname of a proxy's DNS name table (what Istio's NDS
// sends for DNS capture): the addresses a captured DNS query for Host
// resolves to, and the Service's name and namespace, from which the proxy's
// agent answers the short forms too (NAME, NAME.NS, NAME.NS.svc).
type NameEntry struct {
	Host      Host
	Addresses []string
	Name      string
	Namespace string
}

// NameTable is the DNS name table of a proxy in cluster c and network n,
// sorted by host, built as istiod builds it:
//
//   - a service with a cluster IP resolves to one address: the cluster IP
//     of the proxy's own cluster, or, when its cluster does not define the
//     service, that of the first cluster (by id) that does. (istiod falls
//     back to the address of the registry that came first, usually the
//     config cluster's.)
//   - a headless service (no cluster IP in any cluster) resolves to the
//     addresses of its endpoints on its first (lowest) port, of the proxy's
//     network (every endpoint, when either network is empty), in every
//     cluster: Istio's default, ENABLE_MULTICLUSTER_HEADLESS=true. A
//     headless service without such endpoints, or without ports, is left
//     out, as is an ExternalName service (it has neither).
//   - better than istiod: when that first port is TCP (PortProtocol), the
//     endpoints of other networks that a captured sidecar reaches through
//     their network's gateways by a per-pod SNI (PodGateways) are listed
//     too, so that a client of one network can dial a StatefulSet member
//     of another (istio/istio#31787; docs/sidecars.md).
//
// Per-pod names of headless services (HOSTNAME.SUBDOMAIN.NS.svc.DOMAIN)
// are not served: the model does not keep the pods' hostname and
// subdomain.
func (sn *Snapshot) NameTable(c ClusterID, n NetworkID) []NameEntry {
	services := sn.Services()
	out := make([]NameEntry, 0, len(services))
	for _, svc := range services {
		var addrs []string
		if ip := clusterIPFor(svc, c); ip != "" {
			addrs = []string{ip}
		} else {
			addrs = sn.headlessAddresses(svc, n)
		}
		if len(addrs) == 0 {
			continue
		}
		out = append(out, NameEntry{Host: svc.Host, Addresses: addrs, Name: svc.Name, Namespace: svc.Namespace})
	}
	return out
}

// clusterIPFor is the cluster IP a proxy of cluster c dials for svc: c's
// own, else that of the lowest cluster id; "" if svc has none.
func clusterIPFor(svc *ServiceInfo, c ClusterID) string {
	if ip, ok := svc.ClusterIPs[c]; ok {
		return ip
	}
	first := ClusterID("")
	ip := ""
	for id, addr := range svc.ClusterIPs {
		if ip == "" || id < first {
			first, ip = id, addr
		}
	}
	return ip
}

// headlessAddresses are the distinct valid IPs of svc's endpoints on its
// first port that a proxy of network n reaches, directly or, for a TCP
// port, through their network's gateways by a per-pod SNI, sorted.
func (sn *Snapshot) headlessAddresses(svc *ServiceInfo, n NetworkID) []string {
	if len(svc.Ports) == 0 {
		return nil
	}
	st := sn.svc.get(svc.Host)
	if st == nil {
		return nil
	}
	ps := st.port(svc.Ports[0].Port)
	if ps == nil {
		return nil
	}
	viaGateway := PortProtocol(svc.Ports[0]).IsTCP()
	var out []string
	for i := range ps.eps {
		e := &ps.eps[i]
		if e.network != n && e.network != "" && n != "" &&
			(!viaGateway || sn.PodGateways(svc.Host, EndpointAddr{Address: e.addr, Network: e.network, MTLS: e.mtls}, n) == nil) {
			continue
		}
		if _, err := netip.ParseAddr(e.addr); err != nil {
			continue
		}
		out = append(out, e.addr)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// IsHeadless reports whether svc has no cluster IP in any cluster: its
// name table entry then follows its endpoints.
func IsHeadless(svc *ServiceInfo) bool { return svc != nil && len(svc.ClusterIPs) == 0 }
