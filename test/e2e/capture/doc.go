// Package capture interprets the xDS configuration of an Envoy sidecar
// captured by iptables (INTERCEPTION_MODE REDIRECT), the way Envoy acts on
// it, so that the end-to-end test's workloads can behave as Istio's
// injected pods do without an Envoy binary:
//
//   - outbound: a connection the application opens to a destination (a
//     service's cluster IP and port, as its DNS gave it) is redirected to
//     the virtual outbound listener, which hands it (use_original_dst) to
//     the listener bound to that exact address, else to 0.0.0.0 at that
//     port, else keeps it (OutboundListener); a filter chain is chosen by
//     its match (MatchChain), its terminal filter names a cluster directly
//     (tcp_proxy) or through a route configuration (RouteCluster), and the
//     cluster's endpoints each get the transport socket their metadata
//     selects (Endpoints);
//   - inbound: a connection to the workload's port is redirected to the
//     virtual inbound listener, whose chain for that port and what the TLS
//     and HTTP inspectors saw decides whether it is accepted and with which
//     TLS parameters (ListenerAt, MatchChain, DownstreamTLSOf).
//
// It reads only the fields it understands and returns an error for any
// other that would change the outcome, so that a configuration it cannot
// judge fails the test instead of being misread. It is a test helper: it
// does not watch or cache anything.
package capture
