package model

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Gateway is an address and port of a network that accepts mTLS traffic
// from other networks and passes it, by SNI, to an endpoint inside.
type Gateway struct {
	Address string    `json:"address"`
	Port    uint32    `json:"port"`
	Network NetworkID `json:"network"`
	Cluster ClusterID `json:"cluster,omitempty"`
	// Source says where the gateway comes from, e.g. "service
	// cluster1/istio-system/istio-eastwestgateway (LoadBalancer ingress)".
	Source   string `json:"source"`
	Locality string `json:"locality,omitempty"`
}

// resolution is what Config.Resolve answered for a hostname.
type resolution struct {
	IPs []string
	// Err is why the hostname has no address; empty when IPs is not.
	Err string
}

func resolve(fn func(string) ([]string, error), host string) resolution {
	if fn == nil {
		return resolution{Err: "no resolver configured"}
	}
	ips, err := fn(host)
	if err != nil {
		return resolution{Err: "cannot resolve: " + err.Error()}
	}
	var valid []string
	for _, ip := range ips {
		if _, err := netip.ParseAddr(ip); err == nil && !slices.Contains(valid, ip) {
			valid = append(valid, ip)
		}
	}
	if len(valid) == 0 {
		return resolution{Err: "resolved to no IP address"}
	}
	return resolution{IPs: valid}
}

// svcEntry is a stored Service with the resolution of its LoadBalancer
// hostnames, done when it was stored (outside the store's lock) if it was
// then a gateway candidate.
type svcEntry struct {
	svc *Service
	// lb maps each LoadBalancer hostname to its resolution; nil when not
	// resolved.
	lb map[string]resolution
}

// gwSpec says which gateways to take from a Service.
type gwSpec struct {
	network NetworkID
	// port is the gateway port of external addresses and the Service port
	// whose node port a NodePort Service exposes.
	port     uint32
	locality string
	// source starts every Gateway.Source and warning.
	source string
}

// gatewaysOfService returns the gateways Service e exposes for spec: its
// externalIPs, LoadBalancer ingress IPs and resolved hostnames on spec.port
// and, for a NodePort Service, the node port of its port spec.port on the
// address of each node that qualifies. In mode NodePortEndpoints a node
// qualifies when it runs a ready endpoint of the Service (readyNodes) and
// matches the traffic.istio.io/nodeSelector annotation if there is one; in
// mode NodePortSelector when it matches the annotation (none: no node, as
// Istio). A node's address is its first ExternalIP, else its first
// InternalIP. What is left out is said in warnings.
func gatewaysOfService(e *svcEntry, spec gwSpec, mode NodePortMode, nodes map[string]*Node, readyNodes []string) (gws []Gateway, warnings []string) {
	svc := e.svc
	add := func(addr string, port uint32, how string) {
		gws = append(gws, Gateway{
			Address:  addr,
			Port:     port,
			Network:  spec.network,
			Cluster:  svc.Cluster,
			Source:   spec.source + " (" + how + ")",
			Locality: spec.locality,
		})
	}
	for _, ip := range svc.ExternalIPs {
		add(ip, spec.port, "externalIPs")
	}
	for _, ip := range svc.LoadBalancerIPs {
		add(ip, spec.port, "LoadBalancer ingress")
	}
	for _, h := range svc.LoadBalancerHostnames {
		r, ok := e.lb[h]
		if !ok {
			r = resolution{Err: "not resolved"}
		}
		if r.Err != "" {
			warnings = append(warnings, fmt.Sprintf("%s: LoadBalancer hostname %s left out: %s", spec.source, h, r.Err))
			continue
		}
		for _, ip := range r.IPs {
			add(ip, spec.port, "LoadBalancer ingress hostname "+h)
		}
	}
	if svc.Type == ServiceTypeNodePort {
		nodeGws, warn := nodePortGateways(svc, spec, mode, nodes, readyNodes)
		gws = append(gws, nodeGws...)
		if warn != "" {
			warnings = append(warnings, warn)
		}
	}
	if len(gws) == 0 && len(warnings) == 0 {
		warnings = append(warnings, fmt.Sprintf("%s: no external address (externalIPs, LoadBalancer ingress or NodePort on a qualifying node): no gateway for network %q from it", spec.source, spec.network))
	}
	return gws, warnings
}

func nodePortGateways(svc *Service, spec gwSpec, mode NodePortMode, nodes map[string]*Node, readyNodes []string) ([]Gateway, string) {
	var nodePort uint32
	for _, p := range svc.Ports {
		if p.Port == spec.port && p.NodePort != 0 {
			nodePort = p.NodePort
			break
		}
	}
	if nodePort == 0 {
		return nil, fmt.Sprintf("%s: NodePort Service has no port %d with a node port: no NodePort gateway; set label %s to one of its ports", spec.source, spec.port, LabelGatewayPort)
	}
	var names []string
	if mode == NodePortSelector {
		if svc.NodeSelector == nil {
			return nil, fmt.Sprintf("%s: NodePort gateway without annotation %s: no node address is handed out (--nodeport-gateways=selector)", spec.source, AnnotationNodeSelect)
		}
		for name, n := range nodes {
			if matchesSelector(n.Labels, svc.NodeSelector) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
	} else {
		for _, name := range readyNodes {
			if n := nodes[name]; n != nil && matchesSelector(n.Labels, svc.NodeSelector) {
				names = append(names, name)
			}
		}
	}
	var gws []Gateway
	for _, name := range names {
		addr := nodeAddress(nodes[name])
		if addr == "" {
			continue
		}
		gws = append(gws, Gateway{
			Address:  addr,
			Port:     nodePort,
			Network:  spec.network,
			Cluster:  svc.Cluster,
			Source:   spec.source + " (NodePort " + strconv.FormatUint(uint64(nodePort), 10) + " on node " + name + ")",
			Locality: spec.locality,
		})
	}
	return gws, ""
}

// matchesSelector reports whether labels has every key of sel with its
// value; a nil or empty selector matches every node.
func matchesSelector(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// nodeAddress is the address a node's NodePorts are reached on from
// another network: its first ExternalIP, else its first InternalIP.
func nodeAddress(n *Node) string {
	if len(n.ExternalIPs) > 0 {
		return n.ExternalIPs[0]
	}
	if len(n.InternalIPs) > 0 {
		return n.InternalIPs[0]
	}
	return ""
}

// readyNodeNames returns the sorted, distinct nodes that run a ready
// endpoint of the slices.
func readyNodeNames(slicesOfSvc map[string]*EndpointSlice) []string {
	var names []string
	for _, es := range slicesOfSvc {
		for _, ep := range es.Endpoints {
			if ep.Ready && ep.NodeName != "" {
				names = append(names, ep.NodeName)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// splitServiceHost returns the namespace and name of a service hostname
// NAME.NS.svc.DOMAIN.
func splitServiceHost(h Host, domain string) (NamespacedName, bool) {
	rest, ok := strings.CutSuffix(string(h), ".svc."+domain)
	if !ok {
		return NamespacedName{}, false
	}
	name, ns, ok := strings.Cut(rest, ".")
	if !ok || name == "" || ns == "" || strings.Contains(ns, ".") {
		return NamespacedName{}, false
	}
	return NamespacedName{Namespace: ns, Name: name}, true
}

// gatewayInputs is what gateway discovery reads.
type gatewayInputs struct {
	mode   NodePortMode
	domain string
	mn     *MeshNetworks
	// mnAddrs resolves meshNetworks gateway addresses that are hostnames.
	mnAddrs  map[string]resolution
	net      *netConfig
	clusters map[ClusterID]*clusterState
	// labeled are the Services labeled topology.istio.io/network.
	labeled map[ObjectKey]struct{}
}

// discoverGateways finds every network's gateways: meshNetworks addresses,
// then meshNetworks registryServiceName Services (in the clusters of the
// network, see netConfig.clustersOf), then Services labeled
// topology.istio.io/network (port: label networking.istio.io/gatewayPort,
// default 15443). A gateway listed twice in a network (same address and
// port) is kept once, the first found: explicit meshNetworks entries win.
func discoverGateways(in *gatewayInputs) *gatewaySet {
	f := gatewayFinder{in: in, nodePortClusters: map[ClusterID]bool{}}
	if in.mn != nil {
		allClusters := slices.Sorted(maps.Keys(in.clusters))
		for _, name := range slices.Sorted(maps.Keys(in.mn.Networks)) {
			for i, g := range in.mn.Networks[name].Gateways {
				where := fmt.Sprintf("meshNetworks network %q gateways[%d]", name, i)
				switch {
				case g.Address != "":
					f.fromMeshNetworksAddress(name, where, g)
				case g.RegistryServiceName != "":
					f.fromRegistryService(name, where, g, allClusters)
				}
			}
		}
	}
	f.fromLabeledServices()
	set := newGatewaySet(f.gws, f.warnings)
	set.nodePortClusters = f.nodePortClusters
	set.ignored = f.ignored
	return set
}

// gatewayFinder gathers the gateways discoverGateways finds, and its
// warnings.
type gatewayFinder struct {
	in               *gatewayInputs
	gws              []Gateway
	warnings         []string
	ignored          int
	nodePortClusters map[ClusterID]bool
}

// fromMeshNetworksAddress adds a meshNetworks gateway address: an IP as
// it is, a hostname as the IPs it resolved to (a warning when it did not).
func (f *gatewayFinder) fromMeshNetworksAddress(name NetworkID, where string, g NetworkGateway) {
	if _, err := netip.ParseAddr(g.Address); err == nil {
		f.gws = append(f.gws, Gateway{Address: g.Address, Port: g.Port, Network: name, Source: "meshNetworks address", Locality: g.Locality})
		return
	}
	r, ok := f.in.mnAddrs[g.Address]
	if !ok {
		r = resolution{Err: "not resolved"}
	}
	if r.Err != "" {
		f.warnings = append(f.warnings, fmt.Sprintf("%s: address %s left out: %s", where, g.Address, r.Err))
	}
	for _, ip := range r.IPs {
		f.gws = append(f.gws, Gateway{Address: ip, Port: g.Port, Network: name, Source: "meshNetworks address " + g.Address, Locality: g.Locality})
	}
}

// fromRegistryService adds the gateways of a meshNetworks
// registryServiceName Service in each cluster of the network (all of them
// when the network names none); a warning when no cluster has it.
func (f *gatewayFinder) fromRegistryService(name NetworkID, where string, g NetworkGateway, allClusters []ClusterID) {
	domain := f.in.domain
	nn, ok := splitServiceHost(g.RegistryServiceName, domain)
	if !ok {
		f.warnings = append(f.warnings, fmt.Sprintf("%s: registryServiceName %s is not a service host NAME.NAMESPACE.svc.%s: no gateway from it", where, g.RegistryServiceName, domain))
		return
	}
	clusters, all := f.in.net.clustersOf(name)
	if all {
		clusters = allClusters
	}
	found := false
	for _, c := range clusters {
		spec := gwSpec{network: name, port: g.Port, locality: g.Locality, source: "meshNetworks registryServiceName " + string(g.RegistryServiceName)}
		found = f.fromService(c, nn, spec) || found
	}
	if !found {
		in := "any cluster"
		if !all {
			in = fmt.Sprintf("clusters %v of the network", clusters)
		}
		f.warnings = append(f.warnings, fmt.Sprintf("%s: registryServiceName %s matches no Service in %s: no gateway from it", where, g.RegistryServiceName, in))
	}
}

// fromLabeledServices adds the gateways of the Services labeled
// topology.istio.io/network, on their gateway port (default 15443); their
// ignored gateway labels and annotations are warned about and counted.
func (f *gatewayFinder) fromLabeledServices() {
	for _, k := range slices.SortedFunc(maps.Keys(f.in.labeled), compareKeys) {
		cs := f.in.clusters[k.Cluster]
		if cs == nil || cs.services[k.NamespacedName] == nil {
			continue
		}
		svc := cs.services[k.NamespacedName].svc
		for _, ig := range svc.Ignored {
			f.warnings = append(f.warnings, fmt.Sprintf("service %s: %s; ignored, as Istio does: fix or remove it", k, ig))
			f.ignored++
		}
		port := svc.GatewayPort
		if port == 0 {
			port = DefaultGatewayPort
		}
		f.fromService(k.Cluster, k.NamespacedName, gwSpec{network: svc.Network, port: port, source: "service " + k.String()})
	}
}

// fromService adds the gateways of Service nn in cluster c, and reports
// whether the cluster has it. A NodePort Service marks its cluster; its
// ready nodes count unless the mode selects nodes otherwise.
func (f *gatewayFinder) fromService(c ClusterID, nn NamespacedName, spec gwSpec) bool {
	cs := f.in.clusters[c]
	if cs == nil {
		return false
	}
	e := cs.services[nn]
	if e == nil {
		return false
	}
	var ready []string
	if e.svc.Type == ServiceTypeNodePort {
		f.nodePortClusters[c] = true
		if f.in.mode != NodePortSelector {
			ready = readyNodeNames(cs.bySvc[nn])
		}
	}
	g, w := gatewaysOfService(e, spec, f.in.mode, cs.nodes, ready)
	f.gws = append(f.gws, g...)
	f.warnings = append(f.warnings, w...)
	return true
}

func compareKeys(a, b ObjectKey) int {
	return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

type netCluster struct {
	network NetworkID
	cluster ClusterID
}

// gatewaySet is the immutable result of gateway discovery, shared by
// snapshots until gateways change.
type gatewaySet struct {
	// byNetwork: each network's gateways, sorted by address and port.
	byNetwork map[NetworkID][]Gateway
	// byNetCluster: each network's gateways in one cluster (Cluster "" for
	// meshNetworks addresses).
	byNetCluster map[netCluster][]Gateway
	// scale is the least common multiple of every gateway count of
	// byNetwork and byNetCluster, 1 without gateways.
	scale    uint32
	total    int
	warnings []string
	// ignored counts the unparsable gateway labels and annotations of
	// gateway Services, ignored.
	ignored int
	// nodePortClusters are the clusters with a NodePort gateway Service:
	// their nodes decide gateway addresses.
	nodePortClusters map[ClusterID]bool
}

// newGatewaySet groups gateways, keeping the first of each (network,
// address, port), and computes the weight scale.
func newGatewaySet(gws []Gateway, warnings []string) *gatewaySet {
	type addrPort struct {
		addr string
		port uint32
	}
	set := &gatewaySet{byNetwork: map[NetworkID][]Gateway{}, byNetCluster: map[netCluster][]Gateway{}, scale: 1}
	seen := map[NetworkID]map[addrPort]bool{}
	networksOf := map[addrPort][]NetworkID{}
	for _, g := range gws {
		k := addrPort{g.Address, g.Port}
		if seen[g.Network] == nil {
			seen[g.Network] = map[addrPort]bool{}
		}
		if seen[g.Network][k] {
			continue
		}
		seen[g.Network][k] = true
		networksOf[k] = append(networksOf[k], g.Network)
		set.byNetwork[g.Network] = append(set.byNetwork[g.Network], g)
		set.total++
	}
	for k, nets := range networksOf {
		if len(nets) > 1 {
			slices.Sort(nets)
			warnings = append(warnings, fmt.Sprintf("gateway %s:%d is a gateway of networks %v: a gateway leads into one network; fix the labels or meshNetworks", k.addr, k.port, nets))
		}
	}
	scale := uint64(1)
	for n, list := range set.byNetwork {
		slices.SortStableFunc(list, func(a, b Gateway) int {
			return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
		})
		scale = min(LCM(scale, uint64(len(list))), maxScale)
		for _, g := range list {
			k := netCluster{n, g.Cluster}
			set.byNetCluster[k] = append(set.byNetCluster[k], g)
		}
	}
	for _, list := range set.byNetCluster {
		scale = min(LCM(scale, uint64(len(list))), maxScale)
	}
	if scale > math.MaxUint32 {
		warnings = append(warnings, fmt.Sprintf("the weight scale (least common multiple of gateway counts) is %d, over 2^32: weights are capped and no longer proportional; use fewer distinct gateway counts", scale))
		scale = math.MaxUint32
	}
	set.scale = uint32(scale)
	slices.Sort(warnings)
	set.warnings = slices.Compact(warnings)
	return set
}

// maxScale caps the weight scale while it is folded: past 2^32 weights are
// capped anyway, and the cap keeps the product from overflowing.
const maxScale = math.MaxUint32 + 1

// Integer is the integer types LCM and GCD take.
type Integer interface {
	~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64
}

// LCM is the least common multiple of two non-negative numbers, or the
// other one when either is 0 (so that a fold may start at 0 or 1). It may
// overflow: callers cap what they fold.
func LCM[T Integer](a, b T) T {
	if a == 0 || b == 0 {
		return max(a, b)
	}
	return a / GCD(a, b) * b
}

// GCD is the greatest common divisor of two non-negative numbers; GCD(0, b)
// is b.
func GCD[T Integer](a, b T) T {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// sameViews reports whether two gateway sets give the same views: same
// gateways, same scale. Warnings do not count.
func (g *gatewaySet) sameViews(o *gatewaySet) bool {
	if g == nil || o == nil {
		return g == o
	}
	return g.scale == o.scale && maps.EqualFunc(g.byNetwork, o.byNetwork, slices.Equal)
}
