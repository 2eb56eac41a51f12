package cli

import (
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/debug"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/server"
)

// serveFlags are the flags of `causeway serve`.
type serveFlags struct {
	kubeconfig         string
	clusterID          string
	systemNamespace    string
	meshNetworks       string
	meshNetworksCM     string
	meshConfig         string
	meshNetworksPoll   time.Duration
	debugAddr          string
	profiling          bool
	debugRemote        bool
	profileMaxSeconds  int
	memoryLimit        string
	sendBudget         string
	stalePolicy        string
	clusterSyncTimeout time.Duration
	probeInterval      time.Duration
	noGatewayEndpoints string
	nodePortGateways   string
	domain             string
	debounce           time.Duration
	xdsAddr            string
	trustDomain        string
	manifests          string
	xdsTLSAddr         string
	customHosts        []string
	revision           string
	workloadCertTTLMax time.Duration
	xdsLimits          xdsLimitFlags
	inject             injectFlags
	drain              drainFlags
	rotationDNS        rotationDNSFlags
	leader             leaderFlags
	kubeconfigOptions  []string
	reviewQPS          float64
	reviewBurst        int
}

// serveLong is the --help of `causeway serve`.
const serveLong = `Watch the config cluster (--kubeconfig) and every remote cluster named by a
Secret labeled istio/multiCluster=true in the system namespace (one kubeconfig
per data key, the key being the cluster id; see 'causeway remote-secret
create'), build the mesh model, and serve the debug API (JSON) and metrics on
--debug-addr: /debug/clusters, /debug/networks, /debug/endpoints, /ready,
/metrics, and Go's runtime profiles under /debug/pprof/ (--profiling). Only
/ready and /metrics are served to every peer; /debug/* only to loopback
peers (kubectl port-forward) unless --debug-remote.

Proxies connect to --xds-addr (plaintext ADS, state-of-the-world and delta).
A proxy announces its network and cluster in its node metadata (NETWORK,
CLUSTER_ID) and gets the view of every service its network can reach:
endpoints of its own network directly, other networks' endpoints through their
east-west gateways. The debug API adds /debug/proxies and
/debug/config_dump?proxy=ID&type=cds|eds|lds|rds (see 'causeway proxy-config').

The certificate authority loads the plug-in CA Secret "cacerts" of the system
namespace (reloaded when it changes) or, without one, a self-signed root kept
in the Secret "istio-ca-secret" (cross-cluster trust then needs a shared root:
see 'causeway certs'), publishes its root in the ConfigMap istio-ca-root-cert of
every namespace of every cluster, and signs workload certificates
(istio.v1.auth.IstioCertificateService/CreateCertificate) on --xds-tls-addr
for callers that present a service-account token of a known cluster. The same
port serves xDS over TLS with the control plane's own certificate, whose DNS
names are istiod.NS.svc, istiod-remote.NS.svc, istiod-REVISION.NS.svc and every
--custom-host.

The sidecar injection webhook (/inject, and /inject/cluster/C/net/N for
remote clusters) is served over HTTPS with the same certificate on
--webhook-addr: it adds Istio's istio-proxy (--proxy-image) and istio-init to
the pods a MutatingWebhookConfiguration sends it, as istiod does (see
docs/injection.md).

With --manifests DIR (one folder per cluster id of Kubernetes YAML, as for
'causeway view') no cluster is watched: the control plane serves those objects.

A cluster whose API server stops answering is shown stale and keeps its
last-known endpoints (--stale-cluster-policy=keep, the default), or loses them
after a grace (drop-after=DURATION). Startup waits for every cluster's initial
sync for at most --cluster-sync-timeout, then serves what it has.`

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane: watch every cluster and serve the mesh",
		Long:  serveLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd, &f)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// runServe runs `causeway serve`: the flags become a server.Config, the Go
// runtime gets its memory limit, and the server runs until cmd's context ends.
func runServe(cmd *cobra.Command, f *serveFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	cfg, err := f.config(cmd.Context(), log)
	if err != nil {
		return err
	}
	limit, source, err := memoryLimit(f.memoryLimit, os.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	applyMemoryLimit(limit)
	log.Info("memory limit", "bytes", limit, "from", source)
	// client-go logs through klog; its watch errors are already
	// reported per cluster, so they go to our logger at debug level.
	klog.SetSlogLogger(slog.New(demote{log.Handler()}).With("component", "client-go"))
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(cmd.Context())
}

// register adds the flags of `causeway serve` to fl.
func (f *serveFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the config cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fl.StringVar(&f.clusterID, "cluster-id", "", "id of the config cluster (required)")
	fl.StringVar(&f.systemNamespace, "system-namespace", "istio-system", "namespace of the remote secrets, the network label and the meshNetworks ConfigMap")
	fl.StringVar(&f.meshNetworks, "mesh-networks", "", "meshNetworks YAML file, reloaded when it changes")
	fl.DurationVar(&f.meshNetworksPoll, "mesh-networks-poll", server.DefaultMeshNetworksPoll, "how often --mesh-networks is checked for changes")
	fl.StringVar(&f.meshNetworksCM, "mesh-networks-configmap", "", "ConfigMap of the system namespace whose key "+server.MeshNetworksKey+" holds meshNetworks, watched")
	fl.StringVar(&f.meshConfig, "mesh-config", "", "Istio's MeshConfig YAML file (what istiod reads with --meshConfig), read at start; Causeway uses its serviceSettings[].settings.clusterLocal hosts and defaultConfig.discoveryAddress (the cluster-local hosts, whose endpoints a proxy sees only from its own cluster) and outboundTrafficPolicy.mode (REGISTRY_ONLY: a captured sidecar drops connections to destinations no service claims; default ALLOW_ANY passes them through) and discoverySelectors (label selectors on namespaces: only the Services, EndpointSlices and Pods of namespaces matching one are watched and cached, in every cluster; unset: all namespaces). Unset: Istio's defaults (kubernetes.default.svc, *.kube-system.svc and istiod.SYSTEM-NAMESPACE.svc are cluster-local)")
	fl.StringVar(&f.debugAddr, "debug-addr", server.DefaultDebugAddr, "listen address of the debug API and metrics; empty disables it. Every peer gets /ready and /metrics (probes, Prometheus); the rest (/debug/*: every cluster, endpoint and proxy of the mesh, and Go's profiles) only loopback peers, e.g. through kubectl port-forward, unless --debug-remote")
	fl.IntVar(&f.profileMaxSeconds, "profile-max-seconds", debug.DefaultMaxProfileSeconds, "longest CPU profile, trace or delta profile (?seconds=) the debug API takes; longer requests get 400")
	fl.BoolVar(&f.debugRemote, "debug-remote", false, "serve the whole debug API, topology and profiles included, to every peer that reaches --debug-addr, without authentication: only on a network you trust (it tells anyone who asks every service, endpoint and proxy of the mesh, and lets them profile the server)")
	fl.StringVar(&f.memoryLimit, "memory-limit", "auto", "soft memory limit of the Go runtime: auto (90% of the container's cgroup memory limit, if any; GOMEMLIMIT wins), none, or a size such as 512Mi")
	fl.StringVar(&f.sendBudget, "xds-send-budget", "64Mi", "bytes of large xDS responses (a first full CDS or EDS) in flight at once across all proxies, or none: bounds memory when many proxies connect together")
	fl.BoolVar(&f.profiling, "profiling", true, "serve Go's runtime profiles on the debug API (/debug/pprof/: heap, profile, goroutine), to loopback peers unless --debug-remote; CPU profiles and traces last at most --profile-max-seconds")
	fl.StringVar(&f.stalePolicy, "stale-cluster-policy", "keep", "what happens to an unreachable cluster's endpoints: keep, or drop-after=DURATION")
	fl.DurationVar(&f.clusterSyncTimeout, "cluster-sync-timeout", server.DefaultClusterSyncTimeout, "how long startup waits for every cluster's initial sync")
	fl.DurationVar(&f.probeInterval, "probe-interval", clusters.DefaultProbeInterval, "how often each API server is probed to tell live from stale")
	fl.StringVar(&f.noGatewayEndpoints, "no-gateway-endpoints", string(model.NoGatewayDrop), "endpoints of a network without gateway, seen from another network: drop, or direct (Istio's behavior)")
	fl.StringVar(&f.nodePortGateways, "nodeport-gateways", string(model.NodePortEndpoints), "nodes of a NodePort gateway: endpoints (nodes running a ready gateway pod) or selector (Istio's)")
	fl.StringVar(&f.domain, "domain", model.DefaultDomain, "cluster DNS domain of service hostnames")
	fl.DurationVar(&f.debounce, "debounce", server.DefaultDebounce, "quiet period after a change before it is published")
	fl.StringVar(&f.xdsAddr, "xds-addr", server.DefaultXDSAddr, "listen address of the plaintext xDS (ADS) server, unauthenticated: it serves every proxy's configuration to whoever reaches it; empty disables it")
	fl.StringVar(&f.trustDomain, "trust-domain", model.DefaultDomain, "SPIFFE trust domain of workload identities (spiffe://TRUST_DOMAIN/ns/NS/sa/SA)")
	fl.StringVar(&f.xdsTLSAddr, "xds-tls-addr", server.DefaultXDSTLSAddr, "listen address of the secure port: xDS over TLS, every ADS stream authenticated (a service-account token reviewed in the node's CLUSTER_ID, or a mesh client certificate), and the CA (istio.v1.auth.IstioCertificateService); empty disables it")
	fl.StringArrayVar(&f.customHosts, "custom-host", nil, "another DNS name of the control plane's serving certificate, the name proxies dial it by (Istio's ISTIOD_CUSTOM_HOST, e.g. istiod-1-11-4.istio-system.svc); repeatable")
	fl.StringVar(&f.revision, "revision", "", "control plane revision: the serving certificate also names istiod-REVISION.NAMESPACE.svc")
	fl.DurationVar(&f.workloadCertTTLMax, "workload-cert-ttl-max", ca.DefaultWorkloadTTLMax, "longest workload certificate the CA signs; longer requests are clamped to it")
	fl.Float64Var(&f.reviewQPS, "ca-token-review-qps", ca.DefaultReviewQPS, "TokenReviews per second the CA may send to each cluster's API server (token bucket); certificate requests beyond it fail at once with Unavailable and are retried by the agent. Accepted tokens are remembered 30s, refused ones 5s")
	fl.IntVar(&f.reviewBurst, "ca-token-review-burst", ca.DefaultReviewBurst, "burst of --ca-token-review-qps")
	fl.StringSliceVar(&f.kubeconfigOptions, "allow-kubeconfig-option", nil, kubeconfigOptionUsage)
	fl.StringVar(&f.manifests, "manifests", "", "serve the Kubernetes manifests of DIR (one folder per cluster id) instead of watching clusters")
	f.xdsLimits.register(fl)
	f.inject.register(fl)
	f.drain.register(fl)
	f.rotationDNS.register(fl)
	f.leader.register(fl)
}

// kubeconfigOptionUsage is the --help of --allow-kubeconfig-option.
const kubeconfigOptionUsage = `let remote secrets' kubeconfigs use an option refused by default (comma-separated or repeated): ` +
	`insecure-skip-tls-verify (the API server's certificate is not verified: anyone on the path gets the token and can answer for the cluster, including its TokenReviews, i.e. mint any workload identity of it), ` +
	`proxy-url, impersonate (as, as-groups, as-uid, as-user-extra), basic-auth (username, password, or user:password@ in the server URL), ` +
	`link-local-server (a server on 169.254.0.0/16 or fe80::/10, where cloud metadata services listen, or another metadata address or name such as metadata.google.internal). ` +
	`Exec and auth-provider plugins and paths to token, certificate, key or CA files are never allowed. See docs/security.md`
