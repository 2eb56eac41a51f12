package xds

import (
	"cmp"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Publish is the model's sink: it brings every existing view up to snap.
// changes says which services differ from the previous snapshot; with
// changes.Full (or on the first call) every service is looked at. Only
// resources whose content differs reach the caches, and the caches answer
// only the streams watching those.
//
// Publish never waits for a proxy: the caches hand responses to buffered
// per-stream channels, and streams send on their own goroutines.
func (s *Server) Publish(snap *model.Snapshot, changes model.Changes) {
	if snap == nil {
		return
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	start := time.Now()

	s.mu.Lock()
	old := s.snap
	var hcs []hostChange
	if old == nil || changes.Full {
		hcs = everyHost(old, snap)
	} else {
		hcs = changedHosts(old, snap, changes.Services)
	}
	s.ports.apply(hcs)
	s.snap = snap
	views := slices.Collect(maps.Values(s.views))
	s.mu.Unlock()

	b := s.builder(snap)
	b.peerAuthAll = old == nil || changes.Full
	b.peerAuth = changes.PeerAuthentication
	if changes.GatewayConfig {
		b.setGatewayConfigChanged(old, hcs)
	}
	updated, deleted := updateViews(views, b, hcs)
	s.metrics.publishSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("xDS views published", "services", len(hcs), "full", changes.Full || old == nil,
		"views", len(views), "updated", updated, "deleted", deleted, "took", time.Since(start))
}

// updateViews brings views up to b's snapshot. Views are independent: a
// large change (a full push rebuilds every service of every view) is
// spread over the cores. A small one is done here: handing it to other
// goroutines would only queue it behind the streams its first views wake.
func updateViews(views []*view, b *builder, hcs []hostChange) (updated, deleted int) {
	workers := 1
	if len(hcs) > 64 {
		workers = min(len(views), runtime.GOMAXPROCS(0))
	}
	if workers <= 1 {
		for _, v := range views {
			u, d := v.update(b, hcs)
			updated += u
			deleted += d
		}
		return updated, deleted
	}
	var mu sync.Mutex
	work := make(chan *view)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for v := range work {
				u, d := v.update(b, hcs)
				mu.Lock()
				updated += u
				deleted += d
				mu.Unlock()
			}
		})
	}
	for _, v := range views {
		work <- v
	}
	close(work)
	wg.Wait()
	return updated, deleted
}

// builder builds resources from one snapshot.
type builder struct {
	snap        *model.Snapshot
	ports       portIndex
	opts        envoy.ClusterOptions
	gatewayPort uint32
	policy      envoy.OutboundTrafficPolicy
	// peerAuth names the clusters whose PeerAuthentications changed since
	// the previous snapshot; peerAuthAll: treat every cluster's as changed.
	peerAuth    map[model.ClusterID]struct{}
	peerAuthAll bool
	// gw is what Istio's Gateways change in this publish
	// (gateway_istio.go).
	gw gatewayChange
}

// peerAuthChanged reports whether cluster c's PeerAuthentications may
// differ from what the views were built from.
func (b *builder) peerAuthChanged(c model.ClusterID) bool {
	if b.peerAuthAll {
		return true
	}
	_, ok := b.peerAuth[c]
	return ok
}

// capturedInbound is a captured sidecar's inbound: the ports of its key,
// each in the mode the snapshot's PeerAuthentications of its cluster give
// its workload (namespace and labels of the key).
func (b *builder) capturedInbound(k viewKey) envoy.Inbound {
	in := k.inbound.Inbound()
	policies, root := b.snap.PeerAuthentications(k.cluster), b.snap.RootNamespace()
	w := model.Workload{Namespace: k.namespace, Labels: parseLabelsKey(k.labels)}
	in.Passthrough = model.EffectiveMTLS(policies, root, w, 0)
	for i := range in.Ports {
		in.Ports[i].Mode = model.EffectiveMTLS(policies, root, w, in.Ports[i].Port)
	}
	return in
}

func (s *Server) builder(snap *model.Snapshot) *builder {
	return &builder{
		snap: snap, ports: s.ports, opts: s.clusterOptions(), gatewayPort: s.cfg.GatewayPort,
		policy: s.cfg.OutboundTrafficPolicy, gw: gatewayChange{dests: routeDestinations(snap)},
	}
}

// hostChange is a service as it was and as it is.
type hostChange struct {
	host     model.Host
	old, cur *model.ServiceInfo
	// defChanged: the service itself (not only its endpoints) differs, so
	// CDS, LDS and RDS built from it may too.
	defChanged bool
	// portsChanged: its TCP ports (their numbers, names and protocols) or
	// its cluster IPs differ (or it came or went with ports), so the
	// listeners aggregating every service's ports may too.
	portsChanged bool
}

func newHostChange(h model.Host, old, cur *model.ServiceInfo) hostChange {
	def := !sameService(old, cur)
	return hostChange{
		host: h, old: old, cur: cur,
		defChanged:   def,
		portsChanged: def && !sameListenerInputs(old, cur),
	}
}

// sameListenerInputs reports whether a and b give the same listeners: the
// same TCP ports with the same names and protocols, and the same cluster
// IPs (the VIPs of captured sidecars' listeners) if they have any.
func sameListenerInputs(a, b *model.ServiceInfo) bool {
	var ap, bp []model.ServicePort
	if a != nil {
		ap = a.Ports
	}
	if b != nil {
		bp = b.Ports
	}
	i, j := 0, 0
	for {
		for i < len(ap) && !ap[i].IsTCP() {
			i++
		}
		for j < len(bp) && !bp[j].IsTCP() {
			j++
		}
		if i == len(ap) || j == len(bp) {
			if i != len(ap) || j != len(bp) {
				return false
			}
			break
		}
		x, y := ap[i], bp[j]
		if x.Port != y.Port || x.Name != y.Name || x.AppProtocol != y.AppProtocol {
			return false
		}
		i++
		j++
	}
	if len(ap) == 0 && len(bp) == 0 {
		return true
	}
	var aIPs, bIPs map[model.ClusterID]string
	if a != nil {
		aIPs = a.ClusterIPs
	}
	if b != nil {
		bIPs = b.ClusterIPs
	}
	return maps.Equal(aIPs, bIPs)
}

// changedHosts looks at the services changes names.
func changedHosts(old, cur *model.Snapshot, hosts map[model.Host]struct{}) []hostChange {
	out := make([]hostChange, 0, len(hosts))
	for h := range hosts {
		out = append(out, newHostChange(h, old.Service(h), cur.Service(h)))
	}
	slices.SortFunc(out, func(a, b hostChange) int { return cmp.Compare(a.host, b.host) })
	return out
}

// everyHost looks at every service of old (which may be nil) and cur.
func everyHost(old, cur *model.Snapshot) []hostChange {
	var before []*model.ServiceInfo
	if old != nil {
		before = old.Services()
	}
	after := cur.Services()
	out := make([]hostChange, 0, max(len(before), len(after)))
	// Both are sorted by host: merge.
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || (i < len(before) && before[i].Host < after[j].Host):
			out = append(out, newHostChange(before[i].Host, before[i], nil))
			i++
		case i == len(before) || after[j].Host < before[i].Host:
			out = append(out, newHostChange(after[j].Host, nil, after[j]))
			j++
		default:
			out = append(out, newHostChange(after[j].Host, before[i], after[j]))
			i++
			j++
		}
	}
	return out
}

// sameService reports whether a and b would give the same CDS, LDS and RDS:
// every field of ServiceInfo is compared (TestSameServiceCoversEveryField
// fails when one is added).
func sameService(a, b *model.ServiceInfo) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Host == b.Host && a.Namespace == b.Namespace && a.Name == b.Name &&
		maps.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.Ports, b.Ports) &&
		slices.Equal(a.ServiceAccounts, b.ServiceAccounts)
}

// sameView reports whether two views give the same EDS resource.
func sameView(a, b *model.View) bool {
	return a.Cluster == b.Cluster && a.Network == b.Network && slices.Equal(a.Endpoints, b.Endpoints)
}

// tcpPorts are the TCP service ports of svc, in its (sorted) order; only
// those get clusters, endpoints, listeners and routes.
func tcpPorts(svc *model.ServiceInfo) []uint32 {
	if svc == nil {
		return nil
	}
	out := make([]uint32, 0, len(svc.Ports))
	for _, p := range svc.Ports {
		if p.IsTCP() {
			out = append(out, p.Port)
		}
	}
	return out
}

// portIndex lists, for each TCP port, the services that have it: a sidecar
// route configuration aggregates the services of one port.
type portIndex map[uint32]map[model.Host]*model.ServiceInfo

func (ix portIndex) apply(hcs []hostChange) {
	for _, hc := range hcs {
		if !hc.defChanged {
			continue
		}
		for _, p := range tcpPorts(hc.old) {
			delete(ix[p], hc.host)
			if len(ix[p]) == 0 {
				delete(ix, p)
			}
		}
		for _, p := range tcpPorts(hc.cur) {
			m := ix[p]
			if m == nil {
				m = make(map[model.Host]*model.ServiceInfo)
				ix[p] = m
			}
			m[hc.host] = hc.cur
		}
	}
}

// update brings the view from the services as they were to the services
// as they are (hcs) and hands the cache what differs, in one batch. It
// returns how many resources were updated and deleted.
func (v *view) update(b *builder, hcs []hostChange) (updated, deleted int) {
	c := changeSet{v: v}
	if v.key.istioGW && b.gw.changed {
		hcs = b.gw.hcs
	}
	switch v.key.kind {
	case kindEmpty:
	case kindSidecarLDS:
		v.updateSidecarListeners(b, &c, hcs)
	case kindCapturedLDS:
		v.updateCapturedListeners(b, &c, hcs)
	case kindGatewayLDS:
		v.updateGatewayListeners(b, &c, hcs)
	case kindSidecarNDS:
		v.updateNameTable(b, &c, hcs)
	case kindSidecarRDS:
		v.updateSidecarRoutes(b, &c, hcs)
	default:
		v.updateClustersAndEndpoints(b, &c, hcs)
	}
	v.apply(&c)
	return len(c.upd), len(c.del)
}

// anyPortsOrHeadlessChanged reports whether a service's ports changed, or
// a headless service changed (its listeners follow its endpoints).
func anyPortsOrHeadlessChanged(hcs []hostChange) bool {
	return slices.ContainsFunc(hcs, func(hc hostChange) bool {
		return hc.portsChanged || model.IsHeadless(hc.cur) || model.IsHeadless(hc.old)
	})
}

// updateSidecarListeners rebuilds a sidecar's listeners when any service's
// ports change.
func (v *view) updateSidecarListeners(b *builder, c *changeSet, hcs []hostChange) {
	if !slices.ContainsFunc(hcs, func(hc hostChange) bool { return hc.portsChanged }) {
		return
	}
	ls := envoy.SidecarListeners(b.snap.Services())
	keep := make(map[string]struct{}, len(ls))
	for _, l := range ls {
		keep[l.GetName()] = struct{}{}
		c.put(l.GetName(), l)
	}
	c.deleteExcept(keep)
}

// updateCapturedListeners keeps a captured sidecar's listeners.
// Outbound: built once, then again when any service's listener inputs
// change (the per-port listeners aggregate every service). Inbound: built
// once, then again when the PeerAuthentications of the proxy's cluster
// change. A headless service's listeners follow its endpoints.
func (v *view) updateCapturedListeners(b *builder, c *changeSet, hcs []hostChange) {
	first := len(v.entries) == 0
	if first || anyPortsOrHeadlessChanged(hcs) {
		ls := envoy.CapturedOutboundListeners(b.snap.Services(), v.key.cluster, b.policy)
		ls = append(ls, envoy.VirtualOutboundListener(b.policy, v.key.interception))
		ls = append(ls, b.headlessListeners(v.key.network)...)
		keep := make(map[string]struct{}, len(ls)+1)
		keep[envoy.VirtualInboundListenerName] = struct{}{}
		for _, l := range ls {
			keep[l.GetName()] = struct{}{}
			c.put(l.GetName(), l)
		}
		c.deleteExcept(keep)
	}
	if first || b.peerAuthChanged(v.key.cluster) {
		c.put(envoy.VirtualInboundListenerName, envoy.VirtualInboundListener(b.capturedInbound(v.key), v.key.interception, b.opts.TrustDomain))
	}
}

// updateGatewayListeners keeps a gateway's listeners: the SNI listener,
// and the control plane's passthrough listener (0.0.0.0_15012, while a
// Service istiod has port 15012; unless the SNI listener itself is on
// 15012). Both are built from the services' TCP ports, and the SNI
// listener also from the endpoints of headless services in the gateway's
// network (one chain per pod). Istio's Envoy gets instead the listeners
// Istio's Gateways select it for (gateway_istio.go).
func (v *view) updateGatewayListeners(b *builder, c *changeSet, hcs []hostChange) {
	if !anyPortsOrHeadlessChanged(hcs) && (!v.key.istioGW || !b.gw.changed) {
		return
	}
	if v.key.istioGW {
		v.putIstioGatewayListeners(b, c)
		return
	}
	keep := map[string]struct{}{}
	services := b.snap.Services()
	if l := envoy.GatewayListenerWithPods(services, b.gatewayPort, b.gatewayPodSNIs(v.key.network)); l != nil {
		keep[l.GetName()] = struct{}{}
		c.put(l.GetName(), l)
	}
	if b.gatewayPort != envoy.ControlPlanePort {
		if l := envoy.ControlPlaneListener(services); l != nil {
			keep[l.GetName()] = struct{}{}
			c.put(l.GetName(), l)
		}
	}
	// And the webhook's (0.0.0.0_15017, while istiod has port 443).
	if b.gatewayPort != envoy.ControlPlaneWebhookPort {
		if l := envoy.ControlPlaneWebhookListener(services); l != nil {
			keep[l.GetName()] = struct{}{}
			c.put(l.GetName(), l)
		}
	}
	c.deleteExcept(keep)
}

// updateSidecarRoutes rebuilds a sidecar's per-port routes of the TCP
// ports whose services' definitions changed (a port no service has any
// more loses its route), and the HOST:PORT routes of the changed services'
// sniffed ports.
func (v *view) updateSidecarRoutes(b *builder, c *changeSet, hcs []hostChange) {
	ports := map[uint32]struct{}{}
	for _, hc := range hcs {
		if hc.defChanged {
			for _, p := range tcpPorts(hc.old) {
				ports[p] = struct{}{}
			}
			for _, p := range tcpPorts(hc.cur) {
				ports[p] = struct{}{}
			}
		}
	}
	for p := range ports {
		name := envoy.SidecarRouteName(p)
		svcs := b.ports[p]
		if len(svcs) == 0 {
			c.delete(name)
			continue
		}
		c.put(name, envoy.SidecarRoute(p, slices.Collect(maps.Values(svcs)), v.key.namespace, v.key.cluster, b.policy))
	}
	// A captured sidecar's sniffed ports have their own routes,
	// HOST:PORT (unused by other sidecars, which never ask for them).
	for i := range hcs {
		if hc := &hcs[i]; hc.defChanged {
			v.putSniffedRoutes(c, hc)
		}
	}
}

// updateClustersAndEndpoints updates a CDS or EDS view host by host; a
// captured sidecar's CDS view also keeps its own clusters, and Istio's
// Envoy's its passthrough clusters.
func (v *view) updateClustersAndEndpoints(b *builder, c *changeSet, hcs []hostChange) {
	if v.key.kind == kindCapturedCDS {
		v.putCapturedClusters(b, c)
		if len(v.entries) > 0 && (b.peerAuthAll || len(b.peerAuth) > 0) {
			v.putHeadlessClusters(b, c)
		}
	}
	for i := range hcs {
		v.updateHost(b, c, &hcs[i])
	}
	if v.key.kind == kindGatewayCDS && v.key.istioGW {
		v.putPassthroughClusters(b, c, hcs)
	}
}

// apply hands the cache the change set in one batch.
func (v *view) apply(c *changeSet) {
	if len(c.upd) == 0 && len(c.del) == 0 {
		return
	}
	if err := v.cache.UpdateResources(c.upd, c.del); err != nil {
		// Only a string that is not UTF-8 fails to marshal; the model
		// never hands one out. Drop what failed from the view so that
		// the next change of it is tried again.
		v.cache.log.Error("xDS resources not updated", "error", err)
		for name := range c.upd {
			if !v.cache.has(name, c.upd[name]) {
				delete(v.entries, name)
			}
		}
	}
}

// putSniffedRoutes rebuilds the HOST:PORT routes of one service's sniffed
// ports in a sidecar RDS view.
func (v *view) putSniffedRoutes(c *changeSet, hc *hostChange) {
	var names []string
	for _, p := range envoy.SniffedPorts(hc.cur, v.key.cluster) {
		name := envoy.SniffedRouteName(hc.host, p)
		names = append(names, name)
		c.put(name, envoy.SniffedRoute(hc.cur, p))
	}
	v.replaceHostNames(c, hc.host, names)
}

// updateHost rebuilds the resources a per-host view derives from one
// service.
func (v *view) updateHost(b *builder, c *changeSet, hc *hostChange) {
	// A headless service's per-pod clusters (captured sidecars' and the
	// gateway's) follow its endpoints too.
	perPod := (v.key.kind == kindCapturedCDS || v.key.kind == kindGatewayCDS) && model.IsHeadless(hc.cur)
	if !v.key.kind.isEDS() && !hc.defChanged && !perPod {
		return
	}
	var names []string
	if svc := hc.cur; svc != nil {
		names = make([]string, 0, len(svc.Ports))
		for _, p := range svc.Ports {
			if !p.IsTCP() {
				continue
			}
			if v.key.kind.isEDS() {
				names = v.putPortEndpoints(b, c, svc, p, names)
				continue
			}
			names = v.putPortResources(b, c, svc, p, perPod, names)
		}
	}
	v.replaceHostNames(c, hc.host, names)
}

// putPortEndpoints puts the load assignment of one port of svc (and, for
// Istio's Envoy as a gateway, of the port as a routing destination) and
// appends their names to names.
func (v *view) putPortEndpoints(b *builder, c *changeSet, svc *model.ServiceInfo, p model.ServicePort, names []string) []string {
	if name, ok := v.putEndpoints(b, c, svc.Host, p.Port); ok {
		names = append(names, name)
	}
	if v.key.kind == kindGatewayEDS && v.key.istioGW && b.isDestination(svc.Host, p.Port) {
		if name, ok := v.putDestinationEndpoints(b, c, svc.Host, p.Port); ok {
			names = append(names, name)
		}
	}
	return names
}

// putPortResources puts the resource the view's kind derives from one port
// of svc (a cluster, listener or route; with perPod, also the per-pod
// clusters of a headless service) and appends their names to names.
func (v *view) putPortResources(b *builder, c *changeSet, svc *model.ServiceInfo, p model.ServicePort, perPod bool, names []string) []string {
	var res types.Resource
	var name string
	switch v.key.kind {
	case kindSidecarCDS:
		cl := envoy.Cluster(svc, p, b.opts)
		name, res = cl.GetName(), cl
	case kindCapturedCDS:
		cl := capturedCluster(b, svc, p)
		name, res = cl.GetName(), cl
		if perPod {
			for _, pc := range b.podClusters(svc, p, v.key.network) {
				names = append(names, pc.GetName())
				c.put(pc.GetName(), pc)
			}
		}
	case kindGRPCCDS:
		cl := envoy.GRPCCluster(svc, p, b.opts)
		name, res = cl.GetName(), cl
	case kindGatewayCDS:
		cl := envoy.GatewayCluster(svc, p)
		name, res = cl.GetName(), cl
		if perPod && model.PortProtocol(p).IsTCP() {
			for _, e := range b.snap.GatewayPods(svc.Host, p.Port, v.key.network) {
				pc := envoy.GatewayPodCluster(svc, p, e)
				names = append(names, pc.GetName())
				c.put(pc.GetName(), pc)
			}
		}
	case kindGRPCLDS:
		l := envoy.GRPCListener(svc, p)
		name, res = l.GetName(), l
	case kindGRPCRDS:
		r := envoy.GRPCRoute(svc, p)
		name, res = r.GetName(), r
	default:
		return names
	}
	c.put(name, res)
	return append(names, name)
}

// replaceHostNames makes names the resources the view holds for host: the
// ones it held and no longer does are deleted.
func (v *view) replaceHostNames(c *changeSet, host model.Host, names []string) {
	for _, name := range v.byHost[host] {
		if !slices.Contains(names, name) {
			c.delete(name)
		}
	}
	if len(names) == 0 {
		delete(v.byHost, host)
	} else {
		v.byHost[host] = names
	}
}

// headlessEndpoints are a captured sidecar's (of network) endpoints of
// headless service svc, per TCP port, each with the gateways it is reached
// through if any (model.Snapshot.PodGateways).
func (b *builder) headlessEndpoints(svc *model.ServiceInfo, network model.NetworkID) map[uint32][]envoy.HeadlessEndpoint {
	eps := make(map[uint32][]envoy.HeadlessEndpoint, len(svc.Ports))
	for _, p := range svc.Ports {
		if !p.IsTCP() {
			continue
		}
		addrs := b.snap.EndpointAddrs(svc.Host, p.Port)
		hes := make([]envoy.HeadlessEndpoint, len(addrs))
		for i, e := range addrs {
			hes[i] = envoy.HeadlessEndpoint{EndpointAddr: e, Gateways: b.snap.PodGateways(svc.Host, e, network)}
		}
		eps[p.Port] = hes
	}
	return eps
}

// podClusters are a captured sidecar's (of network) per-pod clusters of
// headless service svc's port p: one per endpoint reached through a
// gateway. An address listed twice (two target ports) keeps the first.
func (b *builder) podClusters(svc *model.ServiceInfo, p model.ServicePort, network model.NetworkID) []*clusterv3.Cluster {
	if !model.PortProtocol(p).IsTCP() {
		return nil
	}
	var out []*clusterv3.Cluster
	seen := map[string]bool{}
	for _, e := range b.headlessEndpoints(svc, network)[p.Port] {
		if len(e.Gateways) == 0 || seen[e.Address] {
			continue
		}
		seen[e.Address] = true
		out = append(out, envoy.PodCluster(svc, p, e, b.opts))
	}
	return out
}

// gatewayPodSNIs are the per-pod server names an east-west gateway of
// network passes: those of every headless service's endpoints in network
// that speak mesh mTLS (model.Snapshot.GatewayPods), on TCP ports.
func (b *builder) gatewayPodSNIs(network model.NetworkID) []string {
	var out []string
	for _, svc := range b.snap.Services() {
		if !model.IsHeadless(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if !model.PortProtocol(p).IsTCP() {
				continue
			}
			for _, e := range b.snap.GatewayPods(svc.Host, p.Port, network) {
				out = append(out, envoy.PodSNI(svc.Host, p.Port, e.Address))
			}
		}
	}
	return out
}

// headlessListeners are the per-endpoint listeners of every headless
// service's TCP ports for a captured sidecar of network, the first
// service (by host) keeping an endpoint claimed twice.
func (b *builder) headlessListeners(network model.NetworkID) []*listenerv3.Listener {
	var out []*listenerv3.Listener
	seen := map[string]bool{}
	for _, svc := range b.snap.Services() {
		if !model.IsHeadless(svc) {
			continue
		}
		for _, l := range envoy.HeadlessListeners(svc, b.headlessEndpoints(svc, network)) {
			if !seen[l.GetName()] {
				seen[l.GetName()] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// capturedCluster is a captured sidecar's cluster of a service port: an
// ORIGINAL_DST one for a headless service, the EDS one otherwise.
func capturedCluster(b *builder, svc *model.ServiceInfo, p model.ServicePort) *clusterv3.Cluster {
	if model.IsHeadless(svc) {
		return envoy.HeadlessCluster(svc, p, b.opts, b.snap.ServiceMTLSStrict(svc, p.Port))
	}
	return envoy.Cluster(svc, p, b.opts)
}

// putHeadlessClusters rebuilds a captured CDS view's clusters of headless
// services, whose transport follows the PeerAuthentications.
func (v *view) putHeadlessClusters(b *builder, c *changeSet) {
	for _, svc := range b.snap.Services() {
		if !model.IsHeadless(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if p.IsTCP() {
				cl := capturedCluster(b, svc, p)
				c.put(cl.GetName(), cl)
			}
		}
	}
}

// putCapturedClusters adds, once, the clusters a captured sidecar gets
// besides its services': the passthrough and black hole clusters and its
// workload's inbound|PORT|| clusters (all built from the key alone).
func (v *view) putCapturedClusters(b *builder, c *changeSet) {
	if _, done := v.entries[envoy.PassthroughCluster]; done {
		return
	}
	for _, cl := range envoy.CapturedClusters(b.opts) {
		c.put(cl.GetName(), cl)
	}
	for _, p := range v.key.inbound.Inbound().Ports {
		cl := envoy.InboundCluster(p, b.opts)
		c.put(cl.GetName(), cl)
	}
}

// putEndpoints rebuilds the EDS resource of one service port if its view
// changed. ok is false if the snapshot has no view of it.
func (v *view) putEndpoints(b *builder, c *changeSet, h model.Host, port uint32) (string, bool) {
	var mv model.View
	var ok bool
	if v.key.kind == kindGatewayEDS {
		mv, ok = b.snap.LocalViewIn(h, port, v.key.cluster, v.key.network)
		// The gateway's cluster, and so its EDS resource, is named by SNI
		// (envoy.GatewayClusterName, the rule the resource itself follows).
		mv.Cluster = envoy.GatewayClusterName(h, port)
	} else {
		mv, ok = b.snap.ViewIn(h, port, v.key.cluster, v.key.network)
	}
	if !ok {
		return "", false
	}
	name := mv.Cluster
	if e := v.entries[name]; e != nil && e.view != nil && sameView(e.view, &mv) {
		return name, true
	}
	var res types.Resource
	switch v.key.kind {
	case kindGRPCEDS:
		res = envoy.GRPCClusterLoadAssignment(mv)
	case kindGatewayEDS:
		if v.key.istioGW {
			res = envoy.IstioGatewayClusterLoadAssignment(h, port, mv)
		} else {
			res = envoy.GatewayClusterLoadAssignment(h, port, mv)
		}
	default:
		res = envoy.ClusterLoadAssignment(mv)
	}
	v.entries[name] = &entry{res: res, view: &mv}
	c.set(name, res)
	return name, true
}

// changeSet collects what one update hands the cache.
type changeSet struct {
	v   *view
	upd map[string]types.Resource
	del []string
}

// put stores res under name unless an equal resource is there already.
func (c *changeSet) put(name string, res types.Resource) {
	if e := c.v.entries[name]; e != nil && proto.Equal(e.res, res) {
		return
	}
	c.v.entries[name] = &entry{res: res}
	c.set(name, res)
}

func (c *changeSet) set(name string, res types.Resource) {
	if c.upd == nil {
		c.upd = make(map[string]types.Resource)
	}
	c.upd[name] = res
}

func (c *changeSet) delete(name string) {
	if _, ok := c.v.entries[name]; !ok {
		return
	}
	delete(c.v.entries, name)
	delete(c.upd, name)
	c.del = append(c.del, name)
}

// deleteExcept deletes every resource of the view not in keep (aggregate
// views, whose resources are all rebuilt at once).
func (c *changeSet) deleteExcept(keep map[string]struct{}) {
	for name := range c.v.entries {
		if _, ok := keep[name]; !ok {
			c.delete(name)
		}
	}
}
