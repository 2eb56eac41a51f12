package xds

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"slices"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// An east-west gateway that is Istio's Envoy (envoy.RoleEastWestGateway
// without envoy.Proxy.CausewayGateway) is configured as istiod configures
// it, from Istio's Gateways and VirtualServices (model.GatewayConfig):
//
//   - LDS: the listeners of the Gateways that select its labels
//     (envoy.IstioGatewayListeners): AUTO_PASSTHROUGH SNI listeners and
//     PASSTHROUGH listeners to the VirtualServices' tls destinations. A
//     gateway no Gateway selects gets the SNI listener on the server's
//     gateway port only (Causeway's default; istiod gives it nothing), and
//     never the control plane's listener unless a Gateway asks for it.
//   - CDS: the SNI clusters, plus the outbound|PORT||HOST cluster of each
//     destination of its PASSTHROUGH routes.
//   - EDS: the SNI clusters' mesh-mTLS endpoints of its network (no
//     exception for the control plane), plus the destinations' endpoints
//     of its network.
//
// A change of the Gateways or VirtualServices rebuilds these views from
// every service (gatewayChange).

// passthroughKey is the byHost entry under which a gateway CDS view keeps
// the names of its passthrough destinations' clusters (no service has an
// empty host).
const passthroughKey model.Host = ""

// setIstioGateway marks a gateway key as Istio's Envoy's, with the labels
// its Gateways select by.
func (k *viewKey) setIstioGateway(p *envoy.Proxy) {
	if p.CausewayGateway {
		return
	}
	k.istioGW, k.labels = true, labelsKey(p.Labels)
}

// gatewayChange is what Istio's Gateways and VirtualServices mean for one
// publish.
type gatewayChange struct {
	// changed: they differ from the previous snapshot's; hcs is then every
	// service, as changed, for the Istio gateway views to rebuild.
	changed bool
	hcs     []hostChange
	// dests are the service ports some tls route sends to (a route without
	// a port resolved to its service's only TCP port).
	dests map[model.HostPort]struct{}
}

// routeDestinations are the service ports the tls routes of snap's
// Gateway config send to.
func routeDestinations(snap *model.Snapshot) map[model.HostPort]struct{} {
	ds := snap.GatewayConfig().RouteDestinations()
	if len(ds) == 0 {
		return nil
	}
	out := make(map[model.HostPort]struct{}, len(ds))
	for _, d := range ds {
		if d.Port == 0 {
			if ps := tcpPorts(snap.Service(d.Host)); len(ps) == 1 {
				d.Port = ps[0]
			}
		}
		out[d] = struct{}{}
	}
	return out
}

// setGatewayConfigChanged records that the Gateway config changed: the
// Istio gateway views rebuild from every service of the snapshot, and
// from those hcs removed.
func (b *builder) setGatewayConfigChanged(old *model.Snapshot, hcs []hostChange) {
	b.gw.changed = true
	svcs := b.snap.Services()
	all := make([]hostChange, 0, len(svcs)+len(hcs))
	for _, svc := range svcs {
		var was *model.ServiceInfo
		if old != nil {
			was = old.Service(svc.Host)
		}
		all = append(all, hostChange{host: svc.Host, old: was, cur: svc, defChanged: true, portsChanged: true})
	}
	for _, hc := range hcs {
		if hc.cur == nil {
			all = append(all, hc)
		}
	}
	b.gw.hcs = all
}

// isDestination reports whether a tls route sends to port of h.
func (b *builder) isDestination(h model.Host, port uint32) bool {
	_, ok := b.gw.dests[model.HostPort{Host: h, Port: port}]
	return ok
}

// plan is what the Gateways tell the Istio gateway of key v.key.
func (v *view) plan(b *builder) model.GatewayPlan {
	return b.snap.GatewayConfig().Plan(parseLabelsKey(v.key.labels))
}

// putIstioGatewayListeners rebuilds an Istio gateway's listeners.
func (v *view) putIstioGatewayListeners(b *builder, c *changeSet) {
	services := b.snap.Services()
	podSNIs := b.gatewayPodSNIs(v.key.network)
	plan := v.plan(b)
	var ls []*listenerv3.Listener
	if plan.Selected {
		ls = envoy.IstioGatewayListeners(&plan, services, podSNIs)
	} else if l := envoy.GatewayListenerWithPods(services, b.gatewayPort, podSNIs); l != nil {
		ls = append(ls, l)
	}
	keep := make(map[string]struct{}, len(ls))
	for _, l := range ls {
		keep[l.GetName()] = struct{}{}
		c.put(l.GetName(), l)
	}
	c.deleteExcept(keep)
}

// putPassthroughClusters rebuilds an Istio gateway's clusters of its
// passthrough destinations when the Gateway config or a destination
// service changed.
func (v *view) putPassthroughClusters(b *builder, c *changeSet, hcs []hostChange) {
	plan := v.plan(b)
	dests := plan.Destinations()
	if !b.gw.changed && !slices.ContainsFunc(hcs, func(hc hostChange) bool {
		return hc.defChanged && slices.ContainsFunc(dests, func(d model.HostPort) bool { return d.Host == hc.host })
	}) {
		return
	}
	services := make(map[model.Host]*model.ServiceInfo, len(dests))
	for _, d := range dests {
		if svc := b.snap.Service(d.Host); svc != nil {
			services[d.Host] = svc
		}
	}
	var names []string
	for _, cl := range envoy.PassthroughClusters(&plan, services, b.opts) {
		names = append(names, cl.GetName())
		c.put(cl.GetName(), cl)
	}
	for _, name := range v.byHost[passthroughKey] {
		if !slices.Contains(names, name) {
			c.delete(name)
		}
	}
	if len(names) == 0 {
		delete(v.byHost, passthroughKey)
	} else {
		v.byHost[passthroughKey] = names
	}
}

// putDestinationEndpoints rebuilds, in an Istio gateway's EDS view, the
// EDS resource outbound|PORT||HOST of a passthrough destination: the
// endpoints of the gateway's network, whatever their TLS mode (the
// destination terminates the client's TLS itself, as istiod's control
// plane does). ok is false if the snapshot has no view of it.
func (v *view) putDestinationEndpoints(b *builder, c *changeSet, h model.Host, port uint32) (string, bool) {
	mv, ok := b.snap.LocalViewIn(h, port, v.key.cluster, v.key.network)
	if !ok {
		return "", false
	}
	mv.Cluster = model.ClusterName(h, port, "")
	name := mv.Cluster
	if e := v.entries[name]; e != nil && e.view != nil && sameView(e.view, &mv) {
		return name, true
	}
	res := envoy.ClusterLoadAssignment(mv)
	v.entries[name] = &entry{res: res, view: &mv}
	c.set(name, res)
	return name, true
}
