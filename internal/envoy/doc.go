// Package envoy translates the mesh model into Envoy v3 xDS resources, and
// an xDS client's node into a Proxy. It is pure: model values in,
// go-control-plane protos out; no server, cache, lock or global state. The
// xDS layer decides which resources a proxy gets and caches them.
//
// # What each kind of client gets
//
// A sidecar (RoleSidecar): SidecarRoute per port, Cluster and
// ClusterLoadAssignment (of its network's view) per service port, and
// listeners by how it gets its traffic (Proxy.Captured, node metadata
// INTERCEPTION_MODE). Captured by iptables (REDIRECT, TPROXY): the virtual
// listeners VirtualOutboundListener (15001) and VirtualInboundListener
// (15006), the non-binding CapturedOutboundListeners chosen by each port's
// protocol (model.PortProtocol), SniffedRoute for sniffed ports,
// CapturedClusters and an InboundCluster per port of its workload
// (WorkloadInbound). Not captured (NONE, or no mode): SidecarListeners,
// which bind their ports. docs/sidecars.md has the whole picture.
// An east-west gateway (RoleEastWestGateway): GatewayListener on 15443,
// and per service port GatewayCluster with GatewayClusterLoadAssignment of
// the model's LocalView of the gateway's own network. Istio's Envoy
// (not Proxy.CausewayGateway) gets the listeners of the Istio Gateways
// that select it instead (IstioGatewayListeners from a model.GatewayPlan:
// AUTO_PASSTHROUGH SNI listeners, PassthroughListener with
// PassthroughClusters), and IstioGatewayClusterLoadAssignment
// (docs/eastwest-envoy.md).
// A proxyless gRPC client (RoleGRPC): GRPCListener, GRPCRoute,
// GRPCCluster and GRPCClusterLoadAssignment for what it dials.
//
// # Istio's shapes we keep
//
// Names (outbound|PORT||HOST clusters and EDS resources,
// outbound_.PORT_._.HOST for SNI and the gateway's clusters, 0.0.0.0_PORT
// listeners, RDS named by port, HOST:PORT virtual hosts and gRPC
// resources), so Istio's tooling and habits carry over. Clusters as the
// home lab shows them: EDS over ADS, lifted circuit breakers, istio metadata,
// and the transport socket matches that give mesh endpoints (endpoint
// metadata tlsMode=istio) mTLS with SDS secrets "default" and "ROOTCA" from
// the bootstrap's sds-grpc cluster and the others plaintext; Istio's route
// domains, retry policy and no timeout; the east-west gateway's SNI
// passthrough with the TLS inspector and the ALPN Istio's clients offer.
// Node ids and metadata (NETWORK, CLUSTER_ID, LABELS, ROUTER_MODE,
// GENERATOR) as Istio's bootstraps write them.
//
// # What we leave out, and why
//
//   - The MetadataExchange cluster filter (a TypedStruct of a type only
//     Istio's Envoy build has; upstream Envoy rejects it) and Istio's stats
//     and telemetry filters: they feed Istio's telemetry, not routing.
//   - For sidecars that are not captured (INTERCEPTION_MODE NONE or
//     unset), the virtual listeners and any inbound listener: their
//     outbound listeners bind their port, and inbound traffic reaches the
//     workload as it is.
//   - istiod's route to a headless service's pod of another network (its
//     per-endpoint listener dials the unroutable pod address): Causeway
//     sends such a connection to a per-pod cluster (PodCluster) through
//     that network's east-west gateway, which passes the per-pod SNI to
//     that pod alone (GatewayListenerWithPods, GatewayPodCluster).
//   - The catch-all virtual host (allow_any to a passthrough cluster):
//     a host the mesh does not know gets 404, not a blind forward. (A
//     captured sidecar's non-HTTP connections to unknown destinations
//     still go to PassthroughCluster, under ALLOW_ANY.)
//   - match_subject_alt_names, deprecated in Envoy: SPIFFE ids are matched
//     as typed URI SANs (match_typed_subject_alt_names).
//   - TLS for proxyless gRPC: grpc-go accepts neither transport socket
//     matches nor SDS secrets, so its clusters are plaintext.
//
// Builders are deterministic (sorted input, deterministic typed configs) so
// that equal inputs give byte-equal resources; outputs may share
// sub-messages and must be treated as read-only.
package envoy
