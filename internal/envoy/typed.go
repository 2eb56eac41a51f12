package envoy

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Names shared with the bootstrap of Istio's proxies: the SDS cluster its
// pilot-agent serves and the secrets it hands out there.
const (
	// SDSClusterName is the bootstrap cluster through which Envoy fetches
	// its certificates (pilot-agent's SDS server on a Unix socket).
	SDSClusterName = "sds-grpc"
	// SecretWorkloadCert is the SDS secret holding the workload's
	// certificate and key.
	SecretWorkloadCert = "default"
	// SecretRootCA is the SDS secret holding the mesh's root certificates.
	SecretRootCA = "ROOTCA"
)

// OutboundListenerName is the name Istio gives a listener on every address
// at port: 0.0.0.0_PORT. Sidecar outbound listeners and the east-west
// gateway's listener carry it.
func OutboundListenerName(port uint32) string {
	return "0.0.0.0_" + strconv.FormatUint(uint64(port), 10)
}

// SidecarRouteName is the RDS resource a sidecar's outbound listener on
// port refers to: the port number alone, as Istio names it.
func SidecarRouteName(port uint32) string {
	return strconv.FormatUint(uint64(port), 10)
}

// hostPort renders HOST:PORT (the host is a DNS name, never an IPv6
// literal, so it needs no brackets).
func hostPort(host string, port uint32) string {
	return host + ":" + strconv.FormatUint(uint64(port), 10)
}

// typed wraps m for a typed_config field, deterministically marshaled so
// that equal configs give equal bytes (xDS caches compare resources).
//
// Marshaling fails only on a string that is not valid UTF-8. Every string
// put into a typed config here comes from Kubernetes object names (DNS
// names, plain ASCII) or constants, so this cannot happen with what the
// model hands out; should it happen anyway, the config is left empty with
// its type kept: the proxy then rejects the resource and names it, instead
// of the control plane crashing for every proxy.
func typed(m proto.Message) *anypb.Any {
	a := new(anypb.Any)
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		a.TypeUrl = anyTypeURLPrefix + string(m.ProtoReflect().Descriptor().FullName())
		a.Value = nil
	}
	return a
}

const anyTypeURLPrefix = "type.googleapis.com/"

// adsConfigSource points a resource (EDS of a cluster, RDS of a listener)
// at the ADS stream the proxy already has, with no initial fetch timeout:
// the home lab's eds_config and Istio's RDS config source.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		InitialFetchTimeout:   durationpb.New(0),
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// sdsConfigSource points an SDS secret at the bootstrap's sds-grpc cluster
// (not at ADS: pilot-agent, not the control plane, serves certificates).
func sdsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{
			ApiConfigSource: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: SDSClusterName},
					},
				}},
				SetNodeOnFirstMessageOnly: true,
			},
		},
		InitialFetchTimeout: durationpb.New(0),
		ResourceApiVersion:  corev3.ApiVersion_V3,
	}
}

// socketAddress is a TCP address.
func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}
