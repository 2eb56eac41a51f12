// Package parity compares what two xDS servers tell the same proxy, on the
// fields Envoy acts on: it is how Causeway is held to istiod, the oracle
// (docs/parity.md).
//
// [Fetch] connects to a server over plaintext ADS (state of the world) as a
// given proxy ([Node]: the node id and metadata pilot-agent sends) and asks
// in Envoy's order: CDS, EDS for the EDS clusters, LDS, RDS for the route
// names the listeners use, acknowledging each answer. [Normalize] flattens
// the answer into facts, one path and value each (a listener's address and
// binding, each filter chain's match, terminal filter and target, transport
// sockets, each cluster's type, load balancing and transport socket
// matches, each endpoint's weight and locality, each route's target),
// with the filter chains keyed by what selects them rather than by name or
// position. [Compare] diffs two sets of facts, and a [Table] of deliberate
// differences, parsed from docs/parity.md, says which differences are
// expected and why.
package parity
