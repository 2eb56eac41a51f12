package parity

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Node is a proxy as pilot-agent announces it in the xDS node: the node id
// TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN and the metadata istiod reads.
type Node struct {
	// Type is "sidecar" or "router" (a gateway).
	Type string
	// IP is the pod's IP, the second field of the node id and
	// INSTANCE_IPS.
	IP        string
	Pod       string
	Namespace string
	// Domain is the cluster DNS domain; empty means cluster.local.
	Domain string
	Labels map[string]string
	// Network, ClusterID, MeshID: NETWORK, CLUSTER_ID, MESH_ID.
	Network   string
	ClusterID string
	MeshID    string
	// InterceptionMode is INTERCEPTION_MODE: REDIRECT (iptables capture),
	// TPROXY or NONE. Empty leaves it out (istiod then assumes REDIRECT).
	InterceptionMode string
	// IstioVersion is ISTIO_VERSION, the release of the proxy.
	IstioVersion   string
	ServiceAccount string
	// WorkloadName is WORKLOAD_NAME (the Deployment's name).
	WorkloadName string
	// Node is NODE_NAME, the Kubernetes node running the pod.
	Node string
	// PodPorts are the pod's container ports (POD_PORTS).
	PodPorts []PodPort
	// RouterMode is ROUTER_MODE (sni-dnat for an east-west gateway) and
	// RequestedNetworkView REQUESTED_NETWORK_VIEW; both only for routers.
	RouterMode           string
	RequestedNetworkView string
	// Extra metadata, as strings; it wins over the fields above.
	Extra map[string]string
}

// PodPort is one container port as POD_PORTS lists it.
type PodPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// ID is the node id pilot-agent sends.
func (n Node) ID() string {
	domain := n.Domain
	if domain == "" {
		domain = "cluster.local"
	}
	return n.Type + "~" + n.IP + "~" + n.Pod + "." + n.Namespace + "~" + n.Namespace + ".svc." + domain
}

// Proto is the xDS node: id, cluster (the workload name as Envoy's
// --service-cluster) and metadata.
func (n Node) Proto() *corev3.Node {
	md := map[string]*structpb.Value{}
	str := func(key, v string) {
		if v != "" {
			md[key] = structpb.NewStringValue(v)
		}
	}
	str("NAME", n.Pod)
	str("NAMESPACE", n.Namespace)
	str("INSTANCE_IPS", n.IP)
	str("NETWORK", n.Network)
	str("CLUSTER_ID", n.ClusterID)
	str("MESH_ID", n.MeshID)
	str("INTERCEPTION_MODE", n.InterceptionMode)
	str("ISTIO_VERSION", n.IstioVersion)
	str("SERVICE_ACCOUNT", n.ServiceAccount)
	str("WORKLOAD_NAME", n.WorkloadName)
	str("NODE_NAME", n.Node)
	str("ROUTER_MODE", n.RouterMode)
	str("REQUESTED_NETWORK_VIEW", n.RequestedNetworkView)
	if n.WorkloadName != "" {
		str("OWNER", "kubernetes://apis/apps/v1/namespaces/"+n.Namespace+"/deployments/"+n.WorkloadName)
	}
	if len(n.Labels) > 0 {
		labels := make(map[string]*structpb.Value, len(n.Labels))
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			labels[k] = structpb.NewStringValue(n.Labels[k])
		}
		md["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: labels})
	}
	if len(n.PodPorts) > 0 {
		// pilot-agent passes the pod's ports through as JSON text.
		data, err := json.Marshal(n.PodPorts)
		if err == nil {
			str("POD_PORTS", string(data))
		}
	}
	for k, v := range n.Extra {
		md[k] = structpb.NewStringValue(v)
	}
	cluster := n.WorkloadName
	if cluster == "" {
		cluster = n.Pod
	}
	if cluster != "" && n.Namespace != "" {
		cluster += "." + n.Namespace
	}
	return &corev3.Node{
		Id:       n.ID(),
		Cluster:  cluster,
		Metadata: &structpb.Struct{Fields: md},
	}
}

// String names the node for reports: TYPE/NAMESPACE/POD@NETWORK.
func (n Node) String() string {
	var b strings.Builder
	b.WriteString(n.Type + "/" + n.Namespace + "/" + n.Pod)
	if n.Network != "" {
		b.WriteString("@" + n.Network)
	}
	if n.InterceptionMode != "" {
		b.WriteString("(" + strings.ToLower(n.InterceptionMode) + ")")
	}
	return b.String()
}

// portString formats a port number.
func portString(p uint32) string { return strconv.FormatUint(uint64(p), 10) }
