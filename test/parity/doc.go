// Package parity holds the parity test of issue 15: istiod, built from the
// istio.io/istio module pinned in tools/istio, is the oracle, and Causeway
// must tell Istio's own proxies what istiod tells them, on the fields Envoy
// acts on, except for the deliberate differences listed (with reasons) in
// docs/parity.md.
//
// # Topology
//
// Two kube-apiservers (internal/testenv), cluster1 on network1 and
// cluster2 on network2 (the label topology.istio.io/network on each
// istio-system), with Istio's CRDs and the same objects in both: an
// east-west gateway (a LoadBalancer Service labeled with its network, its
// pod, and Istio's cross-network Gateway with AUTO_PASSTHROUGH on 15443),
// an HTTP service (helloworld), a TCP and TLS service (tcp-echo), a service
// whose port has no name (plain), a headless service with one pod per
// cluster (db), the sleep client, the API server's endpoint of
// kubernetes.default (cluster-local, no mesh mTLS), and PeerAuthentications: STRICT mesh-wide,
// PERMISSIVE in namespace permissive, DISABLE for the workload legacy.
// cluster1 also runs legacy and, in namespace permissive, httpbin.
//
// One istiod and one `causeway serve` run for cluster1, each reading
// cluster2 through the same remote secret (istio/multiCluster=true in
// cluster1's istio-system): istiod's primary-remote shape, the least CPU
// that still serves proxies of both networks and clusters. Istio's own
// objects (PeerAuthentication, Gateway) are applied to both clusters, as a
// multi-primary mesh keeps them, so that a control plane that reads them
// from every cluster and one that reads the config cluster's agree.
//
// # What is compared
//
// For each proxy, [parity.Fetch] asks both servers for CDS, EDS, LDS and
// RDS as Envoy does, with the node metadata pilot-agent sends, and
// [parity.Normalize] reduces both answers to the facts Envoy acts on. The
// proxies: sleep in each network (captured, INTERCEPTION_MODE=REDIRECT),
// legacy (DISABLE), httpbin (PERMISSIVE) and the east-west gateway of each
// network (ROUTER_MODE=sni-dnat). Then both servers are restarted with the
// mesh config's outboundTrafficPolicy REGISTRY_ONLY and the sleeps are
// compared again.
//
// Every difference must match a row of the table of deliberate
// differences in docs/parity.md, or of its table of known gaps (tolerated,
// reported apart); the test prints the full normalized diff, grouped by
// proxy and kind, and fails on any difference no row explains, and on a
// known gap that matches nothing (closed: delete its row).
// CAUSEWAY_PARITY_REPORT=FILE also writes the report to FILE.
//
// Run it with the Kubernetes binaries and istiod built:
//
//	CAUSEWAY_KUBE_BIN=$(tools/kube/build.sh) CAUSEWAY_ISTIO_BIN=$(tools/istio/build.sh) \
//	  go test -count=1 -v -run TestParityWithIstiod ./test/parity/
package parity
