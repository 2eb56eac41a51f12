package envoy

import (
	"cmp"
	"math"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// ClusterLoadAssignment is the EDS resource of a view, named v.Cluster: its
// endpoints grouped by locality (localities sorted by region, zone,
// subzone; endpoints keep the view's order inside each), every endpoint
// HEALTHY with its weight.
//
// An entry with TLSMode "istio" carries the metadata
// envoy.transport_socket_match {tlsMode: istio}, which selects the mTLS
// transport socket of Cluster. Each locality weighs the sum of its
// endpoints' weights: Envoy ignores locality weights unless the cluster
// asks for locality-weighted balancing (ours does not), and grpc-go, which
// always picks a locality first by its weight, then gives each endpoint
// the same share of traffic as a flat weighted pick would.
//
// A weight of 0 (never produced by the model) is sent as 1, since both
// Envoy and grpc-go reject 0. A locality's weight is capped at 2^32-1.
//
// Endpoints with tlsMode istio share one Metadata message: treat the result
// as read-only, as every resource handed to an xDS cache must be.
func ClusterLoadAssignment(v model.View) *endpointv3.ClusterLoadAssignment {
	return loadAssignment(v.Cluster, v.Endpoints)
}

// GRPCClusterLoadAssignment is ClusterLoadAssignment for proxyless gRPC
// clients. grpc-go rejects an EDS resource that lists one address twice,
// which a view does whenever a gateway stands for endpoints of several
// localities (one entry per locality, as Istio builds them). Entries of the
// same address and port are merged into the first one, in its locality,
// with their weights summed: since locality weights are the sums of their
// endpoints', each address keeps its share of traffic.
func GRPCClusterLoadAssignment(v model.View) *endpointv3.ClusterLoadAssignment {
	return loadAssignment(v.Cluster, mergeDuplicates(v.Endpoints))
}

// GatewayClusterLoadAssignment is the EDS resource of GatewayCluster for
// host and port: the endpoints of v, the model's LocalView of the
// gateway's own network, under the cluster's name outbound_.PORT_._.HOST
// (v.Cluster, the outbound|... name, is not used).
//
// Only endpoints that speak mesh mTLS (TLSMode "istio") are kept, as
// istiod keeps only tlsMode=istio endpoints behind AUTO_PASSTHROUGH: the
// gateway passes a client's TLS through unterminated, so an endpoint that
// does not terminate mesh mTLS itself (an API server, a pod without a
// sidecar) must not be reachable from other networks through it. The one
// exception is the control plane's secure port (ControlPlaneService,
// ControlPlanePort), which the gateway exposes on purpose
// (ControlPlaneListener) and which terminates TLS itself.
func GatewayClusterLoadAssignment(host model.Host, port uint32, v model.View) *endpointv3.ClusterLoadAssignment {
	eps := v.Endpoints
	if !isControlPlaneHost(host, port) {
		eps = mtlsOnly(eps)
	}
	return loadAssignment(GatewayClusterName(host, port), eps)
}

// GatewayClusterName is the name of GatewayCluster and of its EDS resource
// for host and port: the SNI a client sends to reach them through an
// east-west gateway, outbound_.PORT_._.HOST. It is the one place that rule
// lives; the xDS server names its gateway EDS resources with it.
func GatewayClusterName(host model.Host, port uint32) string {
	return model.SNI(host, port, "")
}

// mtlsOnly returns the entries of eps with TLSMode istio; eps itself when
// all are.
func mtlsOnly(eps []model.ViewEndpoint) []model.ViewEndpoint {
	keep := func(e *model.ViewEndpoint) bool { return e.TLSMode == model.TLSModeIstio }
	i := 0
	for i < len(eps) && keep(&eps[i]) {
		i++
	}
	if i == len(eps) {
		return eps
	}
	out := slices.Clone(eps[:i:i])
	for j := i + 1; j < len(eps); j++ {
		if keep(&eps[j]) {
			out = append(out, eps[j])
		}
	}
	return out
}

type addrPort struct {
	addr string
	port uint32
}

// mergeDuplicates folds entries with the same address and port into the
// first one, adding up weights. eps is returned as it is when it has no
// duplicates.
func mergeDuplicates(eps []model.ViewEndpoint) []model.ViewEndpoint {
	first := make(map[addrPort]int, len(eps))
	var out []model.ViewEndpoint
	for i := range eps {
		e := &eps[i]
		k := addrPort{e.Address, e.Port}
		j, dup := first[k]
		if !dup {
			first[k] = len(first)
			if out != nil {
				out = append(out, *e)
			}
			continue
		}
		if out == nil {
			out = slices.Clone(eps[:i:i])
		}
		out[j].Weight = uint32(min(uint64(weightOf(out[j].Weight))+uint64(weightOf(e.Weight)), math.MaxUint32))
	}
	if out == nil {
		return eps
	}
	return out
}

func weightOf(w uint32) uint32 { return max(w, 1) }

func compareLocality(a, b model.Locality) int {
	return cmp.Or(cmp.Compare(a.Region, b.Region), cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.Subzone, b.Subzone))
}

func loadAssignment(name string, eps []model.ViewEndpoint) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(eps) == 0 {
		return cla
	}

	// Order by locality, keeping the view's order inside one: a stable sort
	// of indices; each run of one locality becomes a LocalityLbEndpoints.
	order := make([]int, len(eps))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareLocality(eps[a].Loc, eps[b].Loc) })

	// The messages of the endpoints are allocated in slabs, one per type,
	// instead of one by one: EDS is rebuilt on every endpoint change.
	n := len(eps)
	var (
		lbs       = make([]endpointv3.LbEndpoint, n)
		lbPtrs    = make([]*endpointv3.LbEndpoint, n)
		hosts     = make([]endpointv3.LbEndpoint_Endpoint, n)
		endpoints = make([]endpointv3.Endpoint, n)
		addrs     = make([]corev3.Address, n)
		sockAddrs = make([]corev3.Address_SocketAddress, n)
		socks     = make([]corev3.SocketAddress, n)
		ports     = make([]corev3.SocketAddress_PortValue, n)
		weights   = make([]wrapperspb.UInt32Value, n)
		tlsIstio  *corev3.Metadata
	)
	for k, i := range order {
		e := &eps[i]
		ports[k].PortValue = e.Port
		socks[k].Address = e.Address
		socks[k].PortSpecifier = &ports[k]
		sockAddrs[k].SocketAddress = &socks[k]
		addrs[k].Address = &sockAddrs[k]
		endpoints[k].Address = &addrs[k]
		hosts[k].Endpoint = &endpoints[k]
		weights[k].Value = weightOf(e.Weight)
		lb := &lbs[k]
		lb.HostIdentifier = &hosts[k]
		lb.HealthStatus = corev3.HealthStatus_HEALTHY
		lb.LoadBalancingWeight = &weights[k]
		if e.TLSMode == model.TLSModeIstio {
			if tlsIstio == nil {
				tlsIstio = tlsModeIstioMetadata()
			}
			lb.Metadata = tlsIstio
		}
		lbPtrs[k] = lb
	}

	for start := 0; start < n; {
		loc := eps[order[start]].Loc
		end := start
		var sum uint64
		for end < n && eps[order[end]].Loc == loc {
			sum += uint64(weights[end].Value)
			end++
		}
		cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
			// grpc-go rejects a locality without its message, even empty.
			Locality:            &corev3.Locality{Region: loc.Region, Zone: loc.Zone, SubZone: loc.Subzone},
			LbEndpoints:         lbPtrs[start:end:end],
			LoadBalancingWeight: wrapperspb.UInt32(uint32(min(sum, math.MaxUint32))),
		})
		start = end
	}
	return cla
}

// tlsModeIstioMetadata is the endpoint metadata that selects Cluster's
// tlsMode-istio transport socket.
func tlsModeIstioMetadata() *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		TransportSocketMatchKey: {Fields: map[string]*structpb.Value{
			tlsModeKey: structpb.NewStringValue(model.TLSModeIstio),
		}},
	}}
}
