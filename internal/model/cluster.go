package model

import (
	"maps"
	"slices"
)

// clusterState is what the store holds of one cluster, with the indexes
// that turn an object change into the services it affects.
type clusterState struct {
	services map[NamespacedName]*svcEntry
	slices   map[NamespacedName]*EndpointSlice
	// bySvc: slices of each Service (label kubernetes.io/service-name), by
	// slice name.
	bySvc map[NamespacedName]map[string]*EndpointSlice
	pods  map[NamespacedName]*Pod
	// podRefs: the slices (in the pod's namespace) naming a pod.
	podRefs map[NamespacedName][]sliceRef
	nodes   map[string]*Node
	// nodeLoc caches the locality of each node.
	nodeLoc map[string]nodeLocality
	// nodeRefs: how many endpoints of each slice run on a node.
	nodeRefs map[string]map[NamespacedName]int
	// network is the topology.istio.io/network label of the system
	// namespace.
	network NetworkID
	// oldKubelets counts the nodes whose kubelet cannot run native
	// sidecars (see KubeletRunsNativeSidecars).
	oldKubelets int
}

// nodeLocality is a node's locality and its string.
type nodeLocality struct {
	loc Locality
	str string
}

// locality is the locality of an endpoint on node (see endpointLocality),
// from the cache when the node has a zone.
func (cs *clusterState) locality(node, sliceZone string) (Locality, string) {
	if nl, ok := cs.nodeLoc[node]; ok && nl.loc.Zone != "" {
		return nl.loc, nl.str
	}
	l := endpointLocality(cs.nodes[node], sliceZone)
	return l, l.String()
}

func newClusterState() *clusterState {
	return &clusterState{
		services: map[NamespacedName]*svcEntry{},
		slices:   map[NamespacedName]*EndpointSlice{},
		bySvc:    map[NamespacedName]map[string]*EndpointSlice{},
		pods:     map[NamespacedName]*Pod{},
		podRefs:  map[NamespacedName][]sliceRef{},
		nodeLoc:  map[string]nodeLocality{},
		nodes:    map[string]*Node{},
		nodeRefs: map[string]map[NamespacedName]int{},
	}
}

// sliceRef counts the endpoints of one slice naming a pod.
type sliceRef struct {
	slice string
	n     int
}

// refSlice adds (d=1) or removes (d=-1) the pod and node references of es.
func refSlice(cs *clusterState, es *EndpointSlice, d int) {
	if es.ServiceName == "" {
		return
	}
	sliceNN := NamespacedName{Namespace: es.Namespace, Name: es.Name}
	for _, ep := range es.Endpoints {
		if ep.Pod != "" {
			refPod(cs, NamespacedName{Namespace: es.Namespace, Name: ep.Pod}, es.Name, d)
		}
		if ep.NodeName != "" {
			refNode(cs, ep.NodeName, sliceNN, d)
		}
	}
}

// refPod adds d to the count of endpoints of slice naming pod pk, and
// forgets the slice, then the pod, when it drops to zero.
func refPod(cs *clusterState, pk NamespacedName, slice string, d int) {
	refs := cs.podRefs[pk]
	i := slices.IndexFunc(refs, func(r sliceRef) bool { return r.slice == slice })
	switch {
	case i < 0 && d > 0:
		cs.podRefs[pk] = append(refs, sliceRef{slice: slice, n: d})
	case i >= 0:
		if refs[i].n += d; refs[i].n <= 0 {
			refs = slices.Delete(refs, i, i+1)
		}
		if len(refs) == 0 {
			delete(cs.podRefs, pk)
		} else {
			cs.podRefs[pk] = refs
		}
	}
}

// refNode adds d to the count of endpoints of slice sliceNN on node, and
// forgets the slice, then the node, when it drops to zero.
func refNode(cs *clusterState, node string, sliceNN NamespacedName, d int) {
	refs := cs.nodeRefs[node]
	if refs == nil {
		if d < 0 {
			return
		}
		refs = map[NamespacedName]int{}
		cs.nodeRefs[node] = refs
	}
	if refs[sliceNN] += d; refs[sliceNN] <= 0 {
		delete(refs, sliceNN)
		if len(refs) == 0 {
			delete(cs.nodeRefs, node)
		}
	}
}

func sameMeshNetworks(a, b *MeshNetworks) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.EqualFunc(a.Networks, b.Networks, func(x, y MeshNetwork) bool {
		return slices.Equal(x.Endpoints, y.Endpoints) && slices.Equal(x.Gateways, y.Gateways)
	})
}

func sameService(a, b *Service) bool {
	return a.Cluster == b.Cluster && a.Namespace == b.Namespace && a.Name == b.Name &&
		a.Type == b.Type && a.ClusterIP == b.ClusterIP && slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.ExternalIPs, b.ExternalIPs) && slices.Equal(a.LoadBalancerIPs, b.LoadBalancerIPs) &&
		slices.Equal(a.LoadBalancerHostnames, b.LoadBalancerHostnames) && a.Network == b.Network &&
		a.GatewayPort == b.GatewayPort && (a.NodeSelector == nil) == (b.NodeSelector == nil) &&
		maps.Equal(a.NodeSelector, b.NodeSelector) && slices.Equal(a.Ignored, b.Ignored)
}

func sameSlice(a, b *EndpointSlice) bool {
	return a.Cluster == b.Cluster && a.Namespace == b.Namespace && a.Name == b.Name &&
		a.ServiceName == b.ServiceName && slices.Equal(a.Ports, b.Ports) &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y SliceEndpoint) bool {
			return x.Ready == y.Ready && x.NodeName == y.NodeName && x.Zone == y.Zone && x.Pod == y.Pod &&
				slices.Equal(x.Addresses, y.Addresses)
		})
}

func samePod(a, b *Pod) bool {
	return a.Cluster == b.Cluster && a.Namespace == b.Namespace && a.Name == b.Name &&
		slices.Equal(a.IPs, b.IPs) && a.Network == b.Network && a.TLSMode == b.TLSMode &&
		a.ServiceAccount == b.ServiceAccount && a.NodeName == b.NodeName && maps.Equal(a.Labels, b.Labels)
}

func sameNode(a, b *Node) bool {
	return a.Cluster == b.Cluster && a.Name == b.Name && maps.Equal(a.Labels, b.Labels) &&
		slices.Equal(a.ExternalIPs, b.ExternalIPs) && slices.Equal(a.InternalIPs, b.InternalIPs) &&
		a.KubeletVersion == b.KubeletVersion
}
