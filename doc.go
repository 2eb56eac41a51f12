// Package causeway is the root of Causeway, a multi-cluster, multi-network
// service-mesh control plane that keeps Istio's public conventions (labels,
// annotations, secret and config formats, xDS names).
//
// # Organization
//
// Data flows one way, and each step is its own package:
//
//	kube watch (per cluster)  ──┐
//	remote-secret watch        ├─►  model (pure)  ──changed keys──►  xds  ──►  proxies
//	MeshNetworks file/ConfigMap┘
//
// The packages, in that order:
//
//   - internal/model: the pure mesh model. Services, endpoints, networks,
//     gateways and per-network views (split-horizon EDS); every rule of
//     docs/design.md is a function here. No client-go, no gRPC. Mutations record
//     which services changed; readers take immutable snapshots.
//   - internal/kubeconv: Kubernetes API objects to model inputs (pure).
//   - internal/manifests: offline manifests (one folder per cluster) loaded
//     into a model, for `causeway view`, `causeway networks` and the embedded
//     demo.
//   - internal/kube: one watcher per cluster: client-go informers (with
//     transforms that keep only what the model reads), and an istio.io/client-go
//     PeerAuthentication informer where the cluster serves them, whose handlers
//     enqueue keys; one sync function converges the model from the caches.
//     On the config cluster only, GatewayConfigWatch reads Istio's Gateways
//     and VirtualServices into the model's GatewayConfig (what configures
//     Istio's Envoy east-west gateways; docs/eastwest-envoy.md).
//   - internal/clusters: the cluster set: the config cluster plus one cluster
//     per remote-secret entry (istio/multiCluster=true), built through an
//     injectable client factory; liveness probes and the stale-cluster policy.
//   - internal/gatewaydns: resolves gateway hostnames (LoadBalancer ingress
//     hostnames, meshNetworks addresses) for the model from a cache, looking
//     them up again on their TTL; a failure keeps the last good addresses.
//   - internal/server: wires `causeway serve`: the cluster set, MeshNetworks
//     (file or ConfigMap), the debounced publish loop that hands each new model
//     snapshot and its changed keys to the sinks (xDS), and the debug server.
//   - internal/leader: which replica of `causeway serve` writes to the
//     clusters: client-go leader election on a Lease of the config cluster,
//     and the gate the writers (the root ConfigMaps) run through.
//   - internal/debug: /debug/clusters, /debug/networks, /debug/endpoints,
//     /ready and Prometheus /metrics.
//   - internal/envoy: model values to Envoy v3 resources (pure): clusters,
//     endpoints, listeners and routes for sidecars, east-west gateways and
//     proxyless gRPC.
//   - internal/xds: the ADS server (state-of-the-world and delta, on
//     go-control-plane's protocol code): a sink of the publish loop that keeps
//     one shared, incrementally updated resource cache per (role, network,
//     cluster) view, a registry of connected proxies, and per-stream send
//     timeouts so a slow proxy never holds up the others.
//   - internal/pki: the mesh PKI (root, per-cluster intermediates, workload and
//     serving certificates, chain inspection).
//   - internal/ca: the mesh CA of `causeway serve`: plug-in cacerts or a
//     self-signed root, the root ConfigMap in every namespace of every cluster,
//     CreateCertificate authenticated by TokenReview in the caller's cluster,
//     and the control plane's own rotating serving certificate.
//   - internal/xdsauth: authentication of the secure port's ADS streams, as
//     istiod's: a gRPC interceptor checks each stream's first node against
//     the credential the CA verifies (mesh client certificate, or token
//     reviewed in the node's cluster), and counts refusals.
//   - internal/inject: the sidecar injection webhook of `causeway serve`
//     (AdmissionReview in, JSON patch out): Istio's istio-init and istio-proxy
//     as istiod's template injects them, the pod's network from the model's
//     rules, and the MutatingWebhookConfiguration with Istio's selectors.
//   - internal/gateway: `causeway gateway`, the east-west gateway: an ADS
//     client, a ClientHello peeker, and an SNI routing table swapped
//     atomically; bytes are spliced, TLS is never terminated. It also passes
//     the control plane's 15012 through (primary-remote).
//   - internal/install: `causeway manifest generate|diff`: install YAML for
//     each profile as typed objects, and object-level diffs.
//   - internal/check: `causeway check`: preflight and post-install checks
//     across the cluster set.
//   - internal/cli: the cobra command tree of the one binary, cmd/causeway.
//   - internal/testenv: the integration-test harness: real kube-apiservers
//     (built from the pinned Kubernetes modules in tools/kube) on one etcd.
//   - internal/testkit: the helpers tests share: Eventually, free loopback
//     ports, processes with bounded output stopped by SIGTERM then SIGKILL,
//     SotW and delta ADS test clients, and test CSRs.
//   - internal/testreq: the tests' policy for a missing prerequisite or
//     -short: skip outside CI, fail where integration tests are required.
//   - internal/bench and cmd/causeway-bench: the load harness of `make
//     bench`: two real clusters filled with services, `causeway serve` as its
//     own process, simulated ADS proxies, figures as JSON and a table.
//   - test/replicas: two replicas of the real `causeway serve` under churn,
//     killed and stopped in turn (bench's failover run, docs/replicas.md).
//   - test/e2e: the end-to-end proof on two network namespaces (multi-primary
//     and primary-remote, real gateways, mTLS workloads).
//   - examples: the bundled home setup (two clusters, two networks, a
//     LoadBalancer and a NodePort-only east-west gateway).
package causeway
