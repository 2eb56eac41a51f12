package model

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// Changes is what changed since the previous TakeChanges.
type Changes struct {
	// Full: networks, gateways, the weight scale or the cluster-local hosts
	// changed, so any view of any service may differ.
	Full bool
	// Services whose definition or endpoints changed (removed ones
	// included).
	Services map[Host]struct{}
	// PeerAuthentication: clusters whose PeerAuthentications changed.
	PeerAuthentication map[ClusterID]struct{}
	// GatewayConfig: Istio's Gateways or VirtualServices changed
	// (SetGatewayConfig).
	GatewayConfig bool
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return !c.Full && len(c.Services) == 0 && len(c.PeerAuthentication) == 0 && !c.GatewayConfig
}

// Merge adds o to c.
func (c *Changes) Merge(o Changes) {
	c.Full = c.Full || o.Full
	c.GatewayConfig = c.GatewayConfig || o.GatewayConfig
	if len(o.PeerAuthentication) > 0 {
		if c.PeerAuthentication == nil {
			c.PeerAuthentication = make(map[ClusterID]struct{}, len(o.PeerAuthentication))
		}
		maps.Copy(c.PeerAuthentication, o.PeerAuthentication)
	}
	if len(o.Services) == 0 {
		return
	}
	if c.Services == nil {
		c.Services = make(map[Host]struct{}, len(o.Services))
	}
	maps.Copy(c.Services, o.Services)
}

func (c *Changes) addService(h Host) {
	if c.Services == nil {
		c.Services = map[Host]struct{}{}
	}
	c.Services[h] = struct{}{}
}

// Store holds the mesh model. It is safe for concurrent use. Mutations
// record what they changed; TakeChanges and Snapshot first bring derived
// state up to date (see the package doc). Objects passed in are owned by the
// store afterwards: callers must not change them.
type Store struct {
	cfg Config

	// writeMu serializes mutations, so that one may resolve hostnames
	// without holding mu (readers never wait for DNS).
	writeMu sync.Mutex

	// mu guards everything below; mutators hold it (after writeMu) while
	// they change inputs, TakeChanges and Snapshot while they flush.
	mu        sync.Mutex
	clusters  map[ClusterID]*clusterState
	clusterID []ClusterID // sorted; copied on change, snapshots share it
	mn        *MeshNetworks
	mnAddrs   map[string]resolution
	// local are the cluster-local hosts (SetMeshConfig).
	local ClusterLocalHosts
	// registryNames are the Services meshNetworks names as gateways.
	registryNames map[NamespacedName]bool
	// labeled are the Services labeled topology.istio.io/network.
	labeled map[ObjectKey]struct{}

	net *netConfig
	gw  *gatewaySet
	svc svcMap
	gen uint64

	dirty     map[NamespacedName]struct{}
	netDirty  bool
	gwDirty   bool
	changes   Changes
	agg       aggregates
	aggFrozen *frozenAggregates
	infoGen   uint64
	sorted    *sortedServices
	last      *Snapshot
	// sinceLast: something a snapshot shows changed since s.last.
	sinceLast bool

	// peerAuth holds PeerAuthentications by cluster; peerAuthFrozen is
	// what snapshots share, replaced per cluster on change.
	peerAuth       map[ClusterID]map[NamespacedName]*PeerAuthentication
	peerAuthFrozen map[ClusterID][]PeerAuthentication
	// gwCfg is Istio's Gateways and VirtualServices (SetGatewayConfig);
	// snapshots share it.
	gwCfg *GatewayConfig
}

// NewStore returns an empty store.
func NewStore(cfg Config) *Store {
	cfg = cfg.withDefaults()
	s := &Store{
		cfg:           cfg,
		clusters:      map[ClusterID]*clusterState{},
		registryNames: map[NamespacedName]bool{},
		labeled:       map[ObjectKey]struct{}{},
		dirty:         map[NamespacedName]struct{}{},
		svc:           svcMap{seed: maphash.MakeSeed()},
		gen:           1,
		agg:           newAggregates(),
	}
	s.net = newNetConfig(nil, cfg.SystemNamespace, nil)
	s.gw = newGatewaySet(nil, nil)
	s.gw.nodePortClusters = map[ClusterID]bool{}
	s.sorted = &sortedServices{}
	s.local = NewClusterLocalHosts(nil, cfg.Domain, cfg.SystemNamespace)
	return s
}

func (s *Store) cluster(c ClusterID) *clusterState {
	cs := s.clusters[c]
	if cs == nil {
		cs = newClusterState()
		s.clusters[c] = cs
		i, _ := slices.BinarySearch(s.clusterID, c)
		s.clusterID = slices.Insert(slices.Clip(s.clusterID), i, c)
		s.sinceLast = true
	}
	return cs
}

func (s *Store) markDirty(nn NamespacedName) {
	s.dirty[nn] = struct{}{}
}

// isGatewayCandidate reports whether Service svc (nil: none) can give
// gateways: it is labeled with a network, or meshNetworks names it.
func (s *Store) isGatewayCandidate(svc *Service) bool {
	return svc != nil && (svc.Network != "" || s.registryNames[NamespacedName{Namespace: svc.Namespace, Name: svc.Name}])
}

// UpsertService stores a Service.
func (s *Store) UpsertService(svc *Service) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	e := &svcEntry{svc: svc}
	// Reading registryNames without mu is safe: only mutators, serialized
	// by writeMu, write it.
	if len(svc.LoadBalancerHostnames) > 0 && s.isGatewayCandidate(svc) {
		e.lb = s.resolveAll(svc.LoadBalancerHostnames)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cluster(svc.Cluster)
	nn := NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	old := cs.services[nn]
	if old != nil && sameService(old.svc, svc) && maps.EqualFunc(old.lb, e.lb, sameResolution) {
		return
	}
	cs.services[nn] = e
	key := svc.Key()
	if svc.Network != "" {
		s.labeled[key] = struct{}{}
	} else {
		delete(s.labeled, key)
	}
	if (old != nil && s.isGatewayCandidate(old.svc)) || s.isGatewayCandidate(svc) {
		s.gwDirty = true
	}
	s.markDirty(nn)
}

func (s *Store) resolveAll(hosts []string) map[string]resolution {
	m := make(map[string]resolution, len(hosts))
	for _, h := range hosts {
		if _, ok := m[h]; !ok {
			m[h] = resolve(s.cfg.Resolve, h)
		}
	}
	return m
}

func sameResolution(a, b resolution) bool { return a.Err == b.Err && slices.Equal(a.IPs, b.IPs) }

// DeleteService removes a Service.
func (s *Store) DeleteService(key ObjectKey) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[key.Cluster]
	if cs == nil {
		return
	}
	old := cs.services[key.NamespacedName]
	if old == nil {
		return
	}
	delete(cs.services, key.NamespacedName)
	delete(s.labeled, key)
	if s.isGatewayCandidate(old.svc) {
		s.gwDirty = true
	}
	s.markDirty(key.NamespacedName)
}

// UpsertEndpointSlice stores an EndpointSlice.
func (s *Store) UpsertEndpointSlice(es *EndpointSlice) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cluster(es.Cluster)
	nn := NamespacedName{Namespace: es.Namespace, Name: es.Name}
	old := cs.slices[nn]
	if old != nil && sameSlice(old, es) {
		return
	}
	cs.slices[nn] = es
	// References of the new version first: those the versions share are
	// never dropped, so an update does not rebuild them.
	refSlice(cs, es, 1)
	if old != nil {
		refSlice(cs, old, -1)
		if old.ServiceName != es.ServiceName {
			s.setBySvc(cs, old, nil)
		}
	}
	s.setBySvc(cs, es, es)
}

// DeleteEndpointSlice removes an EndpointSlice.
func (s *Store) DeleteEndpointSlice(key ObjectKey) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[key.Cluster]
	if cs == nil {
		return
	}
	old := cs.slices[key.NamespacedName]
	if old == nil {
		return
	}
	delete(cs.slices, key.NamespacedName)
	refSlice(cs, old, -1)
	s.setBySvc(cs, old, nil)
}

func sliceService(es *EndpointSlice) NamespacedName {
	return NamespacedName{Namespace: es.Namespace, Name: es.ServiceName}
}

// setBySvc stores v (nil: removes) as the slice named like es of es's
// service, and marks that service dirty (and the gateways, if the service
// can give gateways).
func (s *Store) setBySvc(cs *clusterState, es, v *EndpointSlice) {
	if es.ServiceName == "" {
		return
	}
	svcNN := sliceService(es)
	m := cs.bySvc[svcNN]
	switch {
	case v != nil && m == nil:
		cs.bySvc[svcNN] = map[string]*EndpointSlice{es.Name: v}
	case v != nil:
		m[es.Name] = v
	case m != nil:
		delete(m, es.Name)
		if len(m) == 0 {
			delete(cs.bySvc, svcNN)
		}
	}
	s.sliceTouched(cs, svcNN)
}

func (s *Store) sliceTouched(cs *clusterState, svcNN NamespacedName) {
	if e := cs.services[svcNN]; s.registryNames[svcNN] || (e != nil && e.svc.Network != "") {
		s.gwDirty = true
	}
	s.markDirty(svcNN)
}

// UpsertPod stores a Pod: its labels decide the network and mTLS capability
// of the endpoints naming it.
func (s *Store) UpsertPod(p *Pod) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cluster(p.Cluster)
	nn := NamespacedName{Namespace: p.Namespace, Name: p.Name}
	if old := cs.pods[nn]; old != nil && samePod(old, p) {
		return
	}
	cs.pods[nn] = p
	s.podTouched(cs, nn)
}

// DeletePod removes a Pod.
func (s *Store) DeletePod(key ObjectKey) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[key.Cluster]
	if cs == nil || cs.pods[key.NamespacedName] == nil {
		return
	}
	delete(cs.pods, key.NamespacedName)
	s.podTouched(cs, key.NamespacedName)
}

func (s *Store) podTouched(cs *clusterState, pod NamespacedName) {
	for _, r := range cs.podRefs[pod] {
		if es := cs.slices[NamespacedName{Namespace: pod.Namespace, Name: r.slice}]; es != nil {
			s.markDirty(sliceService(es))
		}
	}
}

// UpsertNode stores a Node: its labels are the locality of the endpoints on
// it, its addresses those of NodePort gateways.
func (s *Store) UpsertNode(n *Node) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cluster(n.Cluster)
	if old := cs.nodes[n.Name]; old != nil && sameNode(old, n) {
		return
	}
	cs.countKubelet(cs.nodes[n.Name], -1)
	cs.countKubelet(n, 1)
	cs.nodes[n.Name] = n
	l := endpointLocality(n, "")
	cs.nodeLoc[n.Name] = nodeLocality{loc: l, str: l.String()}
	s.nodeTouched(n.Cluster, cs, n.Name)
}

// DeleteNode removes a Node.
func (s *Store) DeleteNode(cluster ClusterID, name string) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[cluster]
	if cs == nil || cs.nodes[name] == nil {
		return
	}
	cs.countKubelet(cs.nodes[name], -1)
	delete(cs.nodes, name)
	delete(cs.nodeLoc, name)
	s.nodeTouched(cluster, cs, name)
}

func (s *Store) nodeTouched(c ClusterID, cs *clusterState, name string) {
	for sliceNN := range cs.nodeRefs[name] {
		if es := cs.slices[sliceNN]; es != nil {
			s.markDirty(sliceService(es))
		}
	}
	if s.gw.nodePortClusters[c] {
		s.gwDirty = true
	}
}

// UpsertNamespace stores a Namespace; only the system namespace matters (its
// network label is the cluster's default network).
func (s *Store) UpsertNamespace(ns *Namespace) {
	if ns.Name != s.cfg.SystemNamespace {
		return
	}
	s.setClusterNetwork(ns.Cluster, ns.Network)
}

// DeleteNamespace removes a Namespace.
func (s *Store) DeleteNamespace(cluster ClusterID, name string) {
	if name != s.cfg.SystemNamespace {
		return
	}
	s.setClusterNetwork(cluster, "")
}

func (s *Store) setClusterNetwork(c ClusterID, n NetworkID) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[c]
	if cs == nil {
		if n == "" {
			return
		}
		cs = s.cluster(c)
	}
	if cs.network == n {
		return
	}
	cs.network = n
	s.netDirty, s.gwDirty = true, true
}

// SetMeshNetworks replaces meshNetworks; nil clears it. mn must be valid
// (ParseMeshNetworks returns valid values); gateway addresses that are
// hostnames are resolved now, with Config.Resolve.
func (s *Store) SetMeshNetworks(mn *MeshNetworks) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Resolve without mu: only mutators, serialized by writeMu, write
	// what is read here.
	addrs, names := s.resolveGateways(mn)
	updates := s.resolveNamedServices(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(updates) == 0 && sameMeshNetworks(s.mn, mn) && maps.EqualFunc(s.mnAddrs, addrs, sameResolution) {
		// A resync of the same configuration: nothing to recompute.
		return
	}
	for _, u := range updates {
		u.cs.services[u.nn] = u.e
	}
	s.mn = mn
	s.mnAddrs = addrs
	s.registryNames = names
	s.netDirty, s.gwDirty = true, true
}

// resolveGateways resolves the gateway addresses of mn that are hostnames,
// with Config.Resolve, and lists the services its gateways name by
// registryServiceName.
func (s *Store) resolveGateways(mn *MeshNetworks) (map[string]resolution, map[NamespacedName]bool) {
	addrs := map[string]resolution{}
	names := map[NamespacedName]bool{}
	if mn == nil {
		return addrs, names
	}
	for _, n := range mn.Networks {
		for _, g := range n.Gateways {
			if g.Address != "" {
				if _, err := netip.ParseAddr(g.Address); err != nil {
					if _, ok := addrs[g.Address]; !ok {
						addrs[g.Address] = resolve(s.cfg.Resolve, g.Address)
					}
				}
			}
			if nn, ok := splitServiceHost(g.RegistryServiceName, s.cfg.Domain); ok {
				names[nn] = true
			}
		}
	}
	return addrs, names
}

// lbUpdate is a Service entry of a cluster, its load balancer hostnames
// newly resolved.
type lbUpdate struct {
	cs *clusterState
	nn NamespacedName
	e  *svcEntry
}

// resolveNamedServices resolves the load balancer hostnames of the
// services named by registryServiceName (names) that have none resolved.
func (s *Store) resolveNamedServices(names map[NamespacedName]bool) []lbUpdate {
	var updates []lbUpdate
	for nn := range names {
		for _, cs := range s.clusters {
			if e := cs.services[nn]; e != nil && e.lb == nil && len(e.svc.LoadBalancerHostnames) > 0 {
				updates = append(updates, lbUpdate{cs, nn, &svcEntry{svc: e.svc, lb: s.resolveAll(e.svc.LoadBalancerHostnames)}})
			}
		}
	}
	return updates
}

// SetMeshConfig replaces the mesh config (nil: Istio's defaults). Of it,
// the model reads the cluster-local hosts (NewClusterLocalHosts); a change
// of them is a full change, since any service's views may differ.
func (s *Store) SetMeshConfig(mc *MeshConfig) {
	local := NewClusterLocalHosts(mc, s.cfg.Domain, s.cfg.SystemNamespace)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if local.Equal(s.local) {
		return
	}
	s.local = local
	s.changes.Full = true
	s.sinceLast = true
}

// RemoveCluster drops every object of cluster c.
func (s *Store) RemoveCluster(c ClusterID) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.peerAuth[c]; ok {
		delete(s.peerAuth, c)
		s.freezePeerAuth(c)
	}
	cs := s.clusters[c]
	if cs == nil {
		return
	}
	for nn := range cs.services {
		s.markDirty(nn)
		delete(s.labeled, ObjectKey{Cluster: c, NamespacedName: nn})
	}
	for nn := range cs.bySvc {
		s.markDirty(nn)
	}
	if cs.network != "" {
		s.netDirty = true
	}
	delete(s.clusters, c)
	if i, ok := slices.BinarySearch(s.clusterID, c); ok {
		s.clusterID = slices.Delete(slices.Clone(s.clusterID), i, i+1)
		s.sinceLast = true
	}
	s.gwDirty = true
}

// TakeChanges returns what changed since the previous call and resets it.
// Call it before Snapshot: the snapshot then holds at least these changes.
func (s *Store) TakeChanges() Changes {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush()
	c := s.changes
	s.changes = Changes{}
	return c
}

// Snapshot returns the current state as an immutable value. Its cost is
// proportional to what changed since the previous snapshot, not to the
// mesh; with no change it returns the previous snapshot.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush()
	if s.last != nil && !s.sinceLast {
		return s.last
	}
	if s.aggFrozen == nil || s.agg.dirty {
		s.aggFrozen = s.agg.freeze()
	}
	if s.sorted.gen != s.infoGen {
		s.sorted = &sortedServices{gen: s.infoGen}
	}
	sn := &Snapshot{
		policy:   s.cfg.NoGatewayEndpoints,
		svc:      s.svc,
		gw:       s.gw,
		net:      s.net,
		agg:      s.aggFrozen,
		sorted:   s.sorted,
		local:    s.local,
		pa:       s.peerAuthFrozen,
		gwCfg:    s.gwCfg,
		root:     s.cfg.SystemNamespace,
		clusters: s.clusterID,
	}
	// Every node reachable from sn is now published: later edits copy.
	s.gen++
	s.last = sn
	s.sinceLast = false
	return sn
}

// flush brings derived state up to date: network rules, gateways and every
// dirty service, recording real differences in s.changes.
func (s *Store) flush() {
	netChanged := s.flushNetworks()
	s.flushGateways()
	if len(s.dirty) == 0 {
		return
	}
	s.flushServices(netChanged)
	if len(s.dirty) > 64 {
		// Clearing a map costs its capacity: drop a large one instead.
		s.dirty = map[NamespacedName]struct{}{}
	} else {
		clear(s.dirty)
	}
}

// flushNetworks rebuilds the network rules if they are dirty, marking
// every service dirty, and reports whether it did.
func (s *Store) flushNetworks() bool {
	if !s.netDirty {
		return false
	}
	s.netDirty = false
	ns := map[ClusterID]NetworkID{}
	for c, cs := range s.clusters {
		if cs.network != "" {
			ns[c] = cs.network
		}
	}
	s.net = newNetConfig(s.mn, s.cfg.SystemNamespace, ns)
	s.sinceLast = true
	// Every endpoint's network may have moved: rebuild every service.
	for _, cs := range s.clusters {
		for nn := range cs.services {
			s.dirty[nn] = struct{}{}
		}
	}
	return true
}

// flushGateways discovers the gateways again if they are dirty: a change
// of what the views see is a full change.
func (s *Store) flushGateways() {
	if !s.gwDirty {
		return
	}
	s.gwDirty = false
	gw := discoverGateways(&gatewayInputs{
		mode:     s.cfg.NodePortGateways,
		domain:   s.cfg.Domain,
		mn:       s.mn,
		mnAddrs:  s.mnAddrs,
		net:      s.net,
		clusters: s.clusters,
		labeled:  s.labeled,
	})
	if !gw.sameViews(s.gw) {
		s.changes.Full = true
		s.gw, s.sinceLast = gw, true
	} else if !slices.Equal(gw.warnings, s.gw.warnings) || !maps.Equal(gw.nodePortClusters, s.gw.nodePortClusters) {
		s.gw, s.sinceLast = gw, true
	}
}

// flushServices rebuilds every dirty service and records those that
// changed; after a network change (netChanged), a service whose endpoints
// moved between networks is a full change.
func (s *Store) flushServices(netChanged bool) {
	views := make([]clusterView, len(s.clusterID))
	for i, c := range s.clusterID {
		views[i] = clusterView{id: c, state: s.clusters[c], pa: s.peerAuthFrozen[c]}
	}
	for nn := range s.dirty {
		host := ServiceHost(nn.Namespace, nn.Name, s.cfg.Domain)
		old := s.svc.get(host)
		st := buildService(nn, host, views, s.net, s.cfg.SystemNamespace)
		if sameState(old, st) {
			continue
		}
		if netChanged && networksMoved(old, st) {
			s.changes.Full = true
		}
		if old != nil && st != nil && sameInfo(old.info, st.info) {
			st.info = old.info // keep the published value: Services() stays valid
		} else {
			s.infoGen++
		}
		if st == nil {
			s.svc.delete(host, s.gen)
		} else {
			s.svc.set(host, st, s.gen)
		}
		s.agg.replace(old, st)
		s.changes.addService(host)
		s.sinceLast = true
	}
}
