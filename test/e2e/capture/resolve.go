package capture

import (
	"errors"
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// VirtualOutboundPort is where Istio's iptables rules redirect a
// sidecar's outbound connections.
const VirtualOutboundPort = 15001

// ErrMissing is wrapped when the configuration lacks a resource the
// resolution needs (not received yet, or never sent); Path says which.
var ErrMissing = errors.New("resource not received")

// Config is what a sidecar has received, by resource name.
type Config struct {
	Listeners []*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
}

// Path is how a request went through the configuration, as far as it got.
type Path struct {
	Listener string `json:"listener"`
	// BindsPort is the listener's bind_to_port (true when unset): a
	// captured sidecar's per-port listeners must not bind, or they would
	// take the application's own ports.
	BindsPort bool   `json:"bindsPort"`
	Chain     string `json:"chain"`
	// RouteConfig is the RDS route configuration, empty for tcp_proxy or
	// inline routes.
	RouteConfig string `json:"routeConfig,omitempty"`
	VirtualHost string `json:"virtualHost,omitempty"`
	Cluster     string `json:"cluster"`
	// EDS is the cluster's ClusterLoadAssignment.
	EDS       string     `json:"eds"`
	Endpoints []Endpoint `json:"endpoints"`
}

// ResolveHTTP follows a plaintext HTTP/1.1 request for host and path that
// the application sends to dst (the service's cluster IP and port, as its
// DNS answered) once iptables has redirected it to VirtualOutboundPort:
// the listener (OutboundListener), the chain for plaintext HTTP/1.1 (what
// the HTTP inspector reports), its terminal filter, the route for host and
// path when it is an HTTP connection manager, the cluster, and the
// cluster's endpoints with their transport sockets. On an error the Path
// holds what was resolved; an error wrapping ErrMissing names the resource
// still to come.
func (c Config) ResolveHTTP(dst netip.AddrPort, host, path string) (*Path, error) {
	p := &Path{}
	l, err := OutboundListener(c.Listeners, VirtualOutboundPort, dst)
	if err != nil {
		return p, err
	}
	p.Listener = l.GetName()
	p.BindsPort = l.GetBindToPort() == nil || l.GetBindToPort().GetValue()
	fc, err := MatchChain(l, Conn{Dst: dst, Transport: TransportRaw, ALPN: []string{"http/1.1"}})
	if err != nil {
		return p, err
	}
	p.Chain = fc.GetName()
	t, err := TerminalOf(fc)
	if err != nil {
		return p, fmt.Errorf("listener %s: %w", l.GetName(), err)
	}
	p.Cluster = t.Cluster
	if t.HTTP {
		rc := t.Routes
		if rc == nil {
			p.RouteConfig = t.RDS
			rc = c.Routes[t.RDS]
			if rc == nil {
				return p, fmt.Errorf("route configuration %q of listener %s: %w", t.RDS, l.GetName(), ErrMissing)
			}
		}
		h := host
		if t.StripPort {
			h = StripHostPort(host)
		}
		r, err := RouteCluster(rc, h, path)
		if err != nil {
			return p, err
		}
		p.VirtualHost, p.Cluster = r.VirtualHost, r.Cluster
	}
	cl := c.Clusters[p.Cluster]
	if cl == nil {
		return p, fmt.Errorf("cluster %q: %w", p.Cluster, ErrMissing)
	}
	if p.EDS, err = EDSName(cl); err != nil {
		return p, err
	}
	cla := c.Endpoints[p.EDS]
	if cla == nil {
		return p, fmt.Errorf("endpoints %q: %w", p.EDS, ErrMissing)
	}
	if p.Endpoints, err = Endpoints(cl, cla); err != nil {
		return p, err
	}
	return p, nil
}
