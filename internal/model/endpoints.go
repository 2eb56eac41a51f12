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
//
// The rule reads from the steps: for each cluster that defines the Service,
// mergeServiceInfo, then addReadyEndpoints (each address of a ready endpoint
// takes its network from netConfig.decide and joins every Service port whose
// name a slice port carries); finally finish sorts and aggregates.
func buildService(nn NamespacedName, host Host, clusters []clusterView, nc *netConfig, rootNamespace string) *svcState {
	b := newServiceBuilder(nn, host, clusters, nc, rootNamespace)
	for _, cv := range clusters {
		e := cv.state.services[nn]
		if e == nil {
			continue
		}
		b.mergeServiceInfo(cv.id, e.svc)
		for _, es := range cv.state.bySvc[nn] {
			b.addReadyEndpoints(cv, e.svc, es)
		}
	}
	if b.info == nil {
		return nil
	}
	return b.finish()
}

// addrKey is one distinct ready address of a service, counted per cluster
// and network.
type addrKey struct {
	cluster ClusterID
	addr    string
	network NetworkID
}

// serviceBuilder gathers what buildService reads of each cluster, unsorted;
// finish turns it into a svcState.
type serviceBuilder struct {
	nn            NamespacedName
	host          Host
	nc            *netConfig
	rootNamespace string
	nAddrs        int // ready addresses over all clusters: the capacity of each port's list

	info      *ServiceInfo
	eps       [][]endpoint // parallel to info.Ports; built per port number
	addrs     []addrKey
	sas       []NamespacedName
	warnings  []string
	labelPods []podNet
}

// newServiceBuilder sizes the buffers once: a rebuild is on the path of
// every change.
func newServiceBuilder(nn NamespacedName, host Host, clusters []clusterView, nc *netConfig, rootNamespace string) *serviceBuilder {
	nAddrs, nEps := countReadyEndpoints(nn, clusters)
	return &serviceBuilder{
		nn: nn, host: host, nc: nc, rootNamespace: rootNamespace, nAddrs: nAddrs,
		addrs: make([]addrKey, 0, nAddrs),
		sas:   make([]NamespacedName, 0, nEps),
	}
}

// countReadyEndpoints counts the ready endpoints of nn, and their
// addresses, in the clusters that define the Service.
func countReadyEndpoints(nn NamespacedName, clusters []clusterView) (nAddrs, nEps int) {
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
	return nAddrs, nEps
}

// portIndex is the index of port number p in info.Ports, or -1.
func (b *serviceBuilder) portIndex(p uint32) int {
	for i := range b.info.Ports {
		if b.info.Ports[i].Port == p {
			return i
		}
	}
	return -1
}

// mergeServiceInfo merges one cluster's Service into the host's
// ServiceInfo: its ClusterIP (when it has one) by cluster, and the union of
// the ports by number, the first cluster's definition of a number winning.
func (b *serviceBuilder) mergeServiceInfo(c ClusterID, svc *Service) {
	if b.info == nil {
		b.info = &ServiceInfo{Host: b.host, Namespace: b.nn.Namespace, Name: b.nn.Name}
	}
	if svc.ClusterIP != "" && svc.ClusterIP != "None" {
		if b.info.ClusterIPs == nil {
			b.info.ClusterIPs = map[ClusterID]string{}
		}
		b.info.ClusterIPs[c] = svc.ClusterIP
	}
	for _, sp := range svc.Ports {
		if b.portIndex(sp.Port) < 0 {
			b.info.Ports = append(b.info.Ports, sp)
			b.eps = append(b.eps, make([]endpoint, 0, b.nAddrs))
		}
	}
}

// addReadyEndpoints adds each address of each ready endpoint of slice es:
// a ready endpoint's pod names its service account, and each address takes
// its network from netConfig.decide.
func (b *serviceBuilder) addReadyEndpoints(cv clusterView, svc *Service, es *EndpointSlice) {
	cs := cv.state
	for _, ep := range es.Endpoints {
		if !ep.Ready {
			continue
		}
		var pod *Pod
		if ep.Pod != "" {
			pod = cs.pods[NamespacedName{Namespace: es.Namespace, Name: ep.Pod}]
		}
		if pod != nil && pod.ServiceAccount != "" {
			b.sas = append(b.sas, NamespacedName{Namespace: pod.Namespace, Name: pod.ServiceAccount})
		}
		loc, locStr := cs.locality(ep.NodeName, ep.Zone)
		for _, addr := range ep.Addresses {
			d := b.nc.decide(cv.id, es.Namespace, ep.Pod, addr, pod)
			proto := endpoint{addr: addr, cluster: cv.id, network: d.Network, loc: loc, locStr: locStr}
			if !b.addToMatchingPorts(cv, svc, es, pod, proto) {
				continue // the address serves none of the Service's ports
			}
			b.noteAddress(cv.id, addr, pod, d)
		}
	}
}

// addToMatchingPorts adds the address in proto to every Service port whose
// name a slice port (with a number) carries, on the slice port's number. It
// speaks mesh mTLS when its pod runs the sidecar (tls-mode istio) and the
// cluster's PeerAuthentications do not make it DISABLE on that port. It
// reports whether any port matched.
func (b *serviceBuilder) addToMatchingPorts(cv clusterView, svc *Service, es *EndpointSlice, pod *Pod, proto endpoint) bool {
	sidecar := pod != nil && pod.TLSMode == TLSModeIstio
	matched := false
	for _, sp := range svc.Ports {
		for _, pp := range es.Ports {
			if pp.Name != sp.Name || pp.Port == 0 {
				continue
			}
			i := b.portIndex(sp.Port)
			ep := proto
			ep.port = pp.Port
			ep.mtls = sidecar && (len(cv.pa) == 0 ||
				EffectiveMTLS(cv.pa, b.rootNamespace, Workload{Namespace: pod.Namespace, Labels: pod.Labels}, pp.Port) != MTLSDisable)
			b.eps[i] = append(b.eps[i], ep)
			matched = true
		}
	}
	return matched
}

// noteAddress records, for the reports, an address that serves the
// Service: it is counted in its cluster and network, its network decision's
// warning is kept, and its pod is named when the pod's label decided.
func (b *serviceBuilder) noteAddress(c ClusterID, addr string, pod *Pod, d netDecision) {
	b.addrs = append(b.addrs, addrKey{c, addr, d.Network})
	if d.Warning != "" {
		b.warnings = append(b.warnings, d.Warning)
	}
	if d.Rule == rulePodLabel {
		b.labelPods = append(b.labelPods, podNet{pod: pod.Key(), network: d.Network})
	}
}

// finish sorts what the builder gathered into an immutable svcState.
func (b *serviceBuilder) finish() *svcState {
	info := b.info
	st := &svcState{info: info, ports: make([]portState, len(info.Ports))}
	for i := range info.Ports {
		st.ports[i] = portState{port: info.Ports[i].Port, eps: sortedDistinctEndpoints(b.eps[i])}
	}
	slices.SortFunc(st.ports, func(a, b portState) int { return cmp.Compare(a.port, b.port) })
	slices.SortFunc(info.Ports, func(a, b ServicePort) int { return cmp.Compare(a.Port, b.Port) })
	if len(b.sas) > 0 {
		info.ServiceAccounts = sortedAccounts(b.sas)
	}
	if len(b.addrs) > 0 {
		st.counts = countPerNetwork(b.addrs)
	}
	if len(b.warnings) > 0 {
		slices.Sort(b.warnings)
		st.warnings = slices.Compact(b.warnings)
	}
	if len(b.labelPods) > 0 {
		slices.SortFunc(b.labelPods, func(a, b podNet) int {
			return cmp.Or(compareKeys(a.pod, b.pod), cmp.Compare(a.network, b.network))
		})
		st.labelPods = slices.Compact(b.labelPods)
	}
	return st
}

// sortedDistinctEndpoints sorts a port's endpoints and keeps an (address,
// port) once per cluster.
func sortedDistinctEndpoints(list []endpoint) []endpoint {
	slices.SortFunc(list, compareEndpoints)
	list = slices.CompactFunc(list, func(a, b endpoint) bool {
		return a.addr == b.addr && a.port == b.port && a.cluster == b.cluster
	})
	return slices.Clip(list)
}

// sortedAccounts is the distinct accounts of sas, sorted.
func sortedAccounts(sas []NamespacedName) []NamespacedName {
	// sas usually holds one account many times: sort a compacted copy.
	sas = distinctAccounts(sas)
	slices.SortFunc(sas, func(a, b NamespacedName) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return slices.Clip(slices.Compact(sas))
}

// countPerNetwork counts the distinct addresses in each cluster and
// network, sorted by cluster then network.
func countPerNetwork(addrs []addrKey) []netCount {
	slices.SortFunc(addrs, func(a, b addrKey) int {
		return cmp.Or(cmp.Compare(a.cluster, b.cluster), cmp.Compare(a.network, b.network), strings.Compare(a.addr, b.addr))
	})
	addrs = slices.Compact(addrs)
	counts := make([]netCount, 0, 1)
	for _, a := range addrs {
		if n := len(counts); n > 0 && counts[n-1].cluster == a.cluster && counts[n-1].network == a.network {
			counts[n-1].n++
			continue
		}
		counts = append(counts, netCount{cluster: a.cluster, network: a.network, n: 1})
	}
	return counts
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
