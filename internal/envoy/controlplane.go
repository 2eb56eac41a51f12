package envoy

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"

	"github.com/causeway-mesh/causeway/internal/model"
)

// The control plane as an east-west gateway exposes it (primary-remote).
const (
	// ControlPlaneService is the name of the control plane's Service
	// (Istio's istiod; `causeway manifest generate --profile primary`
	// writes it in the system namespace).
	ControlPlaneService = "istiod"
	// ControlPlanePort is the control plane's secure port: xDS over TLS
	// and the CA (CreateCertificate).
	ControlPlanePort uint32 = 15012
	// ControlPlaneListenerName is the gateway listener that passes the
	// secure port through: 0.0.0.0_15012.
	ControlPlaneListenerName = "0.0.0.0_15012"
	// ControlPlaneWebhookServicePort is the control plane Service's port
	// of the injection webhook (https-webhook 443, targetPort 15017).
	ControlPlaneWebhookServicePort uint32 = 443
	// ControlPlaneWebhookPort is where an east-west gateway passes the
	// webhook through, as Istio's expose-istiod Gateway does: a remote
	// cluster's API server calls https://GATEWAY:15017/inject/...
	ControlPlaneWebhookPort uint32 = 15017
	// ControlPlaneWebhookListenerName is the gateway listener that passes
	// the webhook through: 0.0.0.0_15017.
	ControlPlaneWebhookListenerName = "0.0.0.0_15017"
)

// transportProtocolTLS is what Envoy's TLS inspector sets for a TLS
// connection.
const transportProtocolTLS = "tls"

// ControlPlaneListener is the east-west gateway's listener 0.0.0.0_15012,
// what Istio's expose-istiod Gateway (port 15012, TLS PASSTHROUGH, hosts
// "*") makes: the TLS inspector reads the ClientHello, and the connection
// passes, still encrypted, to the cluster of the control plane's Service
// port 15012, outbound_.15012_._.HOST (GatewayCluster). TLS is not
// terminated: the client verifies the control plane's own serving
// certificate, and the CA sees the client's token and certificate.
//
// The control plane is every Service named ControlPlaneService with TCP
// port ControlPlanePort, whatever its namespace. With one, its filter
// chain takes any server name, as Istio's hosts "*" does: remote proxies
// dial istiod-remote.NS.svc, a revisioned or a custom host (--custom-host),
// and every one of them must reach it. With several (control planes in
// several namespaces), each takes the names of its namespace,
// *.NS.svc and *.NS.svc.DOMAIN, so that istiod-remote.NS.svc reaches the
// control plane of NS; other names are then refused. Chains are sorted by
// host.
//
// It returns nil when no Service is a control plane's. services is not
// modified; nil entries are skipped.
func ControlPlaneListener(services []*model.ServiceInfo) *listenerv3.Listener {
	return controlPlanePassthrough(services, ControlPlanePort, ControlPlanePort, ControlPlaneListenerName)
}

// ControlPlaneWebhookListener is the east-west gateway's listener
// 0.0.0.0_15017, what Istio's expose-istiod Gateway makes of its port 15017
// (TLS PASSTHROUGH to istiod's port 443): it is ControlPlaneListener for
// the injection webhook, the control plane Service's port
// ControlPlaneWebhookServicePort (cluster outbound_.443_._.HOST, whose
// endpoints are the pods' 15017). A remote cluster's API server reaches
// the webhook through it, TLS end to end: it verifies the control plane's
// serving certificate for the webhook's host.
//
// It returns nil when no Service named ControlPlaneService has TCP port
// ControlPlaneWebhookServicePort.
func ControlPlaneWebhookListener(services []*model.ServiceInfo) *listenerv3.Listener {
	return controlPlanePassthrough(services, ControlPlaneWebhookServicePort, ControlPlaneWebhookPort, ControlPlaneWebhookListenerName)
}

// controlPlanePassthrough is listener name on listenerPort, passing TLS
// through to svcPort of the control planes' Services (see
// ControlPlaneListener).
func controlPlanePassthrough(services []*model.ServiceInfo, svcPort, listenerPort uint32, name string) *listenerv3.Listener {
	var hosts []model.Host
	for _, svc := range services {
		if isControlPlane(svc, svcPort) {
			hosts = append(hosts, svc.Host)
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts) // Envoy rejects two chains with one match
	chains := make([]*listenerv3.FilterChain, 0, len(hosts))
	for _, h := range hosts {
		var names []string
		if len(hosts) > 1 {
			names = namespaceNames(h)
		}
		chains = append(chains, passthroughChain(model.SNI(h, svcPort, ""), names))
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress("0.0.0.0", listenerPort),
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name: wellknown.TLSInspector,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{
				TypedConfig: typed(&tlsinspectorv3.TlsInspector{}),
			},
		}},
		FilterChains:     chains,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
	}
}

// isControlPlane reports whether svc is a control plane's Service: named
// ControlPlaneService, with TCP port port.
func isControlPlane(svc *model.ServiceInfo, port uint32) bool {
	if svc == nil || svc.Name != ControlPlaneService {
		return false
	}
	for _, p := range svc.Ports {
		if p.Port == port && p.IsTCP() {
			return true
		}
	}
	return false
}

// isControlPlaneHost reports whether host and port are a port the gateway
// exposes of a control plane: a Service named ControlPlaneService (any
// namespace), port ControlPlanePort or ControlPlaneWebhookServicePort.
func isControlPlaneHost(host model.Host, port uint32) bool {
	name, _, _ := strings.Cut(string(host), ".")
	return (port == ControlPlanePort || port == ControlPlaneWebhookServicePort) && name == ControlPlaneService
}

// namespaceNames are the server names of the control plane of host
// NAME.NS.svc.DOMAIN: *.NS.svc and *.NS.svc.DOMAIN.
func namespaceNames(h model.Host) []string {
	_, rest, _ := strings.Cut(string(h), ".") // NS.svc.DOMAIN
	ns, _, _ := strings.Cut(rest, ".")
	return []string{"*." + ns + ".svc", "*." + rest}
}

// passthroughChain passes TLS with one of names (any, when none) through
// to cluster, as it is.
func passthroughChain(cluster string, names []string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{
		Name: cluster,
		FilterChainMatch: &listenerv3.FilterChainMatch{
			ServerNames:       names,
			TransportProtocol: transportProtocolTLS,
		},
		Filters: []*listenerv3.Filter{{
			Name: wellknown.TCPProxy,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(&tcpproxyv3.TcpProxy{
				StatPrefix:       cluster,
				ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
			})},
		}},
	}
}
