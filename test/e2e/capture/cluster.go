package capture

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typeUpstream = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	// transportSocketMatchKey is the endpoint metadata filter Envoy matches
	// a cluster's transport_socket_matches against.
	transportSocketMatchKey = "envoy.transport_socket_match"
)

// Endpoint is one LbEndpoint with the transport its metadata selects.
type Endpoint struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
	// TLS is nil for plaintext (raw_buffer).
	TLS *UpstreamTLS `json:"tls,omitempty"`
}

// UpstreamTLS is the part of an UpstreamTlsContext a client acts on.
type UpstreamTLS struct {
	SNI  string   `json:"sni"`
	ALPN []string `json:"alpn"`
	// SANs are the exact URI SANs the server's certificate must carry one
	// of; empty means any certificate of the mesh root.
	SANs []string `json:"sans,omitempty"`
}

// String is the endpoint in a stable, comparable form.
func (e Endpoint) String() string {
	s := e.Address + "/" + strconv.FormatUint(uint64(e.Weight), 10)
	if e.TLS != nil {
		s += "/mtls " + e.TLS.SNI
	}
	return s
}

// EDSName is the ClusterLoadAssignment a cluster of type EDS takes, or an
// error for a cluster of another type (a sidecar's PassthroughCluster is
// ORIGINAL_DST, BlackHoleCluster STATIC: neither reaches a service).
func EDSName(c *clusterv3.Cluster) (string, error) {
	if c.GetType() != clusterv3.Cluster_EDS {
		return "", fmt.Errorf("cluster %s is of type %v, not EDS: it does not reach a service's endpoints", c.GetName(), c.GetType())
	}
	return cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName()), nil
}

// Endpoints lists the healthy LbEndpoints of cla, each with the transport
// socket of c that Envoy would pick for it: the first of
// transport_socket_matches whose match is a subset of the endpoint's
// envoy.transport_socket_match metadata, else the cluster's
// transport_socket. Sorted by address.
func Endpoints(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	var eps []Endpoint
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
			ep := Endpoint{Address: net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)), Weight: 1}
			if w := lb.GetLoadBalancingWeight(); w != nil {
				ep.Weight = w.GetValue()
			}
			ts := transportSocketFor(c, lb.GetMetadata().GetFilterMetadata()[transportSocketMatchKey])
			if ts != nil && ts.GetTypedConfig().GetTypeUrl() != typeRawBuffer {
				t, err := upstreamTLSOf(ts)
				if err != nil {
					return nil, fmt.Errorf("cluster %s: %w", c.GetName(), err)
				}
				ep.TLS = t
			}
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Address, b.Address) })
	return eps, nil
}

func transportSocketFor(c *clusterv3.Cluster, md *structpb.Struct) *corev3.TransportSocket {
	for _, m := range c.GetTransportSocketMatches() {
		if isSubset(m.GetMatch(), md) {
			return m.GetTransportSocket()
		}
	}
	return c.GetTransportSocket()
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

func upstreamTLSOf(ts *corev3.TransportSocket) (*UpstreamTLS, error) {
	tc := ts.GetTypedConfig()
	if tc.GetTypeUrl() != typeUpstream {
		return nil, fmt.Errorf("transport socket of type %s, want %s or raw_buffer", tc.GetTypeUrl(), typeUpstream)
	}
	var utc tlsv3.UpstreamTlsContext
	if err := tc.UnmarshalTo(&utc); err != nil {
		return nil, fmt.Errorf("decode UpstreamTlsContext: %w", err)
	}
	out := &UpstreamTLS{SNI: utc.GetSni(), ALPN: utc.GetCommonTlsContext().GetAlpnProtocols()}
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
