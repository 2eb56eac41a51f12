// Package gateway is Causeway's east-west gateway (`causeway gateway`): a
// small TCP proxy that takes its configuration from the control plane over
// ADS, as Istio's east-west gateway (an Envoy in sni-dnat mode) does, and
// passes mTLS connections from other networks to the endpoints of its own
// network by the SNI of their TLS ClientHello, without terminating TLS.
//
// # How a connection goes
//
// The gateway reads the client's first bytes until it holds a complete TLS
// ClientHello (hello.go: its own parser, no crypto/tls; a hello split over
// TCP segments and TLS records is reassembled; Config.HelloTimeout bounds
// the wait). The server name and ALPN pick a filter chain of the routing
// table as Envoy's filter chain match would (table.go), the chain names a
// cluster, the cluster's smooth weighted round robin picks an endpoint
// (balancer.go), the gateway dials it, replays the bytes it read, and then
// copies bytes both ways with io.Copy between the two *net.TCPConn (splice
// on Linux), propagating half-closes. Unknown SNI, a cluster without
// endpoints, a failed dial, garbage or a ClientHello that never comes:
// the connection is closed and counted by reason.
//
// # Where the routing table comes from
//
// xds.go keeps one ADS stream (state of the world) to the control plane,
// announcing the node Istio's east-west gateways send (router~ id,
// NETWORK, CLUSTER_ID, ROUTER_MODE=sni-dnat, LABELS istio=eastwestgateway).
// It subscribes to every listener and cluster, then to the EDS resources of
// the EDS clusters. resources.go decodes and checks each response (pure);
// an accepted response yields a new immutable Table, swapped in atomically
// so that the accept path takes no lock, and is ACKed; a response the
// gateway cannot carry out faithfully (a filter chain that terminates TLS,
// matches on addresses, runs other filters; a cluster with upstream TLS or
// hash balancing) is NACKed with the reason, and the last good table stays.
// A broken stream is reopened with backoff; the gateway serves its last
// table meanwhile. Established connections never depend on the table.
//
// # What it does not do (yet)
//
// Listener filters other than the TLS inspector, network filters other
// than one tcp_proxy to one cluster, tcp_proxy idle timeouts, access logs,
// locality-weighted balancing, outlier detection and health checks are not
// implemented; the first ones are refused (NACK), the rest ignored.
//
// # Primary-remote
//
// With Config.ExposeControlPlane the gateway runs a second listener, LDS
// listener 0.0.0.0_15012 (envoy.ControlPlaneListener: any SNI to the
// control plane's Service port 15012), with the same machinery: remote
// clusters' proxies reach the primary's control plane (xDS over TLS and
// the CA) through it, their TLS untouched. With Config.ExposeWebhook it
// also runs LDS listener 0.0.0.0_15017 (envoy.ControlPlaneWebhookListener:
// any SNI to the control plane Service's port 443, the injection webhook),
// which remote clusters' API servers call. A gateway of a remote cluster
// takes its own configuration that way: Config.XDSTLS makes the ADS
// connection TLS (XDSTLSConfig: the mesh's root, the name to verify and
// send as SNI, an optional client certificate), else it is plaintext (the
// control plane's :15010).
package gateway
