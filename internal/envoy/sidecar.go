package envoy

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// proxyPorts are the ports Istio reserves for the proxy itself (admin,
// outbound and inbound capture, HBONE, agent, health, DNS, Prometheus).
// A sidecar's outbound listeners bind their port, so a Service port among
// these (the east-west gateway's status-port 15021, say) would collide
// with the proxy's own: it gets no outbound listener.
func isProxyPort(p uint32) bool {
	switch p {
	case 15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090:
		return true
	}
	return false
}

// SidecarListeners are the outbound listeners of a sidecar that is not
// captured (INTERCEPTION_MODE NONE, or none said): one per distinct TCP
// port of services, sorted by port, named 0.0.0.0_PORT. By the protocols
// of the services' ports there (model.PortProtocol): if every one is TCP
// (tcp, tls, https, mongo, redis, mysql), a tcp_proxy to the cluster of
// the first service by host (a bound port carries no destination to tell
// services apart; istiod also keeps one); otherwise an HTTP connection
// manager taking its routes from RDS SidecarRouteName(PORT) (see
// SidecarRoute) with the router filter.
//
// Istio marks these listeners bind_to_port=false and reaches them through
// iptables and its virtual outbound listener on 15001; that is what
// captured sidecars get (CapturedOutboundListeners). These bind their
// port: a client sends to 127.0.0.1:PORT (or the proxy's address) with the
// service's name as Host. Ports reserved for the proxy itself
// (isProxyPort) are left out.
func SidecarListeners(services []*model.ServiceInfo) []*listenerv3.Listener {
	type portUse struct {
		allTCP bool
		first  model.Host // the first TCP service by host
	}
	byPort := map[uint32]*portUse{}
	for _, svc := range services {
		if svc == nil {
			continue
		}
		for _, p := range svc.Ports {
			if !p.IsTCP() || isProxyPort(p.Port) {
				continue
			}
			u := byPort[p.Port]
			if u == nil {
				u = &portUse{allTCP: true, first: svc.Host}
				byPort[p.Port] = u
			}
			u.allTCP = u.allTCP && model.PortProtocol(p).IsTCP()
			u.first = min(u.first, svc.Host)
		}
	}
	ports := slices.Sorted(maps.Keys(byPort))
	out := make([]*listenerv3.Listener, len(ports))
	for i, p := range ports {
		if u := byPort[p]; u.allTCP {
			out[i] = tcpBindListener(p, model.ClusterName(u.first, p, ""))
		} else {
			out[i] = sidecarListener(p)
		}
	}
	return out
}

// tcpBindListener is 0.0.0.0_PORT, bound, forwarding to cluster.
func tcpBindListener(port uint32, cluster string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:             OutboundListenerName(port),
		Address:          socketAddress("0.0.0.0", port),
		FilterChains:     []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxyFilter(cluster)}}},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

func sidecarListener(port uint32) *listenerv3.Listener {
	name := OutboundListenerName(port)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_" + name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: SidecarRouteName(port),
		}},
		HttpFilters:   []*hcmv3.HttpFilter{routerFilter()},
		StripPortMode: stripAnyHostPort(),
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm)},
			}},
		}},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

// stripAnyHostPort has an outbound HTTP connection manager drop the port
// from Host before routing, so that "helloworld:5000" matches the domain
// "helloworld" (routeDomains lists no :PORT forms, as istiod's routes).
func stripAnyHostPort() *hcmv3.HttpConnectionManager_StripAnyHostPort {
	return &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
}

// routerFilter is the terminal HTTP filter, with its typed config (which
// grpc-go requires and Envoy no longer does without).
func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed(&routerv3.Router{})},
	}
}

// SidecarRoute is the RDS resource SidecarRouteName(port) for a sidecar in
// namespace proxyNamespace of cluster proxyCluster: one virtual host per
// service that has the port, named HOST:PORT and sorted by it, routing
// every path to outbound|PORT||HOST with Istio's timeout (none) and retry
// policy.
//
// Domains are what a client of that namespace may put in Host (see
// routeDomains). Envoy rejects a route configuration in which a domain
// appears twice; should two services still claim one (two services with
// the same cluster IP while an old one is being replaced), the service
// first in host order keeps it.
//
// services is not modified; nil entries are skipped.
func SidecarRoute(port uint32, services []*model.ServiceInfo, proxyNamespace string, proxyCluster model.ClusterID, policy OutboundTrafficPolicy) *routev3.RouteConfiguration {
	var matched []*model.ServiceInfo
	for _, svc := range services {
		if svc != nil && svc.HasPort(port) {
			matched = append(matched, svc)
		}
	}
	slices.SortStableFunc(matched, func(a, b *model.ServiceInfo) int { return cmp.Compare(a.Host, b.Host) })

	rc := &routev3.RouteConfiguration{
		Name:         SidecarRouteName(port),
		VirtualHosts: make([]*routev3.VirtualHost, 0, len(matched)),
	}
	taken := make(map[string]struct{}, 10*len(matched))
	for _, svc := range matched {
		name := hostPort(string(svc.Host), port)
		if n := len(rc.VirtualHosts); n > 0 && rc.VirtualHosts[n-1].Name == name {
			continue // the same host listed twice
		}
		all := routeDomains(svc, proxyNamespace, proxyCluster)
		domains := all[:0]
		for _, d := range all {
			if _, dup := taken[d]; !dup {
				taken[d] = struct{}{}
				domains = append(domains, d)
			}
		}
		rc.VirtualHosts = append(rc.VirtualHosts, sidecarVirtualHost(name, svc.Host, port, domains))
	}
	rc.VirtualHosts = append(rc.VirtualHosts, catchAllVirtualHost(policy))
	return rc
}

// Names of the catch-all virtual host of an outbound route configuration,
// as istiod names them.
const (
	allowAnyVirtualHost = "allow_any"
	blockAllVirtualHost = "block_all"
)

// catchAllVirtualHost takes the requests whose Host names no service: to
// PassthroughCluster (the connection's original destination) under
// ALLOW_ANY, answered 502 under REGISTRY_ONLY, as istiod does.
func catchAllVirtualHost(policy OutboundTrafficPolicy) *routev3.VirtualHost {
	match := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if policy == RegistryOnly {
		return &routev3.VirtualHost{
			Name:    blockAllVirtualHost,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   blockAllVirtualHost,
				Match:  match,
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
			}},
			IncludeRequestAttemptCount: true,
		}
	}
	return &routev3.VirtualHost{
		Name:    allowAnyVirtualHost,
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  allowAnyVirtualHost,
			Match: match,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: PassthroughCluster},
				Timeout:          durationpb.New(0),
				MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
					MaxStreamDuration:    durationpb.New(0),
					GrpcTimeoutHeaderMax: durationpb.New(0),
				},
			}},
		}},
		IncludeRequestAttemptCount: true,
	}
}

// routeDomains are the Host values that reach svc on port from a proxy of
// proxyNamespace in proxyCluster, without a port (the HTTP connection
// manager strips any port from Host before routing, as istiod's do), in
// the home lab's order: the full host NAME.NS.svc.DOMAIN and its absolute form
// with a trailing dot; NAME only if the service is in the proxy's own
// namespace (as Istio does: that is what the short name resolves to
// there, and only there, and two namespaces' services of one name would
// otherwise claim the same domain); NAME.NS.svc; NAME.NS; and the
// service's VIP for the proxy (ServiceVIP: its cluster IP in the proxy's
// cluster, else another cluster's, as istiod's; "[IP]" for IPv6, as a
// Host header carries it).
//
// A host not of the form NAME.NS.svc.DOMAIN gets itself and its absolute
// form.
func routeDomains(svc *model.ServiceInfo, proxyNamespace string, proxyCluster model.ClusterID) []string {
	host := string(svc.Host)
	out := make([]string, 0, 6)
	out = append(out, host, host+".")
	if svc.Name != "" && svc.Namespace != "" && strings.HasPrefix(host, svc.Name+"."+svc.Namespace+".svc.") {
		if svc.Namespace == proxyNamespace {
			out = append(out, svc.Name)
		}
		out = append(out, svc.Name+"."+svc.Namespace+".svc", svc.Name+"."+svc.Namespace)
	}
	if ip, err := netip.ParseAddr(ServiceVIP(svc, proxyCluster)); err == nil {
		if ip.Is6() {
			out = append(out, "["+ip.String()+"]")
		} else {
			out = append(out, ip.String())
		}
	}
	return out
}

// sidecarVirtualHost routes every path of domains to host's cluster.
func sidecarVirtualHost(name string, host model.Host, port uint32, domains []string) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Name:  "default",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: model.ClusterName(host, port, "")},
				// 0s: no timeout, as Istio without a VirtualService.
				Timeout:     durationpb.New(0),
				RetryPolicy: istioRetryPolicy(),
				MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
					MaxStreamDuration:    durationpb.New(0),
					GrpcTimeoutHeaderMax: durationpb.New(0),
				},
			}},
			Decorator: &routev3.Decorator{Operation: name + "/*"},
		}},
		IncludeRequestAttemptCount: true,
	}
}

// istioRetryPolicy is Istio's default: two retries on connection failures,
// refused streams, the gRPC statuses unavailable and canceled, and HTTP
// 503, each on another host.
func istioRetryPolicy() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", //nolint:misspell // Envoy's retry_on token is spelled so
		NumRetries: wrapperspb.UInt32(2),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name: "envoy.retry_host_predicates.previous_hosts",
			// The home lab shows the name alone; current Envoy needs the type.
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{
				TypedConfig: typed(&previoushostsv3.PreviousHostsPredicate{}),
			},
		}},
		HostSelectionRetryMaxAttempts: 5,
		RetriableStatusCodes:          []uint32{503},
	}
}
