package envoy

import (
	"math"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// inboundPassthroughBindIPv4 is the source address a sidecar's inbound
// connections to its workload leave from: Istio's iptables rules let
// traffic from it through instead of capturing it again.
const inboundPassthroughBindIPv4 = "127.0.0.6"

// httpProtocolOptionsKey is where a cluster's upstream HTTP options go.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// maxCleanupInterval keeps an ORIGINAL_DST inbound cluster's hosts (Envoy
// would otherwise drop idle ones every 5s), as istiod does.
const maxCleanupSeconds = 315576000000

// CapturedClusters are the clusters every captured sidecar gets besides
// its services' and its workload's: PassthroughCluster (ORIGINAL_DST: the
// connection's own destination, for ALLOW_ANY), BlackHoleCluster (STATIC
// without endpoints: connections are dropped) and
// InboundPassthroughCluster (ORIGINAL_DST from 127.0.0.6, for inbound
// ports no chain names). Sorted by name.
func CapturedClusters(o ClusterOptions) []*clusterv3.Cluster {
	timeout := durationpb.New(connectTimeout(o))
	passthrough := func(name string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                          name,
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:                      clusterv3.Cluster_CLUSTER_PROVIDED,
			ConnectTimeout:                timeout,
			CircuitBreakers:               istioCircuitBreakers(),
			TypedExtensionProtocolOptions: useDownstreamProtocol(),
		}
	}
	inbound := passthrough(InboundPassthroughCluster)
	inbound.UpstreamBindConfig = inboundBind()
	return []*clusterv3.Cluster{
		{
			Name:                 BlackHoleCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
			ConnectTimeout:       timeout,
		},
		inbound,
		passthrough(PassthroughCluster),
	}
}

// InboundCluster is inbound|PORT||, which delivers a port's connections
// to the workload at their original destination (the pod's own address),
// from 127.0.0.6 so that iptables lets them through; HTTP/2 protocols
// speak HTTP/2 to the workload, sniffed ones what the client spoke.
func InboundCluster(p InboundPort, o ClusterOptions) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 InboundClusterName(p.Port),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(connectTimeout(o)),
		CleanupInterval:      &durationpb.Duration{Seconds: maxCleanupSeconds},
		CircuitBreakers:      istioCircuitBreakers(),
		UpstreamBindConfig:   inboundBind(),
	}
	c.TypedExtensionProtocolOptions = protocolOptions(p.Protocol)
	return c
}

// protocolOptions are a cluster's upstream HTTP options for proto: HTTP/2
// for HTTP/2 protocols, the downstream's protocol for sniffed ones, none
// otherwise.
func protocolOptions(proto model.Protocol) map[string]*anypb.Any {
	switch {
	case proto.IsHTTP2():
		return map[string]*anypb.Any{httpProtocolOptionsKey: typed(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		})}
	case proto.IsUnsupported():
		return useDownstreamProtocol()
	}
	return nil
}

func useDownstreamProtocol() map[string]*anypb.Any {
	return map[string]*anypb.Any{httpProtocolOptionsKey: typed(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	})}
}

func inboundBind() *corev3.BindConfig {
	return &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{
		Address:       inboundPassthroughBindIPv4,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
	}}
}

func connectTimeout(o ClusterOptions) time.Duration {
	if o.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return o.ConnectTimeout
}

// istioCircuitBreakers lift Envoy's default limits (1024) out of the way,
// as Istio does: the mesh must not drop requests a plain Kubernetes
// Service would carry.
func istioCircuitBreakers() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}}}
}
