package gateway

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/version"
)

// Defaults of Config.
const (
	DefaultListen       = "0.0.0.0:15443"
	DefaultAdmin        = ":15021"
	DefaultHelloTimeout = 5 * time.Second
	// DefaultHelloGrace is how long a connection waiting for its hello is
	// safe from being closed to make room (see Config.HelloGrace).
	DefaultHelloGrace = time.Second
	// DefaultMaxPendingHellos caps the connections waiting for their
	// ClientHello at once, over all listeners.
	DefaultMaxPendingHellos = 1024
	DefaultDrain            = 30 * time.Second
	DefaultReconnectDelay   = 500 * time.Millisecond
	// MaxReconnectDelay caps the backoff between two ADS streams.
	MaxReconnectDelay = 30 * time.Second
	// DefaultNamespace is the namespace of the default node id.
	DefaultNamespace = model.DefaultSystemNamespace
)

// Config configures a Gateway.
type Config struct {
	// XDS is the control plane's ADS address, HOST:PORT: plaintext gRPC
	// (Causeway's :15010), or TLS (:15012, directly or through a primary's
	// east-west gateway) when XDSTLS is set. Required.
	XDS string
	// XDSTLS, when set, secures the ADS connection: its roots verify the
	// control plane's serving certificate for its ServerName, and its
	// certificate, if any, is presented. XDSTLSConfig builds one from PEM
	// files. Nil: plaintext.
	XDSTLS *tls.Config
	// XDSTokenFile, when set, is a file holding the gateway's
	// service-account token (a projected token for audience istio-ca),
	// read again for every ADS stream (the kubelet rotates it) and sent as
	// `authorization: Bearer` with the `clusterid` metadata: the control
	// plane's secure port authenticates every ADS stream, as istiod's
	// does. Only with XDSTLS: a token is never sent in plaintext.
	XDSTokenFile string
	// Network and ClusterID are the gateway's network and cluster, sent as
	// node metadata NETWORK and CLUSTER_ID: the control plane answers with
	// the endpoints of this network. Required.
	Network   model.NetworkID
	ClusterID model.ClusterID
	// NodeID is the xDS node id, Istio's form router~IP~POD.NS~NS.svc.DOMAIN
	// (see NodeID). Required.
	NodeID string

	// Listen is the address connections are accepted on; default
	// DefaultListen.
	Listen string
	// ListenerName is the LDS listener the gateway runs; default
	// 0.0.0.0_PORT for Listen's port (0.0.0.0_15443 when Listen's port is 0).
	ListenerName string
	// ExposeControlPlane, when set, is the address of a second listener
	// that runs LDS listener envoy.ControlPlaneListenerName (0.0.0.0_15012,
	// the control plane's secure port passed through by SNI, as Istio's
	// expose-istiod Gateway does): remote clusters' proxies reach the
	// control plane through it. Empty: no such listener.
	ExposeControlPlane string
	// ExposeWebhook, when set, is the address of a listener that runs LDS
	// listener envoy.ControlPlaneWebhookListenerName (0.0.0.0_15017: the
	// control plane's injection webhook, its Service's port 443, passed
	// through by SNI as Istio's expose-istiod Gateway does): remote
	// clusters' API servers call the webhook through it. Empty: no such
	// listener.
	ExposeWebhook string
	// Admin is the address of the admin HTTP server (/ready, /metrics,
	// /config); default DefaultAdmin.
	Admin string
	// AdminRemoteConfig serves /config to every peer of the admin server;
	// by default only loopback peers get it (it lists every route and
	// endpoint address the gateway forwards to).
	AdminRemoteConfig bool

	// HelloTimeout bounds the wait for a connection's TLS ClientHello;
	// default DefaultHelloTimeout.
	HelloTimeout time.Duration
	// MaxPendingHellos caps the connections that have not sent a whole
	// ClientHello yet, over all listeners: when one more is accepted, the
	// oldest of them is closed at once if it has waited longer than
	// HelloGrace, else the new one is (counted as reason hello_limit). So
	// clients that stall mid-hello cannot hold every file descriptor or
	// buffer for HelloTimeout each, and real clients still get in. Default
	// DefaultMaxPendingHellos.
	MaxPendingHellos int
	// HelloGrace is how long a connection waiting for its hello cannot be
	// closed to make room for a newer one; default DefaultHelloGrace, at
	// most HelloTimeout.
	HelloGrace time.Duration
	// Drain is how long Run waits for open connections when its context
	// ends, before it closes them; default DefaultDrain.
	Drain time.Duration
	// ReconnectDelay is the first wait before a new ADS stream after one
	// broke; it doubles per failed attempt up to MaxReconnectDelay. Default
	// DefaultReconnectDelay.
	ReconnectDelay time.Duration

	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
}

// NodeID is the node id of an east-west gateway pod as Istio's bootstrap
// writes it: router~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN (domain
// cluster.local when empty).
func NodeID(ip netip.Addr, pod, namespace, domain string) string {
	domain = cmp.Or(domain, model.DefaultDomain)
	return "router~" + ip.String() + "~" + pod + "." + namespace + "~" + namespace + ".svc." + domain
}

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.XDS == "":
		return cfg, errors.New("gateway: no xDS address: give the control plane's ADS address, e.g. causeway.istio-system:15010")
	case cfg.Network == "":
		return cfg, errors.New("gateway: no network: give the network whose endpoints this gateway forwards to (topology.istio.io/network)")
	case cfg.ClusterID == "":
		return cfg, errors.New("gateway: no cluster id: give the id of the cluster the gateway runs in")
	case cfg.NodeID == "":
		return cfg, errors.New("gateway: no node id: give router~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local")
	case cfg.XDSTokenFile != "" && cfg.XDSTLS == nil:
		return cfg, errors.New("gateway: a service-account token for the control plane is sent only over TLS: give the TLS settings (--xds-root-cert) too")
	case cfg.HelloTimeout < 0, cfg.Drain < 0, cfg.ReconnectDelay < 0, cfg.MaxPendingHellos < 0, cfg.HelloGrace < 0:
		return cfg, errors.New("gateway: hello timeout, pending hello cap, drain and reconnect delay must not be negative")
	}
	p, err := envoy.ParseNode(node(cfg))
	if err != nil {
		return cfg, fmt.Errorf("gateway: node id %q: %w", cfg.NodeID, err)
	}
	if p.Role != envoy.RoleEastWestGateway {
		return cfg, fmt.Errorf("gateway: node id %q is a %s's; an east-west gateway's starts with router~", cfg.NodeID, p.Role)
	}
	cfg.Listen = cmp.Or(cfg.Listen, DefaultListen)
	cfg.Admin = cmp.Or(cfg.Admin, DefaultAdmin)
	if cfg.ListenerName == "" {
		name, err := mainListenerName(cfg.Listen)
		if err != nil {
			return cfg, err
		}
		cfg.ListenerName = name
	}
	if cfg.ExposeControlPlane != "" {
		if err := checkExposed("control plane", cfg.ExposeControlPlane, envoy.ControlPlanePort, envoy.ControlPlaneListenerName, cfg.ListenerName); err != nil {
			return cfg, err
		}
	}
	if cfg.ExposeWebhook != "" {
		if err := checkExposed("webhook", cfg.ExposeWebhook, envoy.ControlPlaneWebhookPort, envoy.ControlPlaneWebhookListenerName, cfg.ListenerName); err != nil {
			return cfg, err
		}
	}
	cfg.HelloTimeout = cmp.Or(cfg.HelloTimeout, DefaultHelloTimeout)
	cfg.MaxPendingHellos = cmp.Or(cfg.MaxPendingHellos, DefaultMaxPendingHellos)
	cfg.HelloGrace = cmp.Or(cfg.HelloGrace, DefaultHelloGrace)
	cfg.HelloGrace = min(cfg.HelloGrace, cfg.HelloTimeout)
	cfg.Drain = cmp.Or(cfg.Drain, DefaultDrain)
	cfg.ReconnectDelay = cmp.Or(cfg.ReconnectDelay, DefaultReconnectDelay)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// mainListenerName is the LDS name of the listener on address listen:
// 0.0.0.0_PORT, port 0 meaning the default gateway port.
func mainListenerName(listen string) (string, error) {
	_, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("gateway: listen address %q: %w; want HOST:PORT such as %s", listen, err, DefaultListen)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", fmt.Errorf("gateway: listen address %q: port %q is not a number; want HOST:PORT such as %s", listen, portStr, DefaultListen)
	}
	if port == 0 {
		port = model.DefaultGatewayPort
	}
	return envoy.OutboundListenerName(uint32(port)), nil
}

// checkExposed checks the address of the exposed listener named exposed
// (what it passes to: "control plane" or "webhook", whose port is port),
// and that the main listener, named main, is not that one.
func checkExposed(what, addr string, port uint32, exposed, main string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("gateway: %s address %q: %w; want HOST:PORT such as 0.0.0.0:%d", what, addr, err, port)
	}
	if main == exposed {
		return fmt.Errorf("gateway: the main listener is %s, the %s's: give the main listener another port or name", exposed, what)
	}
	return nil
}

// listenerNames are the LDS listeners the gateway runs: the main one,
// then the control plane's when it is exposed, then the webhook's.
func (cfg Config) listenerNames() []string {
	names := []string{cfg.ListenerName}
	if cfg.ExposeControlPlane != "" {
		names = append(names, envoy.ControlPlaneListenerName)
	}
	if cfg.ExposeWebhook != "" {
		names = append(names, envoy.ControlPlaneWebhookListenerName)
	}
	return names
}

// node is the xDS node the gateway announces: its id, and the metadata
// Istio's east-west gateways send (NETWORK, CLUSTER_ID, ROUTER_MODE
// sni-dnat, LABELS istio=eastwestgateway, NAMESPACE).
func node(cfg Config) *corev3.Node {
	// The labels of Istio's east-west gateway deployment.
	labels := map[string]*structpb.Value{"istio": structpb.NewStringValue("eastwestgateway")}
	md := map[string]*structpb.Value{
		envoy.MetaNetwork:    structpb.NewStringValue(string(cfg.Network)),
		envoy.MetaClusterID:  structpb.NewStringValue(string(cfg.ClusterID)),
		envoy.MetaRouterMode: structpb.NewStringValue(envoy.RouterModeSNIDNAT),
		envoy.MetaLabels:     structpb.NewStructValue(&structpb.Struct{Fields: labels}),
	}
	if ns := nodeNamespace(cfg.NodeID); ns != "" {
		md[envoy.MetaNamespace] = structpb.NewStringValue(ns)
	}
	return &corev3.Node{
		Id:                   cfg.NodeID,
		Cluster:              "istio-eastwestgateway",
		Metadata:             &structpb.Struct{Fields: md},
		UserAgentName:        envoy.UserAgentCausewayGateway,
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: version.Get().Version},
	}
}

// nodeNamespace is the namespace of an Istio node id (the domain part,
// NAMESPACE.svc.DOMAIN), "" if it has none.
func nodeNamespace(id string) string {
	parts := strings.Split(id, "~")
	if len(parts) != 4 {
		return ""
	}
	ns, _, _ := strings.Cut(parts[3], ".")
	return ns
}
