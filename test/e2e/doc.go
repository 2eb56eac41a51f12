// Package e2e is the end-to-end proof of the home lab: two
// Kubernetes clusters on two L3 networks joined into one mesh, where bytes
// cross from one network to the other only through an east-west gateway and
// workload identities survive the crossing. Everything runs for real on one
// Linux machine, as root: two kube-apiservers (internal/testenv), the
// causeway binary driven through its CLI (certs, remote-secret, manifest,
// serve, gateway), and two network namespaces that stand for the two
// networks, on which both deployment models run: multi-primary and
// primary-remote.
//
// # Topology
//
//	host network namespace (loopback only)
//	  kube-apiserver cluster1, kube-apiserver cluster2, etcd
//	  causeway serve (cluster1, watches cluster2 through a remote secret)
//	  causeway serve (cluster2, watches cluster1 through a remote secret)
//	        ▲ 127.0.0.1:PORT                        ▲ 127.0.0.1:PORT
//	        │ relayed by the test                    │ relayed by the test
//	┌───────┴─────────────────────────┐    ┌─────────┴────────────────────────┐
//	│ netns NET1 (network1, cluster1) │    │ netns NET2 (network2, cluster2)  │
//	│ lo:                             │    │ lo:                              │
//	│  10.1.0.10  helloworld-v1 :5000 │    │  10.2.0.10   helloworld-v2 :5000 │
//	│  10.1.0.20  sleep (client)      │    │  10.2.0.20   sleep (client)      │
//	│  10.1.0.253 :15010 :15012 → cp1 │    │  10.2.0.253  :15010 :15012 → cp2 │
//	│  172.18.0.10:15443 gateway1     │    │  192.168.2.10:31443 gateway2     │
//	│    (LoadBalancer ingress IP)    │    │    (NodePort on node cluster2-   │
//	│                                 │    │     worker, which runs its pod)  │
//	│ veth 10.255.0.1/30 ─────────────┼────┼─ veth 10.255.0.2/30              │
//	│ route 192.168.2.10/32           │    │ route 172.18.0.10/32             │
//	│   via 10.255.0.2 src 10.255.0.1 │    │   via 10.255.0.1 src 10.255.0.2  │
//	└─────────────────────────────────┘    └──────────────────────────────────┘
//
// Only the other network's gateway address is routed; no pod address is,
// so a sidecar in network1 that dials 10.2.0.10 directly gets "network is
// unreachable", and the only way to helloworld-v2 is gateway2's NodePort.
// The route's src makes the transit address the source of cross-network
// connections, so the answer finds its way back without routing a pod
// range (a node's SNAT does the same in a real cluster).
//
// The control planes stay on the host's loopback. The test relays
// 10.N.0.253:15010 (plaintext ADS) and :15012 (the CA and xDS over TLS) of
// each namespace to its serve's loopback ports, with listeners it opens
// inside the namespace (setns on a locked thread), so that each network
// reaches its own control plane at one address, as pods reach istiod's
// Service.
//
// # Processes
//
// helloworld and sleep are this test binary re-executed under
// `ip netns exec` with a role (see roles_test.go). Both play pods with
// Istio's injected sidecar whose traffic iptables captures: their xDS nodes
// carry INTERCEPTION_MODE=REDIRECT, LABELS and POD_PORTS as pilot-agent
// sends them, and they act on the configuration the way Envoy would, as
// package capture interprets it (no Envoy binary runs here).
//
// helloworld fetches a workload certificate from its network's CA
// (CreateCertificate with a service-account token of its cluster, audience
// istio-ca) and follows its LDS (POD_PORTS: http 5000). Every connection to
// it goes through the virtual inbound listener (0.0.0.0:15006) it was sent:
// the TLS inspector's and HTTP inspector's view of the connection and its
// destination port pick a filter chain; no chain means the connection is
// closed. An mTLS chain's DownstreamTlsContext is applied as Envoy would:
// SDS default is the workload certificate, ROOTCA the mesh root, a client
// certificate required when it says so, its ALPN negotiated Envoy's way
// (none when the client offers none of them). A plaintext chain accepts the
// connection as it is. The chain must route the request to
// inbound|5000||. It answers GET /hello with its version and the client's
// SPIFFE id (none for plaintext).
//
// sleep's application calls helloworld.sample:5000, which the cluster's DNS
// answers with the Service's cluster IP; iptables hands the connection to
// the virtual outbound listener (0.0.0.0:15001, use_original_dst), which
// hands it to the listener of that original destination: the non-binding
// 0.0.0.0_5000 of the HTTP port. Its plaintext HTTP chain's connection
// manager names RDS 5000, whose virtual host for the Host header routes to
// outbound|5000||helloworld.sample.svc.cluster.local; that cluster's EDS
// endpoints are picked by weighted round robin, and for endpoints whose
// metadata selects the cluster's tlsMode-istio transport socket it speaks
// mTLS with the SNI and ALPN of the UpstreamTlsContext, its own workload
// certificate, and the server's URI SAN checked against the CDS matchers.
// It prints a JSON summary of the path the request took and what answered.
//
// # What is asserted
//
//   - from each network, helloworld v1 and v2 both answer, v2 from network1
//     through gateway2's NodePort and v1 from network2 through gateway1's
//     LoadBalancer address;
//   - each request went virtualOutbound -> 0.0.0.0_5000 -> RDS 5000 ->
//     outbound|5000||helloworld.sample.svc.cluster.local;
//   - each server saw the client's SPIFFE id (the gateway passed the TLS
//     session through untouched) and each client verified the server's;
//   - with no PeerAuthentication (PERMISSIVE), a plaintext client of the
//     same network is answered too;
//   - a mesh-wide PeerAuthentication STRICT in each cluster's istio-system
//     (Istio's CRD, the copy internal/server's PeerAuthentication test
//     installs, created before the control planes start) reaches each helloworld's virtual inbound: a
//     plaintext client is refused (its connection closed unanswered),
//     both networks' mTLS calls still answer with identities intact, and
//     PERMISSIVE again accepts plaintext;
//   - a direct dial from one network to the other's pod address fails
//     while the same dial to a local pod succeeds;
//   - SIGKILL of gateway2 makes network1's calls to v2 fail while v1 keeps
//     answering; a new gateway2 restores v2;
//   - multi-primary: the same proxy (same NETWORK and CLUSTER_ID) gets the
//     same EDS for helloworld from both control planes.
//
// # Primary-remote
//
// TestPrimaryRemote runs the same topology with one control plane: serve
// for cluster1 only (relayed at 10.1.0.253), watching cluster2 through its
// remote secret; nothing listens on 10.2.0.253. cluster1 holds the Service
// istiod (from `causeway manifest generate --profile primary`) whose
// EndpointSlice is 10.1.0.253, and gateway1 also runs the control-plane
// listener 0.0.0.0_15012 on 172.18.0.10:15012 (--expose-control-plane).
// cluster2 gets the remote profile's istiod-remote, pointed at that
// address. Everything of network2 that needs the control plane dials it
// there over TLS, verifying istiod-remote.istio-system.svc: gateway2's ADS,
// the CA calls of helloworld-v2 and sleep (cluster2 tokens, CLUSTER_ID
// metadata cluster2) and sleep's ADS (NETWORK network2, CLUSTER_ID
// cluster2). Asserted: the listener passes to the control plane; gateway2
// is configured with network2's endpoints and known to serve as cluster2's;
// network2 reaches network1 only at the gateway's two ports; another server
// name fails verification; both sleeps get their network's view and reach
// v1 and v2 with identities intact; the listener counted those connections.
//
// Run it as root with the Kubernetes binaries of tools/kube/build.sh:
//
//	CAUSEWAY_KUBE_BIN=$(tools/kube/build.sh) go test -race -count=1 -v ./test/e2e/
//
// (-run TestMultiPrimaryMultiNetwork or -run TestPrimaryRemote for one.)
//
// Without root, `ip netns` or the binaries the test is skipped, or fails
// when CI or CAUSEWAY_REQUIRE_INTEGRATION is set (testreq.SkipOrFail).
package e2e
