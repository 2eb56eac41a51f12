package model

// NoGatewayPolicy says what a proxy is told of endpoints of another network
// that has no gateway.
type NoGatewayPolicy string

// No-gateway policies.
const (
	// NoGatewayDrop leaves them out (the default) and reports them.
	NoGatewayDrop NoGatewayPolicy = "drop"
	// NoGatewayDirect hands them out as if directly reachable, as Istio.
	NoGatewayDirect NoGatewayPolicy = "direct"
)

// NodePortMode says which nodes' addresses a NodePort gateway Service hands
// out.
type NodePortMode string

// NodePort gateway modes.
const (
	// NodePortEndpoints: nodes running a ready endpoint of the Service,
	// narrowed by the traffic.istio.io/nodeSelector annotation (the default).
	NodePortEndpoints NodePortMode = "endpoints"
	// NodePortSelector: nodes matching the annotation, as Istio.
	NodePortSelector NodePortMode = "selector"
)

// Config configures a Store.
type Config struct {
	// Domain is the cluster domain of service hostnames; default
	// "cluster.local".
	Domain string
	// SystemNamespace is the control plane's namespace, whose
	// topology.istio.io/network label is a cluster's default network;
	// default "istio-system".
	SystemNamespace string
	// NoGatewayEndpoints: NoGatewayDrop (the default, also for any value
	// other than NoGatewayDirect) or NoGatewayDirect.
	NoGatewayEndpoints NoGatewayPolicy
	// NodePortGateways: NodePortEndpoints (the default, also for any value
	// other than NodePortSelector) or NodePortSelector.
	NodePortGateways NodePortMode
	// Resolve turns a LoadBalancer ingress hostname (or a meshNetworks
	// gateway address that is a hostname) into IPs; nil: hostnames are left
	// out with a warning. It is called when the object is stored, outside
	// the store's lock; storing the object again, or Store.ResolveAgain,
	// resolves it again. It must not block on the network: `causeway
	// serve` gives internal/gatewaydns's cached Lookup.
	Resolve func(host string) ([]string, error)
}

// DefaultSystemNamespace is the default Config.SystemNamespace.
const DefaultSystemNamespace = "istio-system"

func (c Config) withDefaults() Config {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.SystemNamespace == "" {
		c.SystemNamespace = DefaultSystemNamespace
	}
	if c.NoGatewayEndpoints != NoGatewayDirect {
		c.NoGatewayEndpoints = NoGatewayDrop
	}
	if c.NodePortGateways != NodePortSelector {
		c.NodePortGateways = NodePortEndpoints
	}
	return c
}
