// Package model is Causeway's mesh model: pure Go, no client or network
// code. The watch layer feeds it Services, EndpointSlices, Pods, Nodes, the
// system Namespace of each cluster and Istio's meshNetworks; it decides the
// network of every endpoint, discovers every network's east-west gateways
// and answers, for a service port and a proxy's network, the split-horizon
// view that proxy must be sent (View). The rules are Istio's, made precise in
// docs and tests: network of an endpoint (network.go), meshNetworks parsing
// and validation (meshnetworks.go), gateway discovery (gateways.go), views
// and weights (view.go), the mesh config it reads (meshconfig.go) and the
// cluster-local hosts it decides (clusterlocal.go: a proxy of cluster C
// sees only C's endpoints of them, ViewIn), and the DNS name table of a
// proxy (names.go).
//
// # Incremental state
//
// A Store is written by the watchers and read by the xDS layer. Mutations
// only update the stored inputs and their indexes (pod and node to the
// slices naming them) and mark what is dirty: service names, the gateway
// set, the network rules. Work happens once per batch, when TakeChanges or
// Snapshot is called: every dirty service is rebuilt from its inputs (cost:
// its own endpoints), compared with its previous state, and only a real
// difference is recorded in Changes and stored. Gateways are rediscovered
// only when a gateway Service, its slices, a node of a cluster with NodePort
// gateways, the system namespace label or meshNetworks changed; a changed
// gateway set or weight scale, or an endpoint that moved to another network,
// makes Changes.Full. A change of the network rules rebuilds every service
// (Istio's onNetworkChanged), which is rare and compares equal for the
// services it does not move.
//
// # Snapshots
//
// Per-service state (*svcState: ServiceInfo plus the endpoints of each
// port with their network, locality and mTLS capability) is immutable once
// built. Services are kept in a persistent hash array mapped trie keyed by
// Host (hamt.go): replacing one service copies the nodes on its path (depth
// about log32 of the number of services, 3 for 5,000), so Snapshot shares
// everything else with the previous snapshot. Nodes carry the generation
// that created them; the store mutates in place only nodes of the current,
// unpublished generation, so a burst of changes between two snapshots costs
// one path copy per touched node, not one per change. Gateways, network
// rules and the small per-network aggregates are separate immutable values,
// replaced only when they change. The sorted Services list is built lazily
// once per generation of ServiceInfo values and shared by the snapshots of
// that generation. Hence Snapshot after a single-service change costs a few
// allocations and copies independent of the size of the mesh, and a
// snapshot never changes after it is returned.
package model
