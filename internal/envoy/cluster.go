package envoy

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// DefaultConnectTimeout is the upstream connect timeout when
// ClusterOptions leaves it zero (Istio's default).
const DefaultConnectTimeout = 10 * time.Second

// Names of the metadata and transport socket matches Istio uses; endpoint
// metadata (see ClusterLoadAssignment) selects the match.
const (
	// TransportSocketMatchKey is the endpoint metadata filter that Envoy
	// matches transport_socket_matches against.
	TransportSocketMatchKey = "envoy.transport_socket_match"
	tlsModeKey              = "tlsMode"
	matchTLSModeIstio       = "tlsMode-istio"
	matchTLSModeDisabled    = "tlsMode-disabled"
	istioMetadataKey        = "istio"
)

// ClusterOptions tunes the clusters built for proxies.
type ClusterOptions struct {
	// ConnectTimeout bounds connecting to an upstream endpoint; zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// TrustDomain of the SPIFFE ids an upstream certificate must carry;
	// empty means cluster.local.
	TrustDomain string
}

// Cluster is the CDS cluster a sidecar or router uses for a service port:
// outbound|PORT||HOST, endpoints over ADS, and Istio's two transport socket
// matches: mTLS with the workload certificate (SDS "default" and "ROOTCA"
// from sds-grpc, SNI outbound_.PORT_._.HOST, the SPIFFE ids of the
// service's accounts) to endpoints whose metadata says tlsMode=istio, and
// plaintext to the others.
//
// The load balancer is LEAST_REQUEST, istiod's default for a service with
// no DestinationRule: each request goes to the less loaded of two random
// endpoints, which keeps a slow endpoint from collecting a queue.
//
// Istio also puts its MetadataExchange network filter on the cluster, as a
// udpa TypedStruct of envoy.tcp.metadataexchange.config.MetadataExchange.
// That type belongs to Istio's Envoy build, not to go-control-plane, and
// upstream Envoy rejects it; it only feeds Istio's telemetry, so it is left
// out. The ALPN istio-peer-exchange is still offered, so Istio servers
// work either way.
//
// svc must not be nil.
func Cluster(svc *model.ServiceInfo, port model.ServicePort, o ClusterOptions) *clusterv3.Cluster {
	c := edsCluster(model.ClusterName(svc.Host, port.Port, ""), svc, port, o.ConnectTimeout)
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	// HTTP/2 protocols need HTTP/2 upstream; sniffed ones speak what the
	// client spoke (istiod's use_downstream_protocol).
	c.TypedExtensionProtocolOptions = protocolOptions(model.PortProtocol(port))
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name: matchTLSModeIstio,
			Match: &structpb.Struct{Fields: map[string]*structpb.Value{
				tlsModeKey: structpb.NewStringValue(model.TLSModeIstio),
			}},
			TransportSocket: &corev3.TransportSocket{
				Name:       wellknown.TransportSocketTLS,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(istioUpstreamTLS(svc, port, o.TrustDomain))},
			},
		},
		{
			Name:            matchTLSModeDisabled,
			Match:           &structpb.Struct{},
			TransportSocket: rawBuffer(),
		},
	}
	return c
}

// GRPCCluster is the CDS cluster a proxyless gRPC client uses for a service
// port: the same EDS cluster as Cluster's, without transport socket
// matches, and with Envoy's default ROUND_ROBIN (grpc-go accepts
// LEAST_REQUEST only behind an experimental switch in some releases).
// grpc-go rejects a cluster that has transport_socket_matches at
// all, and TLS from SDS secrets (it knows only certificate providers from
// its own bootstrap), so the client dials its endpoints in plaintext.
//
// svc must not be nil.
func GRPCCluster(svc *model.ServiceInfo, port model.ServicePort, o ClusterOptions) *clusterv3.Cluster {
	return edsCluster(model.ClusterName(svc.Host, port.Port, ""), svc, port, o.ConnectTimeout)
}

// GatewayCluster is the cluster an east-west gateway forwards a service
// port's connections to, named as the SNI that selects it,
// outbound_.PORT_._.HOST; its EDS resource has the same name and holds the
// gateway network's own endpoints (the model's LocalView). The gateway
// passes the client's mTLS through, so the cluster is plain TCP. A port of
// an HTTP/2 protocol (grpc, http2) carries istiod's HTTP/2 upstream
// options, as istiod's gateway clusters do; tcp_proxy ignores them.
//
// svc must not be nil.
func GatewayCluster(svc *model.ServiceInfo, port model.ServicePort) *clusterv3.Cluster {
	c := edsCluster(GatewayClusterName(svc.Host, port.Port), svc, port, 0)
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	if proto := model.PortProtocol(port); proto.IsHTTP2() {
		c.TypedExtensionProtocolOptions = protocolOptions(proto)
	}
	return c
}

// edsCluster is a cluster named name whose endpoints come over ADS under
// the same name, with Istio's circuit breakers and metadata.
func edsCluster(name string, svc *model.ServiceInfo, port model.ServicePort, timeout time.Duration) *clusterv3.Cluster {
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsConfigSource(),
			ServiceName: name,
		},
		ConnectTimeout:  durationpb.New(timeout),
		CircuitBreakers: istioCircuitBreakers(),
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			istioMetadataKey: {Fields: map[string]*structpb.Value{
				"default_original_port": structpb.NewNumberValue(float64(port.Port)),
				"services": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
					structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
						"host":      structpb.NewStringValue(string(svc.Host)),
						"name":      structpb.NewStringValue(svc.Name),
						"namespace": structpb.NewStringValue(svc.Namespace),
					}}),
				}}),
			}},
		}},
	}
}

// istioUpstreamTLS is a client sidecar's mTLS towards a mesh endpoint (or
// the east-west gateway standing for it).
func istioUpstreamTLS(svc *model.ServiceInfo, port model.ServicePort, trustDomain string) *tlsv3.UpstreamTlsContext {
	// Envoy deprecated match_subject_alt_names (what the home lab shows) for
	// match_typed_subject_alt_names; SPIFFE ids are URI SANs, so match those.
	var sans []*tlsv3.SubjectAltNameMatcher
	if len(svc.ServiceAccounts) > 0 {
		sans = make([]*tlsv3.SubjectAltNameMatcher, len(svc.ServiceAccounts))
		for i, sa := range svc.ServiceAccounts {
			sans[i] = &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{
					Exact: model.SPIFFEID(trustDomain, sa.Namespace, sa.Name),
				}},
			}
		}
	}
	return &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			// What Istio sidecars offer; the east-west gateway's filter
			// chains accept both (see GatewayListener).
			AlpnProtocols: []string{"istio-peer-exchange", "istio"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
				Name:      SecretWorkloadCert,
				SdsConfig: sdsConfigSource(),
			}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					// No accounts known (no endpoints yet): any certificate
					// of the mesh's root is accepted, as Istio does.
					DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{
						Name:      SecretRootCA,
						SdsConfig: sdsConfigSource(),
					},
				},
			},
		},
		Sni: model.SNI(svc.Host, port.Port, ""),
	}
}

// rawBuffer is the plaintext transport socket. Envoy no longer looks
// extensions up by name alone, so it carries its (empty) typed config.
func rawBuffer() *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       wellknown.TransportSocketRawBuffer,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: typed(&rawbufferv3.RawBuffer{})},
	}
}
