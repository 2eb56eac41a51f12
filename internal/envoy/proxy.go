package envoy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Role is what kind of xDS client a proxy is; it decides which resources
// it is served.
type Role int

// Roles of xDS clients.
const (
	// RoleSidecar is an Envoy next to a workload (node id sidecar~...).
	RoleSidecar Role = iota
	// RoleRouter is a standalone Envoy gateway (node id router~...) that is
	// not an east-west gateway.
	RoleRouter
	// RoleEastWestGateway is a router that passes mTLS from other networks
	// through by SNI: metadata ROUTER_MODE=sni-dnat or label
	// istio=eastwestgateway.
	RoleEastWestGateway
	// RoleGRPC is a proxyless gRPC client (metadata GENERATOR=grpc), served
	// only what grpc-go's xDS client accepts.
	RoleGRPC
)

// String names the role for logs and debug output.
func (r Role) String() string {
	switch r {
	case RoleSidecar:
		return "sidecar"
	case RoleRouter:
		return "router"
	case RoleEastWestGateway:
		return "eastwestgateway"
	case RoleGRPC:
		return "grpc"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// Node metadata keys and values that Istio's bootstraps write and that
// ParseNode reads.
const (
	MetaNetwork    = "NETWORK"
	MetaClusterID  = "CLUSTER_ID"
	MetaLabels     = "LABELS"
	MetaRouterMode = "ROUTER_MODE"
	MetaGenerator  = "GENERATOR"
	MetaNamespace  = "NAMESPACE"
	// MetaInterceptionMode is how iptables hands the sidecar its traffic:
	// REDIRECT, TPROXY or NONE.
	MetaInterceptionMode = "INTERCEPTION_MODE"
	// MetaPodPorts is the pod's container ports as a JSON string
	// ([{"name":"http","containerPort":5000,"protocol":"TCP"}]), as
	// Istio's injection writes it.
	MetaPodPorts = "POD_PORTS"

	RouterModeSNIDNAT = "sni-dnat"
	GeneratorGRPC     = "grpc"

	// UserAgentCausewayGateway is the node user_agent_name of Causeway's
	// own east-west gateway (`causeway gateway`); Istio's Envoy sends
	// "envoy".
	UserAgentCausewayGateway = "causeway-gateway"
)

// InterceptionMode is how a sidecar receives its traffic (node metadata
// INTERCEPTION_MODE).
type InterceptionMode string

// Interception modes. Empty means the node did not say: such a proxy keeps
// the bind-to-port shape, as NONE does.
const (
	InterceptionRedirect InterceptionMode = "REDIRECT"
	InterceptionTProxy   InterceptionMode = "TPROXY"
	InterceptionNone     InterceptionMode = "NONE"
)

// MaxPodPorts bounds the container ports a node may announce in POD_PORTS.
const MaxPodPorts = 256

// PodPort is a container port from node metadata POD_PORTS.
type PodPort struct {
	Name     string `json:"name"`
	Port     uint32 `json:"containerPort"`
	Protocol string `json:"protocol"`
}

// ErrInvalidNode is wrapped by every error of ParseNode: the client's node
// does not identify it (the xDS server answers InvalidArgument).
var ErrInvalidNode = errors.New("invalid xDS node")

// Proxy is who an xDS client is, as its node says.
type Proxy struct {
	// ID is the node id exactly as sent (unique per client, e.g.
	// sidecar~10.244.0.7~sleep-5d9f.sample~sample.svc.cluster.local).
	ID string
	// IP, PodName and Namespace come from an Istio node id. A proxyless gRPC
	// client with an id of another form has no IP or pod, and its namespace
	// only if metadata NAMESPACE says so.
	IP        string
	PodName   string
	Namespace string
	Role      Role
	// Network is metadata NETWORK: which view of the mesh the proxy gets.
	Network model.NetworkID
	// Cluster is metadata CLUSTER_ID: whose cluster IPs its routes carry.
	Cluster model.ClusterID
	// Labels is metadata LABELS, the workload's labels.
	Labels map[string]string
	// Generator is metadata GENERATOR as sent ("grpc" for proxyless gRPC).
	Generator string
	// CausewayGateway: the node's user agent is UserAgentCausewayGateway.
	// Such an east-west gateway keeps Causeway's default shape (the SNI
	// listener on the server's gateway port, and the control plane's
	// listener) whatever Istio's Gateways say: its flags decide what it
	// binds. Istio's Envoy gets what the Gateways select it for.
	CausewayGateway bool
	// Interception is metadata INTERCEPTION_MODE as sent.
	Interception InterceptionMode
	// PodPorts are metadata POD_PORTS, sorted by port, one per port.
	PodPorts []PodPort
}

// Captured reports whether iptables hands the proxy its traffic
// (INTERCEPTION_MODE REDIRECT or TPROXY): it gets the virtual listeners
// and non-binding outbound listeners.
func (p *Proxy) Captured() bool {
	return p.Role == RoleSidecar && (p.Interception == InterceptionRedirect || p.Interception == InterceptionTProxy)
}

// ParseNode tells who an xDS client is from its node: the id Istio's
// bootstraps write (sidecar~IP~POD.NS~NS.svc.DOMAIN or router~...) and the
// metadata NETWORK, CLUSTER_ID, LABELS, ROUTER_MODE and GENERATOR.
//
// A proxyless gRPC client (GENERATOR=grpc) may use any node id, as gRPC
// bootstraps often do. Any other client must use Istio's form.
func ParseNode(n *corev3.Node) (Proxy, error) {
	if n == nil {
		return Proxy{}, fmt.Errorf("%w: the request carries no node; the client's bootstrap must set node.id", ErrInvalidNode)
	}
	md := n.GetMetadata().GetFields()
	p := Proxy{ID: n.GetId(), CausewayGateway: n.GetUserAgentName() == UserAgentCausewayGateway}
	var err error
	if p.Generator, err = metaString(md, MetaGenerator); err != nil {
		return Proxy{}, err
	}
	network, err := metaString(md, MetaNetwork)
	if err != nil {
		return Proxy{}, err
	}
	p.Network = model.NetworkID(network)
	cluster, err := metaString(md, MetaClusterID)
	if err != nil {
		return Proxy{}, err
	}
	p.Cluster = model.ClusterID(cluster)
	if p.Labels, err = metaLabels(md); err != nil {
		return Proxy{}, err
	}
	routerMode, err := metaString(md, MetaRouterMode)
	if err != nil {
		return Proxy{}, err
	}
	mode, err := metaString(md, MetaInterceptionMode)
	if err != nil {
		return Proxy{}, err
	}
	switch m := InterceptionMode(mode); m {
	case "", InterceptionRedirect, InterceptionTProxy, InterceptionNone:
		p.Interception = m
	default:
		return Proxy{}, fmt.Errorf("%w: node metadata %s is %q; use REDIRECT, TPROXY or NONE", ErrInvalidNode, MetaInterceptionMode, mode)
	}
	if p.PodPorts, err = metaPodPorts(md); err != nil {
		return Proxy{}, err
	}

	grpc := p.Generator == GeneratorGRPC
	kind, idErr := p.parseID()
	switch {
	case grpc:
		// Any id will do; an Istio-form id has filled IP, pod and namespace.
		p.Role = RoleGRPC
		if p.Namespace == "" {
			if p.Namespace, err = metaString(md, MetaNamespace); err != nil {
				return Proxy{}, err
			}
		}
	case idErr != nil:
		return Proxy{}, idErr
	case kind == "router" && (routerMode == RouterModeSNIDNAT || p.Labels["istio"] == "eastwestgateway"):
		p.Role = RoleEastWestGateway
	case kind == "router":
		p.Role = RoleRouter
	default:
		p.Role = RoleSidecar
	}
	return p, nil
}

// parseID fills IP, PodName and Namespace from an Istio node id and returns
// its type (sidecar or router). On error it leaves p unchanged.
func (p *Proxy) parseID() (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: node id %q %s; want TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN with TYPE sidecar or router, "+
			"as Istio's bootstrap writes it (a proxyless gRPC client may use any id if its metadata says GENERATOR=grpc)",
			ErrInvalidNode, p.ID, why)
	}
	parts := strings.Split(p.ID, "~")
	if len(parts) != 4 {
		return "", bad(fmt.Sprintf("has %d parts separated by ~, not 4", len(parts)))
	}
	kind, ip, id, domain := parts[0], parts[1], parts[2], parts[3]
	if kind != "sidecar" && kind != "router" {
		return "", bad(fmt.Sprintf("has type %q", kind))
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", bad(fmt.Sprintf("has IP %q that does not parse", ip))
	}
	ns, _, _ := strings.Cut(domain, ".")
	if ns == "" {
		return "", bad(fmt.Sprintf("has domain part %q that does not start with a namespace", domain))
	}
	pod, ok := strings.CutSuffix(id, "."+ns)
	if !ok || pod == "" {
		return "", bad(fmt.Sprintf("has %q where POD.%s belongs", id, ns))
	}
	p.IP, p.PodName, p.Namespace = ip, pod, ns
	return kind, nil
}

// metaString reads a string field of the node metadata; a missing or null
// field is "".
func metaString(md map[string]*structpb.Value, key string) (string, error) {
	v, ok := md[key]
	if !ok {
		return "", nil
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, nil
	case *structpb.Value_NullValue, nil:
		return "", nil
	default:
		return "", fmt.Errorf("%w: node metadata %s is %s; it must be a string", ErrInvalidNode, key, kindName(v))
	}
}

// metaLabels reads metadata LABELS, a struct of strings.
func metaLabels(md map[string]*structpb.Value) (map[string]string, error) {
	v, ok := md[MetaLabels]
	if !ok {
		return nil, nil
	}
	if _, null := v.GetKind().(*structpb.Value_NullValue); null {
		return nil, nil
	}
	s := v.GetStructValue()
	if s == nil {
		return nil, fmt.Errorf("%w: node metadata %s is %s; it must be a struct of strings (the workload's labels)",
			ErrInvalidNode, MetaLabels, kindName(v))
	}
	labels := make(map[string]string, len(s.GetFields()))
	for k, lv := range s.GetFields() {
		sv, ok := lv.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, fmt.Errorf("%w: node metadata %s.%s is %s; label values must be strings",
				ErrInvalidNode, MetaLabels, k, kindName(lv))
		}
		labels[k] = sv.StringValue
	}
	return labels, nil
}

// metaPodPorts reads metadata POD_PORTS, a JSON list of container ports
// in a string.
func metaPodPorts(md map[string]*structpb.Value) ([]PodPort, error) {
	raw, err := metaString(md, MetaPodPorts)
	if err != nil || raw == "" {
		return nil, err
	}
	var ports []PodPort
	if err := json.Unmarshal([]byte(raw), &ports); err != nil {
		return nil, fmt.Errorf("%w: node metadata %s is not a JSON list of container ports: %w", ErrInvalidNode, MetaPodPorts, err)
	}
	if len(ports) > MaxPodPorts {
		return nil, fmt.Errorf("%w: node metadata %s lists %d ports; at most %d are accepted", ErrInvalidNode, MetaPodPorts, len(ports), MaxPodPorts)
	}
	for _, pp := range ports {
		if pp.Port < 1 || pp.Port > 65535 {
			return nil, fmt.Errorf("%w: node metadata %s has containerPort %d; use 1-65535", ErrInvalidNode, MetaPodPorts, pp.Port)
		}
	}
	slices.SortStableFunc(ports, func(a, b PodPort) int { return cmp.Compare(a.Port, b.Port) })
	return slices.CompactFunc(ports, func(a, b PodPort) bool { return a.Port == b.Port }), nil
}

// kindName names the JSON kind of a metadata value for error messages.
func kindName(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_BoolValue:
		return "a bool"
	case *structpb.Value_StructValue:
		return "a struct"
	case *structpb.Value_ListValue:
		return "a list"
	case *structpb.Value_StringValue:
		return "a string"
	default:
		return "null"
	}
}
