package model

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/gaissmai/bart"
)

// ruleKind says which rule decided an endpoint's network.
type ruleKind uint8

const (
	ruleNone ruleKind = iota
	ruleCIDR
	ruleRegistry
	rulePodLabel
	ruleNamespaceLabel
)

// cidrRule is the value of the meshNetworks prefix table.
type cidrRule struct {
	network NetworkID
	prefix  netip.Prefix
}

// netConfig is the immutable set of network rules: meshNetworks (as a
// prefix table and a registry map) and the network label of each cluster's
// system namespace. A new one is built whenever any of them changes.
type netConfig struct {
	systemNamespace string
	mn              *MeshNetworks
	cidrs           *bart.Table[cidrRule]
	registry        map[ClusterID]NetworkID
	// nsNetwork is the topology.istio.io/network label of each cluster's
	// system namespace; clusters without the label are absent.
	nsNetwork map[ClusterID]NetworkID
	// clusters of each network, by fromRegistry, else by namespace label:
	// where registryServiceName gateways are looked up.
	clusters map[NetworkID][]ClusterID
}

// newNetConfig builds the network rules. mn must be valid (nil: none); an
// invalid CIDR entry is skipped rather than trusted.
func newNetConfig(mn *MeshNetworks, systemNamespace string, nsNetwork map[ClusterID]NetworkID) *netConfig {
	nc := &netConfig{
		systemNamespace: systemNamespace,
		mn:              mn,
		cidrs:           new(bart.Table[cidrRule]),
		registry:        map[ClusterID]NetworkID{},
		nsNetwork:       nsNetwork,
		clusters:        map[NetworkID][]ClusterID{},
	}
	if mn != nil {
		for _, name := range slices.Sorted(maps.Keys(mn.Networks)) {
			for _, ep := range mn.Networks[name].Endpoints {
				switch {
				case ep.FromCIDR.IsValid():
					p := normPrefix(ep.FromCIDR)
					nc.cidrs.Insert(p, cidrRule{network: name, prefix: p})
				case ep.FromRegistry != "":
					if _, ok := nc.registry[ep.FromRegistry]; !ok {
						nc.registry[ep.FromRegistry] = name
					}
				}
			}
		}
	}
	for c, n := range nc.registry {
		nc.clusters[n] = append(nc.clusters[n], c)
	}
	for c, n := range nsNetwork {
		if _, ok := nc.registry[c]; !ok && n != "" {
			nc.clusters[n] = append(nc.clusters[n], c)
		}
	}
	for _, cs := range nc.clusters {
		slices.Sort(cs)
	}
	return nc
}

// netDecision is the network of one endpoint and why.
type netDecision struct {
	Network NetworkID
	Rule    ruleKind
	// Warning is set when a label disagrees with the meshNetworks rule that
	// decided; it names the endpoint.
	Warning string
}

// decide applies the network rules to one endpoint address of cluster c in
// namespace ns, whose pod (from the slice's targetRef, possibly not known)
// is pod; podName is the targetRef name, for the warning. First match wins:
// meshNetworks fromCidr, meshNetworks fromRegistry, the pod's label, the
// label of the cluster's system namespace, else the empty network. When a
// meshNetworks rule decides and the label that would otherwise have decided
// (the pod's, else the namespace's) names another network, the decision
// carries a warning naming the endpoint.
func (nc *netConfig) decide(c ClusterID, ns, podName, addr string, pod *Pod) netDecision {
	var d netDecision
	var cidr netip.Prefix
	if nc.cidrs.Size() > 0 {
		if ip, err := netip.ParseAddr(addr); err == nil {
			if r, ok := nc.cidrs.Lookup(ip.Unmap()); ok {
				d = netDecision{Network: r.network, Rule: ruleCIDR}
				cidr = r.prefix
			}
		}
	}
	if d.Rule == ruleNone {
		if n, ok := nc.registry[c]; ok {
			d = netDecision{Network: n, Rule: ruleRegistry}
		}
	}
	label, fromPod := NetworkID(""), false
	switch {
	case pod != nil && pod.Network != "":
		label, fromPod = pod.Network, true
	default:
		label = nc.nsNetwork[c]
	}
	if d.Rule != ruleNone {
		if label != "" && label != d.Network {
			if podName == "" {
				podName = "-"
			}
			labelText := "pod label " + LabelNetwork
			if !fromPod {
				labelText = "namespace label " + LabelNetwork + " on " + string(c) + "/" + nc.systemNamespace
			}
			ruleText := "fromRegistry " + string(c)
			if d.Rule == ruleCIDR {
				ruleText = "fromCidr " + cidr.String()
			}
			d.Warning = "endpoint " + string(c) + "/" + ns + "/" + podName + " " + addr + ": " + labelText + "=" +
				strconv.Quote(string(label)) + " disagrees with meshNetworks " + ruleText + " (network " +
				strconv.Quote(string(d.Network)) + "); meshNetworks wins: fix the label or the rule"
		}
		return d
	}
	switch {
	case fromPod:
		return netDecision{Network: label, Rule: rulePodLabel}
	case label != "":
		return netDecision{Network: label, Rule: ruleNamespaceLabel}
	}
	return netDecision{}
}

// clustersOf returns the clusters of network n where its registryServiceName
// gateways are looked up: those meshNetworks puts in n by fromRegistry and
// those whose system namespace is labeled n (and not claimed by
// fromRegistry). all is true when n has no such cluster: then every cluster
// is searched, as Istio does.
func (nc *netConfig) clustersOf(n NetworkID) (clusters []ClusterID, all bool) {
	cs := nc.clusters[n]
	return cs, len(cs) == 0
}

// PodNetwork returns the network the rules give a pod of cluster c whose
// topology.istio.io/network label is label (empty: none) before its
// address is known, as the sidecar injector needs it: meshNetworks
// fromRegistry c, else the label, else the label of c's system namespace,
// else the empty network. (A fromCidr rule, which needs the address, is
// not applied.)
func (s *Store) PodNetwork(c ClusterID, label NetworkID) NetworkID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mn != nil {
		for _, name := range slices.Sorted(maps.Keys(s.mn.Networks)) {
			for _, ep := range s.mn.Networks[name].Endpoints {
				if ep.FromRegistry == c {
					return name
				}
			}
		}
	}
	if label != "" {
		return label
	}
	if cs := s.clusters[c]; cs != nil {
		return cs.network
	}
	return ""
}
