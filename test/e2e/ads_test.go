package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// Resource type URLs of ADS, spelled out rather than taken from the code
// under test.
const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeUpstream = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	// transportSocketMatchKey is the endpoint metadata filter Envoy matches
	// a cluster's transport_socket_matches against.
	transportSocketMatchKey = "envoy.transport_socket_match"
)

// sidecarNode is the xDS node of a sidecar, as Istio's agent writes it.
type sidecarNode struct {
	IP        string `json:"ip"`
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Network   string `json:"network"`
	ClusterID string `json:"clusterID"`
}

func (n sidecarNode) proto() *corev3.Node {
	return &corev3.Node{
		Id:      "sidecar~" + n.IP + "~" + n.Pod + "." + n.Namespace + "~" + n.Namespace + ".svc.cluster.local",
		Cluster: n.Pod + "." + n.Namespace,
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NETWORK":    structpb.NewStringValue(n.Network),
			"CLUSTER_ID": structpb.NewStringValue(n.ClusterID),
			"NAMESPACE":  structpb.NewStringValue(n.Namespace),
		}},
	}
}

// upstream is what a sidecar knows about one CDS cluster once its EDS has
// come: the endpoints and how to speak to each.
type upstream struct {
	Cluster   string     `json:"cluster"`
	Endpoints []endpoint `json:"endpoints"`
}

// endpoint is one LbEndpoint with the transport its metadata selects.
type endpoint struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
	// TLS is nil for plaintext (raw_buffer).
	TLS *upstreamTLS `json:"tls,omitempty"`
}

// upstreamTLS is the part of an UpstreamTlsContext a client acts on.
type upstreamTLS struct {
	SNI  string   `json:"sni"`
	ALPN []string `json:"alpn"`
	// SANs are the exact URI SANs the server's certificate must carry one
	// of; empty means any certificate of the mesh root.
	SANs []string `json:"sans,omitempty"`
}

// String is the endpoint in a stable, comparable form.
func (e endpoint) String() string {
	s := e.Address + "/" + strconv.FormatUint(uint64(e.Weight), 10)
	if e.TLS != nil {
		s += "/mtls " + e.TLS.SNI
	}
	return s
}

// xdsServer is where a proxy takes its ADS: in plaintext (the control
// plane's 15010), or over TLS (its 15012, directly or through a primary's
// east-west gateway) when RootCertFile is set, the server's certificate
// verified against those roots for ServerName, which is also the SNI.
type xdsServer struct {
	Addr         string `json:"addr"`
	RootCertFile string `json:"rootCertFile,omitempty"`
	ServerName   string `json:"serverName,omitempty"`
}

// String names the server for messages.
func (x xdsServer) String() string {
	if x.RootCertFile == "" {
		return x.Addr
	}
	return x.Addr + " (TLS, " + x.ServerName + ")"
}

// credentials are the transport credentials of a stream to x.
func (x xdsServer) credentials() (credentials.TransportCredentials, error) {
	if x.RootCertFile == "" {
		return insecure.NewCredentials(), nil
	}
	if x.ServerName == "" {
		return nil, fmt.Errorf("ADS %s over TLS: no server name to verify the control plane's certificate for", x.Addr)
	}
	pemRoots, err := os.ReadFile(x.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("ADS %s: roots: %w", x.Addr, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemRoots) {
		return nil, fmt.Errorf("ADS %s: %s holds no PEM certificate", x.Addr, x.RootCertFile)
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, ServerName: x.ServerName, RootCAs: roots}), nil
}

// fetchUpstream opens an ADS stream (state of the world) to server as
// node, takes CDS, subscribes to the EDS of cluster, ACKs every response,
// and returns the cluster's endpoints once ready(endpoints) holds, or fails
// when ctx ends (with what it had).
func fetchUpstream(ctx context.Context, server xdsServer, node *corev3.Node, cluster string, ready func([]endpoint) bool) (*upstream, error) {
	addr := server.String()
	creds, err := server.credentials()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///"+server.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("ADS %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("ADS %s: %w", addr, err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeCluster}); err != nil {
		return nil, fmt.Errorf("ADS %s: send the CDS request: %w", addr, err)
	}
	var (
		cds     *clusterv3.Cluster
		edsName string
		last    *upstream
	)
	for {
		resp, err := stream.Recv()
		if err != nil {
			if last != nil {
				return nil, fmt.Errorf("ADS %s: %w (last EDS of %s: %v)", addr, err, cluster, last.Endpoints)
			}
			if cds == nil {
				return nil, fmt.Errorf("ADS %s: %w (CDS never named %s)", addr, err, cluster)
			}
			return nil, fmt.Errorf("ADS %s: %w (no EDS for %s yet)", addr, err, edsName)
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		switch resp.GetTypeUrl() {
		case typeCluster:
			for _, res := range resp.GetResources() {
				c := &clusterv3.Cluster{}
				if err := res.UnmarshalTo(c); err != nil {
					return nil, fmt.Errorf("ADS %s: decode a Cluster: %w", addr, err)
				}
				if c.GetName() == cluster {
					cds = c
				}
			}
			if err := stream.Send(ack); err != nil {
				return nil, fmt.Errorf("ADS %s: ACK CDS: %w", addr, err)
			}
			if cds != nil && edsName == "" {
				if cds.GetType() != clusterv3.Cluster_EDS {
					return nil, fmt.Errorf("ADS %s: cluster %s is of type %v, want EDS", addr, cluster, cds.GetType())
				}
				edsName = cmp.Or(cds.GetEdsClusterConfig().GetServiceName(), cds.GetName())
				if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeEndpoint, ResourceNames: []string{edsName}}); err != nil {
					return nil, fmt.Errorf("ADS %s: subscribe to EDS %s: %w", addr, edsName, err)
				}
			}
		case typeEndpoint:
			ack.ResourceNames = []string{edsName}
			var cla *endpointv3.ClusterLoadAssignment
			for _, res := range resp.GetResources() {
				c := &endpointv3.ClusterLoadAssignment{}
				if err := res.UnmarshalTo(c); err != nil {
					return nil, fmt.Errorf("ADS %s: decode a ClusterLoadAssignment: %w", addr, err)
				}
				if c.GetClusterName() == edsName {
					cla = c
				}
			}
			if err := stream.Send(ack); err != nil {
				return nil, fmt.Errorf("ADS %s: ACK EDS: %w", addr, err)
			}
			if cla == nil || cds == nil {
				continue
			}
			eps, err := endpointsOf(cds, cla)
			if err != nil {
				return nil, fmt.Errorf("ADS %s: %w", addr, err)
			}
			last = &upstream{Cluster: cluster, Endpoints: eps}
			if ready(eps) {
				return last, nil
			}
		default:
			// Not asked for: ACK and ignore.
			ack.ResourceNames = nil
			if err := stream.Send(ack); err != nil {
				return nil, fmt.Errorf("ADS %s: ACK %s: %w", addr, resp.GetTypeUrl(), err)
			}
		}
	}
}

// endpointsOf lists the healthy LbEndpoints of cla, each with the transport
// socket of cds that Envoy would pick for it: the first of
// transport_socket_matches whose match is a subset of the endpoint's
// envoy.transport_socket_match metadata, else the cluster's
// transport_socket. Sorted by address.
func endpointsOf(cds *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) ([]endpoint, error) {
	var eps []endpoint
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
			default:
				continue
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("an endpoint of %s has no socket address", cla.GetClusterName())
			}
			ep := endpoint{Address: hostPortString(sa.GetAddress(), sa.GetPortValue()), Weight: 1}
			if w := lb.GetLoadBalancingWeight(); w != nil {
				ep.Weight = w.GetValue()
			}
			ts := transportSocketFor(cds, lb.GetMetadata().GetFilterMetadata()[transportSocketMatchKey])
			if ts != nil && ts.GetName() == "envoy.transport_sockets.tls" {
				t, err := upstreamTLSOf(ts)
				if err != nil {
					return nil, fmt.Errorf("cluster %s: %w", cds.GetName(), err)
				}
				ep.TLS = t
			}
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return cmp.Compare(a.Address, b.Address) })
	return eps, nil
}

func hostPortString(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

func transportSocketFor(cds *clusterv3.Cluster, md *structpb.Struct) *corev3.TransportSocket {
	for _, m := range cds.GetTransportSocketMatches() {
		if isSubset(m.GetMatch(), md) {
			return m.GetTransportSocket()
		}
	}
	return cds.GetTransportSocket()
}

// isSubset reports whether every field of want is in have with an equal
// value (an empty match matches every endpoint).
func isSubset(want, have *structpb.Struct) bool {
	for k, v := range want.GetFields() {
		got, ok := have.GetFields()[k]
		if !ok || got.String() != v.String() {
			return false
		}
	}
	return true
}

func upstreamTLSOf(ts *corev3.TransportSocket) (*upstreamTLS, error) {
	tc := ts.GetTypedConfig()
	if tc.GetTypeUrl() != typeUpstream {
		return nil, fmt.Errorf("TLS transport socket of type %s, want %s", tc.GetTypeUrl(), typeUpstream)
	}
	var utc tlsv3.UpstreamTlsContext
	if err := tc.UnmarshalTo(&utc); err != nil {
		return nil, fmt.Errorf("decode UpstreamTlsContext: %w", err)
	}
	out := &upstreamTLS{SNI: utc.GetSni(), ALPN: utc.GetCommonTlsContext().GetAlpnProtocols()}
	vc := utc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
	if vc == nil {
		vc = utc.GetCommonTlsContext().GetValidationContext()
	}
	for _, m := range vc.GetMatchTypedSubjectAltNames() {
		if m.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			return nil, fmt.Errorf("SAN matcher of type %v; this client checks URI SANs only", m.GetSanType())
		}
		exact := m.GetMatcher().GetExact()
		if exact == "" {
			return nil, errors.New("a URI SAN matcher that is not exact; this client checks exact SPIFFE ids only")
		}
		out.SANs = append(out.SANs, exact)
	}
	if out.SNI == "" {
		return nil, errors.New("an istio mTLS transport socket without SNI: the east-west gateway could not route it")
	}
	return out, nil
}

// picker is Envoy's weighted round robin over a fixed endpoint list, as
// smooth weighted round robin (deterministic: over sum(weights) picks each
// endpoint is picked exactly its weight times).
type picker struct {
	eps     []endpoint
	current []int64
}

func newPicker(eps []endpoint) *picker {
	return &picker{eps: eps, current: make([]int64, len(eps))}
}

func (p *picker) next() endpoint {
	var total int64
	best := 0
	for i, ep := range p.eps {
		w := int64(max(ep.Weight, 1))
		p.current[i] += w
		total += w
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= total
	return p.eps[best]
}

// canonical is an upstream's endpoints as sorted strings, for comparisons.
func canonical(u *upstream) []string {
	out := make([]string, 0, len(u.Endpoints))
	for _, ep := range u.Endpoints {
		out = append(out, ep.String())
	}
	slices.Sort(out)
	return out
}
