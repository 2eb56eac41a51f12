package model

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// endpoint is one endpoint of a service port with everything a view needs.
type endpoint struct {
	addr    string
	port    uint32 // target port: the slice port's number
	cluster ClusterID
	network NetworkID
	loc     Locality
	locStr  string
	mtls    bool
}

func compareEndpoints(a, b endpoint) int {
	return cmp.Or(
		strings.Compare(a.addr, b.addr),
		cmp.Compare(a.port, b.port),
		cmp.Compare(a.cluster, b.cluster),
		cmp.Compare(a.network, b.network),
		strings.Compare(a.locStr, b.locStr),
		boolCompare(a.mtls, b.mtls),
	)
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// portState is the endpoints of one service port, sorted.
type portState struct {
	port uint32
	eps  []endpoint
}

// netCount counts the distinct ready addresses of a service in one cluster
// and network.
type netCount struct {
	cluster ClusterID
	network NetworkID
	n       int
}

// podNet is a pod whose label decided its endpoints' network.
type podNet struct {
	pod     ObjectKey
	network NetworkID
}

// svcState is everything the model derives for one host. It is immutable
// once built; a change builds a new one.
type svcState struct {
	info  *ServiceInfo
	ports []portState // one per info.Ports entry, same order

	// Aggregates for reports, summed by the store.
	counts    []netCount // sorted
	warnings  []string   // sorted, distinct
	labelPods []podNet   // sorted, distinct
}

func (st *svcState) port(p uint32) *portState {
	i, ok := slices.BinarySearchFunc(st.ports, p, func(ps portState, p uint32) int { return cmp.Compare(ps.port, p) })
	if !ok {
		return nil
	}
	return &st.ports[i]
}

// clusterView is what buildService reads of one cluster.
type clusterView struct {
	id    ClusterID
	state *clusterState
	// pa are the cluster's PeerAuthentications: an endpoint whose workload
	// they make DISABLE on its port does not speak mesh mTLS.
	pa []PeerAuthentication
}

// buildService derives the state of service nn from every cluster (sorted
// by id): ServiceInfo merged by host, and for each Service port the
// endpoints of the clusters where the Service defines that port. An
// endpoint is each address of each ready endpoint of each slice of the
// Service whose port has the Service port's name, on the slice port's
// number; (address, port) is kept once per cluster. It returns nil when no
// cluster defines the Service.
func buildService(nn NamespacedName, host Host, clusters []clusterView, nc *netConfig, rootNamespace string) *svcState {
	var info *ServiceInfo
	var eps [][]endpoint // parallel to info.Ports after sorting; built per port number
	portIndex := func(p uint32) int {
		for i := range info.Ports {
			if info.Ports[i].Port == p {
				return i
			}
		}
		return -1
	}
	type addrKey struct {
		cluster ClusterID
		addr    string
		network NetworkID
	}
	// Size the buffers once: a rebuild is on the path of every change.
	nAddrs, nEps := 0, 0
	for _, cv := range clusters {
		if cv.state.services[nn] == nil {
			continue
		}
		for _, es := range cv.state.bySvc[nn] {
			for _, ep := range es.Endpoints {
				if ep.Ready {
					nEps++
					nAddrs += len(ep.Addresses)
				}
			}
		}
	}
	addrs := make([]addrKey, 0, nAddrs)
	sas := make([]NamespacedName, 0, nEps)
	var warnings []string
	var labelPods []podNet
	for _, cv := range clusters {
		cs := cv.state
		e := cs.services[nn]
		if e == nil {
			continue
		}
		svc := e.svc
		if info == nil {
			info = &ServiceInfo{Host: host, Namespace: nn.Namespace, Name: nn.Name}
		}
		if svc.ClusterIP != "" && svc.ClusterIP != "None" {
			if info.ClusterIPs == nil {
				info.ClusterIPs = map[ClusterID]string{}
			}
			info.ClusterIPs[cv.id] = svc.ClusterIP
		}
		for _, sp := range svc.Ports {
			if portIndex(sp.Port) < 0 {
				info.Ports = append(info.Ports, sp)
				eps = append(eps, make([]endpoint, 0, nAddrs))
			}
		}
		for _, es := range cs.bySvc[nn] {
			for _, ep := range es.Endpoints {
				if !ep.Ready {
					continue
				}
				var pod *Pod
				if ep.Pod != "" {
					pod = cs.pods[NamespacedName{Namespace: es.Namespace, Name: ep.Pod}]
				}
				if pod != nil && pod.ServiceAccount != "" {
					sas = append(sas, NamespacedName{Namespace: pod.Namespace, Name: pod.ServiceAccount})
				}
				loc, locStr := cs.locality(ep.NodeName, ep.Zone)
				mtls := pod != nil && pod.TLSMode == TLSModeIstio
				for _, addr := range ep.Addresses {
					d := nc.decide(cv.id, es.Namespace, ep.Pod, addr, pod)
					matched := false
					for _, sp := range svc.Ports {
						for _, pp := range es.Ports {
							if pp.Name != sp.Name || pp.Port == 0 {
								continue
							}
							i := portIndex(sp.Port)
							m := mtls && (len(cv.pa) == 0 ||
								EffectiveMTLS(cv.pa, rootNamespace, Workload{Namespace: pod.Namespace, Labels: pod.Labels}, pp.Port) != MTLSDisable)
							eps[i] = append(eps[i], endpoint{addr: addr, port: pp.Port, cluster: cv.id, network: d.Network, loc: loc, locStr: locStr, mtls: m})
							matched = true
						}
					}
					if !matched {
						continue
					}
					addrs = append(addrs, addrKey{cv.id, addr, d.Network})
					if d.Warning != "" {
						warnings = append(warnings, d.Warning)
					}
					if d.Rule == rulePodLabel {
						labelPods = append(labelPods, podNet{pod: pod.Key(), network: d.Network})
					}
				}
			}
		}
	}
	if info == nil {
		return nil
	}
	st := &svcState{info: info, ports: make([]portState, len(info.Ports))}
	for i := range info.Ports {
		list := eps[i]
		slices.SortFunc(list, compareEndpoints)
		list = slices.CompactFunc(list, func(a, b endpoint) bool {
			return a.addr == b.addr && a.port == b.port && a.cluster == b.cluster
		})
		st.ports[i] = portState{port: info.Ports[i].Port, eps: slices.Clip(list)}
	}
	slices.SortFunc(st.ports, func(a, b portState) int { return cmp.Compare(a.port, b.port) })
	slices.SortFunc(info.Ports, func(a, b ServicePort) int { return cmp.Compare(a.Port, b.Port) })
	if len(sas) > 0 {
		// sas usually holds one account many times: sort a compacted copy.
		sas = distinctAccounts(sas)
		slices.SortFunc(sas, func(a, b NamespacedName) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
		})
		info.ServiceAccounts = slices.Clip(slices.Compact(sas))
	}
	if len(addrs) > 0 {
		slices.SortFunc(addrs, func(a, b addrKey) int {
			return cmp.Or(cmp.Compare(a.cluster, b.cluster), cmp.Compare(a.network, b.network), strings.Compare(a.addr, b.addr))
		})
		addrs = slices.Compact(addrs)
		st.counts = make([]netCount, 0, 1)
		for _, a := range addrs {
			if n := len(st.counts); n > 0 && st.counts[n-1].cluster == a.cluster && st.counts[n-1].network == a.network {
				st.counts[n-1].n++
				continue
			}
			st.counts = append(st.counts, netCount{cluster: a.cluster, network: a.network, n: 1})
		}
	}
	if len(warnings) > 0 {
		slices.Sort(warnings)
		st.warnings = slices.Compact(warnings)
	}
	if len(labelPods) > 0 {
		slices.SortFunc(labelPods, func(a, b podNet) int {
			return cmp.Or(compareKeys(a.pod, b.pod), cmp.Compare(a.network, b.network))
		})
		st.labelPods = slices.Compact(labelPods)
	}
	return st
}

// distinctAccounts drops repeats of the accounts in sas in place, in
// O(len(sas) x distinct): fine for the few accounts behind a service.
func distinctAccounts(sas []NamespacedName) []NamespacedName {
	out := sas[:0]
	for _, a := range sas {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// endpointLocality is the locality of an endpoint on node n (nil if
// unknown): the node's region, zone and subzone labels, the zone falling
// back to the slice endpoint's zone.
func endpointLocality(n *Node, sliceZone string) Locality {
	var l Locality
	if n != nil {
		l = Locality{Region: n.Labels[LabelRegion], Zone: n.Labels[LabelZone], Subzone: n.Labels[LabelSubzone]}
	}
	if l.Zone == "" {
		l.Zone = sliceZone
	}
	return l
}

// parseLocality splits region/zone/subzone.
func parseLocality(s string) Locality {
	var l Locality
	var ok bool
	l.Region, s, ok = strings.Cut(s, "/")
	if ok {
		l.Zone, l.Subzone, _ = strings.Cut(s, "/")
	}
	return l
}

// sameState reports whether two states are equal in everything the model
// publishes.
func sameState(a, b *svcState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameInfo(a.info, b.info) &&
		slices.EqualFunc(a.ports, b.ports, func(x, y portState) bool { return x.port == y.port && slices.Equal(x.eps, y.eps) }) &&
		slices.Equal(a.counts, b.counts) &&
		slices.Equal(a.warnings, b.warnings) &&
		slices.Equal(a.labelPods, b.labelPods)
}

func sameInfo(a, b *ServiceInfo) bool {
	return a.Host == b.Host && a.Namespace == b.Namespace && a.Name == b.Name &&
		maps.Equal(a.ClusterIPs, b.ClusterIPs) &&
		slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.ServiceAccounts, b.ServiceAccounts)
}

// networksMoved reports whether an endpoint present in both states (same
// address, port and cluster) has another network in b than in a.
func networksMoved(a, b *svcState) bool {
	if a == nil || b == nil {
		return false
	}
	for _, pb := range b.ports {
		pa := a.port(pb.port)
		if pa == nil {
			continue
		}
		for j := range pb.eps {
			e := &pb.eps[j]
			i, ok := slices.BinarySearchFunc(pa.eps, e, func(x endpoint, y *endpoint) int {
				return cmp.Or(strings.Compare(x.addr, y.addr), cmp.Compare(x.port, y.port), cmp.Compare(x.cluster, y.cluster))
			})
			if ok && pa.eps[i].network != e.network {
				return true
			}
		}
	}
	return false
}
