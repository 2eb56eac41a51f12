package model

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// Istio Gateway TLS modes an east-west gateway acts on.
const (
	// TLSAutoPassthrough: the gateway passes mesh mTLS through by SNI
	// outbound_.PORT_._.HOST to that service's endpoints of its network
	// (samples/multicluster/expose-services.yaml).
	TLSAutoPassthrough = "AUTO_PASSTHROUGH"
	// TLSPassthrough: the gateway passes TLS through, untouched, to the
	// destination a VirtualService's tls route names
	// (samples/multicluster/expose-istiod.yaml).
	TLSPassthrough = "PASSTHROUGH"
)

// IstioGateway is the part of an Istio networking Gateway
// (networking.istio.io Gateway) that an east-west gateway acts on.
type IstioGateway struct {
	Namespace, Name string
	// Selector picks the gateway proxies by their labels; empty selects
	// every one (as Istio's).
	Selector map[string]string
	Servers  []GatewayServer
}

// GatewayServer is one server of an IstioGateway.
type GatewayServer struct {
	Port uint32
	// Protocol as written (Istio compares it case-insensitively).
	Protocol string
	// TLSMode is tls.mode (TLSAutoPassthrough, TLSPassthrough, ...), ""
	// when the server has no tls.
	TLSMode string
	// Hosts as written: HOST or NAMESPACE/HOST, with "*" and "*.SUFFIX".
	Hosts []string
}

// GatewayTLSRoute is one match of a VirtualService's tls route: the
// connections of gateway port Port (0: any) whose SNI is one of SNIHosts
// ("*" or empty: any) go to Destination:DestinationPort.
type GatewayTLSRoute struct {
	// Namespace and Name of the VirtualService.
	Namespace, Name string
	// Gateways the route is bound to, as NAMESPACE/NAME.
	Gateways []string
	Port     uint32
	SNIHosts []string
	// Destination is the route's first destination, resolved to a host
	// (a short name is NAME.NAMESPACE.svc.DOMAIN of the VirtualService's
	// namespace); DestinationPort is its port (0: the service's only port).
	Destination     Host
	DestinationPort uint32
}

// GatewayConfig is what Istio's Gateways and VirtualServices of the
// config cluster say to east-west gateways. The zero value is "none".
type GatewayConfig struct {
	Gateways []IstioGateway
	Routes   []GatewayTLSRoute
}

// Equal reports whether c and o say the same.
func (c *GatewayConfig) Equal(o *GatewayConfig) bool {
	return slices.EqualFunc(c.Gateways, o.Gateways, func(a, b IstioGateway) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name && maps.Equal(a.Selector, b.Selector) &&
			slices.EqualFunc(a.Servers, b.Servers, func(x, y GatewayServer) bool {
				return x.Port == y.Port && x.Protocol == y.Protocol && x.TLSMode == y.TLSMode && slices.Equal(x.Hosts, y.Hosts)
			})
	}) && slices.EqualFunc(c.Routes, o.Routes, func(a, b GatewayTLSRoute) bool {
		return a.Namespace == b.Namespace && a.Name == b.Name && slices.Equal(a.Gateways, b.Gateways) && a.Port == b.Port &&
			slices.Equal(a.SNIHosts, b.SNIHosts) && a.Destination == b.Destination && a.DestinationPort == b.DestinationPort
	})
}

// Sort puts the gateways and routes in a fixed order (namespace, name,
// then as given), so that equal configs compare Equal.
func (c *GatewayConfig) Sort() {
	slices.SortStableFunc(c.Gateways, func(a, b IstioGateway) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(c.Routes, func(a, b GatewayTLSRoute) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// GatewayPlan is what one east-west gateway proxy serves, decided from a
// GatewayConfig and its labels.
type GatewayPlan struct {
	// Selected: some Gateway selects the proxy. When false, the plan is
	// empty and the proxy gets Causeway's default shape.
	Selected bool
	// AutoPassthrough are the ports of AUTO_PASSTHROUGH servers, sorted,
	// each with the hosts its servers admit.
	AutoPassthrough []AutoPassthroughPort
	// Passthrough are the ports of PASSTHROUGH servers with their routes,
	// sorted by port; a port no route of a bound VirtualService matches is
	// left out (it would be a listener without filter chains).
	Passthrough []PassthroughPort
}

// AutoPassthroughPort is a port that passes mesh mTLS by SNI.
type AutoPassthroughPort struct {
	Port uint32
	// Hosts are the servers' hosts: a service whose host one of them
	// admits (GatewayHostMatch) gets a filter chain.
	Hosts []GatewayHost
}

// GatewayHost is one host of a Gateway server: Namespace "" admits any
// namespace.
type GatewayHost struct {
	Namespace string
	Host      string
}

// Admits reports whether the gateway host admits service host h of
// namespace ns: "*", "*.SUFFIX" (h ends in .SUFFIX) or h itself.
func (g GatewayHost) Admits(h Host, ns string) bool {
	if g.Namespace != "" && g.Namespace != ns {
		return false
	}
	switch {
	case g.Host == "*":
		return true
	case strings.HasPrefix(g.Host, "*."):
		return strings.HasSuffix(string(h), g.Host[1:])
	}
	return string(h) == g.Host
}

// PassthroughPort is a port whose TLS passes, untouched, to the
// destinations of its routes.
type PassthroughPort struct {
	Port   uint32
	Routes []PassthroughRoute
}

// PassthroughRoute sends the connections whose SNI is one of SNIHosts
// (none: any) to Destination:DestinationPort.
type PassthroughRoute struct {
	SNIHosts        []string
	Destination     Host
	DestinationPort uint32
}

// Plan decides what a gateway proxy with labels serves: the servers of
// every Gateway whose selector matches its labels, TLS AUTO_PASSTHROUGH
// and PASSTHROUGH only (an east-west gateway terminates no TLS and routes
// no HTTP; other servers are not served), and for PASSTHROUGH ports the
// tls routes of the VirtualServices bound to those Gateways (a route
// serves a port of a Gateway it names, and only if its match has that port
// or none). Routes keep
// the config's order (VirtualServices by namespace and name, matches as
// written); a second route with the same SNI hosts on one port is dropped,
// as Envoy rejects two filter chains with one match.
func (c *GatewayConfig) Plan(labels map[string]string) GatewayPlan {
	var plan GatewayPlan
	auto := map[uint32][]GatewayHost{}
	pass := map[uint32]bool{}
	// bound: the PASSTHROUGH ports of each selecting Gateway, by
	// NAMESPACE/NAME (a route binds to a port of a Gateway it names).
	bound := map[string]map[uint32]bool{}
	for i := range c.Gateways {
		g := &c.Gateways[i]
		if !selects(g.Selector, labels) {
			continue
		}
		plan.Selected = true
		ports := map[uint32]bool{}
		bound[g.Namespace+"/"+g.Name] = ports
		for _, s := range g.Servers {
			if !strings.EqualFold(s.Protocol, "TLS") || s.Port == 0 {
				continue
			}
			switch s.TLSMode {
			case TLSAutoPassthrough:
				for _, h := range s.Hosts {
					auto[s.Port] = append(auto[s.Port], parseGatewayHost(h, g.Namespace))
				}
			case TLSPassthrough:
				pass[s.Port] = true
				ports[s.Port] = true
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(auto)) {
		if pass[p] {
			continue // one listener a port: AUTO_PASSTHROUGH's SNI chains win
		}
		plan.AutoPassthrough = append(plan.AutoPassthrough, AutoPassthroughPort{Port: p, Hosts: auto[p]})
	}
	for _, p := range slices.Sorted(maps.Keys(pass)) {
		if _, dup := auto[p]; dup {
			continue
		}
		if routes := c.passthroughRoutes(p, bound); len(routes) > 0 {
			plan.Passthrough = append(plan.Passthrough, PassthroughPort{Port: p, Routes: routes})
		}
	}
	return plan
}

// passthroughRoutes are the tls routes that serve PASSTHROUGH port p: those
// whose match has port p or none and that name a Gateway with p among its
// bound ports. A route with the SNI hosts of an earlier one is dropped.
func (c *GatewayConfig) passthroughRoutes(p uint32, bound map[string]map[uint32]bool) []PassthroughRoute {
	var routes []PassthroughRoute
	seen := map[string]bool{}
	for _, r := range c.Routes {
		if (r.Port != 0 && r.Port != p) || !slices.ContainsFunc(r.Gateways, func(g string) bool { return bound[g][p] }) {
			continue
		}
		sni := slices.DeleteFunc(slices.Clone(r.SNIHosts), func(s string) bool { return s == "*" })
		slices.Sort(sni)
		key := strings.Join(sni, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		routes = append(routes, PassthroughRoute{SNIHosts: sni, Destination: r.Destination, DestinationPort: r.DestinationPort})
	}
	return routes
}

// Destinations are the services and ports the plan's passthrough routes
// send to.
func (p *GatewayPlan) Destinations() []HostPort {
	var out []HostPort
	for _, pp := range p.Passthrough {
		for _, r := range pp.Routes {
			out = append(out, HostPort{Host: r.Destination, Port: r.DestinationPort})
		}
	}
	slices.SortFunc(out, func(a, b HostPort) int { return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port)) })
	return slices.Compact(out)
}

// HostPort is a service port.
type HostPort struct {
	Host Host
	Port uint32
}

// RouteDestinations are the destinations of every tls route of the config
// (whatever gateway it is bound to): the clusters an east-west gateway may
// be told to use.
func (c *GatewayConfig) RouteDestinations() []HostPort {
	out := make([]HostPort, 0, len(c.Routes))
	for _, r := range c.Routes {
		out = append(out, HostPort{Host: r.Destination, Port: r.DestinationPort})
	}
	slices.SortFunc(out, func(a, b HostPort) int { return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port)) })
	return slices.Compact(out)
}

// parseGatewayHost reads a server host, NAMESPACE/HOST or HOST, "." and
// "*" as namespace meaning the Gateway's own and any.
func parseGatewayHost(h, gatewayNamespace string) GatewayHost {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		return GatewayHost{Host: h}
	}
	switch ns {
	case "*":
		ns = ""
	case ".":
		ns = gatewayNamespace
	}
	return GatewayHost{Namespace: ns, Host: host}
}

// ResolveHost is a VirtualService destination host as a service host: a
// name without a dot is NAME.NAMESPACE.svc.DOMAIN of the VirtualService's
// namespace (Istio's short-name rule); any other is taken as written.
func ResolveHost(host, namespace, domain string) Host {
	if strings.Contains(host, ".") {
		return Host(host)
	}
	return Host(host + "." + namespace + ".svc." + cmp.Or(domain, "cluster.local"))
}
