package model

import (
	"maps"
	"net"
	"strings"
)

// ClusterLocalHosts says which hosts are cluster-local: a proxy of cluster
// C is told only C's endpoints of them, never another cluster's (directly
// or through a gateway). Build it with NewClusterLocalHosts; the zero value
// has no cluster-local host. It is immutable.
type ClusterLocalHosts struct {
	// exact and wildcard map a host, or a wildcard's suffix (".SUFFIX"; ""
	// for "*"), to whether it is cluster-local.
	exact    map[Host]bool
	wildcard map[string]bool
}

// DefaultDiscoveryAddress is Istio's default
// meshConfig.defaultConfig.discoveryAddress, with the system namespace.
func DefaultDiscoveryAddress(systemNamespace string) string {
	return "istiod." + systemNamespace + ".svc:15012"
}

// NewClusterLocalHosts returns the cluster-local hosts of a mesh config
// (nil: Istio's defaults), for cluster domain domain and the control
// plane's namespace, as istiod decides them:
//
//   - by default: *.kube-system.svc.DOMAIN, kubernetes.default.svc.DOMAIN,
//     and the host of defaultConfig.discoveryAddress (default
//     istiod.SYSTEMNS.svc), with .DOMAIN added when it lacks it;
//   - serviceSettings hosts with clusterLocal true are added, those with
//     clusterLocal false are explicitly global; a global host equal to a
//     default, or under a default wildcard, removes that default;
//   - a host's setting is its most specific match: the exact host, else
//     the longest wildcard suffix.
func NewClusterLocalHosts(mc *MeshConfig, domain, systemNamespace string) ClusterLocalHosts {
	if domain == "" {
		domain = DefaultDomain
	}
	if systemNamespace == "" {
		systemNamespace = DefaultSystemNamespace
	}
	if mc == nil {
		mc = &MeshConfig{}
	}
	addr := mc.DiscoveryAddress
	if addr == "" {
		addr = DefaultDiscoveryAddress(systemNamespace)
	}
	defaults := []string{"*.kube-system.svc." + domain, "kubernetes.default.svc." + domain}
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
		if !strings.HasSuffix(h, domain) {
			h += "." + domain
		}
		defaults = append(defaults, h)
	}
	c := ClusterLocalHosts{exact: map[Host]bool{}, wildcard: map[string]bool{}}
	for _, ss := range mc.ServiceSettings {
		if ss.ClusterLocal {
			continue
		}
		for _, h := range ss.Hosts {
			for i, d := range defaults {
				if d != "" && (h == d || (strings.HasPrefix(d, "*") && strings.HasSuffix(h, d[1:]))) {
					defaults[i] = "" // explicitly made global
				}
			}
		}
	}
	for _, ss := range mc.ServiceSettings {
		for _, h := range ss.Hosts {
			c.set(h, ss.ClusterLocal)
		}
	}
	for _, d := range defaults {
		if d != "" {
			c.set(d, true)
		}
	}
	return c
}

func (c *ClusterLocalHosts) set(h string, local bool) {
	if suffix, ok := strings.CutPrefix(h, "*"); ok {
		c.wildcard[suffix] = local
		return
	}
	c.exact[Host(h)] = local
}

// IsClusterLocal reports whether h is cluster-local.
func (c ClusterLocalHosts) IsClusterLocal(h Host) bool {
	if local, ok := c.exact[h]; ok {
		return local
	}
	best, local := -1, false
	for suffix, l := range c.wildcard {
		if len(suffix) > best && strings.HasSuffix(string(h), suffix) {
			best, local = len(suffix), l
		}
	}
	return local
}

// Equal reports whether c and o decide every host alike (they hold the
// same rules).
func (c ClusterLocalHosts) Equal(o ClusterLocalHosts) bool {
	return maps.Equal(c.exact, o.exact) && maps.Equal(c.wildcard, o.wildcard)
}
