package model

import (
	"fmt"
	"slices"
	"strconv"
)

// ClusterID names a cluster (a registry): --cluster-id for the config
// cluster, the data key of a remote secret for the others.
type ClusterID string

// NetworkID names an L3 network. The empty NetworkID is the empty network,
// reachable from everywhere.
type NetworkID string

// Host is a service's fully qualified name, NAME.NS.svc.DOMAIN.
type Host string

// Istio's public labels and annotations that the model reads.
const (
	LabelNetwork         = "topology.istio.io/network"
	LabelGatewayPort     = "networking.istio.io/gatewayPort"
	AnnotationNodeSelect = "traffic.istio.io/nodeSelector"
	LabelTLSMode         = "security.istio.io/tlsMode"
	LabelRegion          = "topology.kubernetes.io/region"
	LabelZone            = "topology.kubernetes.io/zone"
	LabelSubzone         = "topology.istio.io/subzone"

	TLSModeIstio       = "istio"
	DefaultGatewayPort = 15443
	DefaultDomain      = "cluster.local"
)

// NamespacedName identifies an object inside one cluster.
type NamespacedName struct {
	Namespace string
	Name      string
}

func (n NamespacedName) String() string { return n.Namespace + "/" + n.Name }

// ObjectKey identifies an object in the cluster set.
type ObjectKey struct {
	Cluster ClusterID
	NamespacedName
}

func (k ObjectKey) String() string { return string(k.Cluster) + "/" + k.NamespacedName.String() }

// ServiceHost is the mesh hostname of a Service: NAME.NS.svc.DOMAIN.
func ServiceHost(namespace, name, domain string) Host {
	if domain == "" {
		domain = DefaultDomain
	}
	return Host(name + "." + namespace + ".svc." + domain)
}

// ClusterName is the xDS cluster (and EDS resource) name Istio gives a service
// port: outbound|PORT|SUBSET|HOST.
func ClusterName(host Host, port uint32, subset string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + string(host)
}

// SNI is the server name a client sends to reach a service port through an
// east-west gateway: outbound_.PORT_.SUBSET_.HOST, so an empty subset gives
// outbound_.5000_._.helloworld.sample.svc.cluster.local as Istio's does.
func SNI(host Host, port uint32, subset string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, host)
}

// SPIFFEID is the workload identity of a service account.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	if trustDomain == "" {
		trustDomain = DefaultDomain
	}
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Locality is where an endpoint or gateway runs.
type Locality struct {
	Region  string
	Zone    string
	Subzone string
}

// String renders the locality as Istio does: region/zone/subzone.
func (l Locality) String() string {
	if l == (Locality{}) {
		return ""
	}
	return l.Region + "/" + l.Zone + "/" + l.Subzone
}

// ServiceType is a Kubernetes Service's spec.type.
type ServiceType string

// Service types the model distinguishes.
const (
	ServiceTypeClusterIP    ServiceType = "ClusterIP"
	ServiceTypeNodePort     ServiceType = "NodePort"
	ServiceTypeLoadBalancer ServiceType = "LoadBalancer"
	ServiceTypeExternalName ServiceType = "ExternalName"
)

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string
	Port     uint32
	Protocol string // TCP, UDP, SCTP; empty means TCP
	// AppProtocol is spec.ports[].appProtocol; with the name it decides
	// the application protocol (see PortProtocol).
	AppProtocol string
	// TargetPort is the numeric target port; 0 when the target port is named
	// (TargetPortName) or unset (then it equals Port).
	TargetPort     uint32
	TargetPortName string
	NodePort       uint32
}

// IsTCP reports whether the port carries TCP (an empty protocol is TCP, as
// in Kubernetes): only those get clusters, endpoints, listeners and routes.
func (p ServicePort) IsTCP() bool { return p.Protocol == "" || p.Protocol == "TCP" }

// Service is what the model keeps of a Kubernetes Service in one cluster.
// Values handed to the model are owned by it afterwards: callers must not
// change them.
type Service struct {
	Cluster   ClusterID
	Namespace string
	Name      string
	Type      ServiceType
	ClusterIP string
	Ports     []ServicePort

	ExternalIPs           []string
	LoadBalancerIPs       []string
	LoadBalancerHostnames []string

	// Network is the value of the topology.istio.io/network label: a non-empty
	// value makes the Service a gateway of that network.
	Network NetworkID
	// GatewayPort is the networking.istio.io/gatewayPort label; 0 means the
	// default, 15443.
	GatewayPort uint32
	// NodeSelector is the parsed traffic.istio.io/nodeSelector annotation, nil
	// when the annotation is absent.
	NodeSelector map[string]string
	// Ignored lists the gateway label and annotation values that could not
	// be parsed and were ignored, as Istio does (GatewayPort and
	// NodeSelector then hold their defaults): "label X=V: why". A gateway
	// Service's are reported as warnings of the networks report.
	Ignored []string
}

// Key identifies the Service in the cluster set.
func (s *Service) Key() ObjectKey {
	return ObjectKey{Cluster: s.Cluster, NamespacedName: NamespacedName{Namespace: s.Namespace, Name: s.Name}}
}

// EndpointPort is a port of an EndpointSlice.
type EndpointPort struct {
	Name     string
	Port     uint32
	Protocol string
}

// SliceEndpoint is one endpoint of an EndpointSlice.
type SliceEndpoint struct {
	Addresses []string
	// Ready is conditions.ready; a nil condition counts as ready, as the
	// Kubernetes API documents.
	Ready    bool
	NodeName string
	Zone     string
	// Pod is the name of the Pod in targetRef (same namespace), if any.
	Pod string
}

// EndpointSlice is what the model keeps of a discovery.k8s.io EndpointSlice.
type EndpointSlice struct {
	Cluster     ClusterID
	Namespace   string
	Name        string
	ServiceName string // label kubernetes.io/service-name
	Ports       []EndpointPort
	Endpoints   []SliceEndpoint
}

// Key identifies the EndpointSlice in the cluster set.
func (s *EndpointSlice) Key() ObjectKey {
	return ObjectKey{Cluster: s.Cluster, NamespacedName: NamespacedName{Namespace: s.Namespace, Name: s.Name}}
}

// Pod is what the model keeps of a Pod: only what decides an endpoint's
// network, identity, mTLS capability and locality.
type Pod struct {
	Cluster        ClusterID
	Namespace      string
	Name           string
	IPs            []string
	Network        NetworkID // label topology.istio.io/network
	TLSMode        string    // label security.istio.io/tlsMode
	ServiceAccount string
	NodeName       string
	// Labels are the Pod's labels, what a PeerAuthentication's selector
	// matches (see EffectiveMTLS). Read-only: shared with the watch's
	// cache.
	Labels map[string]string
}

// Key identifies the Pod in the cluster set.
func (p *Pod) Key() ObjectKey {
	return ObjectKey{Cluster: p.Cluster, NamespacedName: NamespacedName{Namespace: p.Namespace, Name: p.Name}}
}

// Node is what the model keeps of a Node.
type Node struct {
	Cluster     ClusterID
	Name        string
	Labels      map[string]string
	ExternalIPs []string
	InternalIPs []string
	// KubeletVersion is status.nodeInfo.kubeletVersion, which decides
	// native sidecars under --native-sidecars=auto.
	KubeletVersion string
}

// Namespace is what the model keeps of a Namespace: its network label.
type Namespace struct {
	Cluster ClusterID
	Name    string
	Network NetworkID
}

// ViewEndpoint is one entry of a view: an endpoint as a proxy of the view's
// network must dial it, either the endpoint itself or a gateway standing for
// endpoints of another network. Its JSON is the schema of `causeway view` and
// /debug/endpoints.
type ViewEndpoint struct {
	Address  string `json:"address"`
	Port     uint32 `json:"port"`
	Weight   uint32 `json:"weight"`
	Locality string `json:"locality"`
	// Cluster and Network are the endpoint's own; for a gateway entry, those
	// of the network (and cluster) it leads to.
	Cluster ClusterID `json:"cluster"`
	Network NetworkID `json:"network"`
	Gateway bool      `json:"gateway"`

	// TLSMode is "istio" when the entry speaks mesh mTLS (always for a
	// gateway entry); the xDS layer turns it into the endpoint metadata that
	// Istio's transport_socket_matches select on.
	TLSMode string `json:"-"`
	// Loc is Locality in parts, for EDS.
	Loc Locality `json:"-"`
}

// View is what a proxy of one network is told about one service port.
type View struct {
	// Cluster is the xDS cluster name, outbound|PORT||HOST.
	Cluster   string         `json:"cluster"`
	Network   NetworkID      `json:"network"`
	Endpoints []ViewEndpoint `json:"endpoints"`
}

// ServiceInfo is a service as the whole cluster set knows it, merged by
// hostname across clusters: what CDS, LDS and RDS are built from.
type ServiceInfo struct {
	Host      Host
	Namespace string
	Name      string
	// ClusterIPs by cluster: a proxy's routes carry the cluster IP of its own
	// cluster as a domain.
	ClusterIPs map[ClusterID]string
	// Ports merged across clusters by port number, sorted by port.
	Ports []ServicePort
	// ServiceAccounts of the service's endpoints, as NS/SA pairs, sorted and
	// distinct: the SANs a client verifies.
	ServiceAccounts []NamespacedName
}

// HasPort reports whether the service has the port, of any protocol.
func (s *ServiceInfo) HasPort(port uint32) bool {
	return slices.ContainsFunc(s.Ports, func(p ServicePort) bool { return p.Port == port })
}
