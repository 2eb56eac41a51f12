// Package server wires `causeway serve`: the model store, the cluster set
// (config cluster, remote secrets, staleness) or static manifests, the
// MeshNetworks source, the publish loop, the xDS server and the debug HTTP
// server. Every writer into the store
// signals the publish loop; after a short debounce the loop takes the
// store's changes and a snapshot and hands both to every [Sink] (the xDS
// layer registers one) and keeps the snapshot for the debug API. Sinks get
// their first snapshot once the initial sync of every cluster is done (or
// timed out).
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/debug"
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/gatewaydns"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/leader"
	"github.com/causeway-mesh/causeway/internal/manifests"
	"github.com/causeway-mesh/causeway/internal/meshnetworks"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/xds"
	"github.com/causeway-mesh/causeway/internal/xdsauth"
)

// Defaults of [Config].
const (
	DefaultClusterSyncTimeout = time.Minute
	DefaultMeshNetworksPoll   = 2 * time.Second
	DefaultDebugAddr          = ":15014"
	DefaultXDSAddr            = ":15010"
	DefaultXDSTLSAddr         = ":15012"
)

// Config configures a [Server].
type Config struct {
	// ClusterID is the config cluster's id (--cluster-id). Required unless
	// Manifests is set.
	ClusterID model.ClusterID
	// Local reaches the config cluster (from --kubeconfig). Required unless
	// Manifests is set.
	Local clusters.Clients
	// Manifests, when set, makes a static server: the model holds these
	// objects (one folder per cluster, `causeway serve --manifests`) and no
	// cluster is watched; it is ready at once.
	Manifests *manifests.Set
	// SystemNamespace holds remote secrets, the network label and the
	// meshNetworks ConfigMap. Default istio-system.
	SystemNamespace string
	// Model configures the store; its SystemNamespace defaults to ours.
	Model model.Config
	// MeshNetworksFile, if set, is a meshNetworks YAML file, polled for
	// changes every MeshNetworksPoll (default 2s).
	MeshNetworksFile string
	MeshNetworksPoll time.Duration
	// MeshNetworksConfigMap, if set, names a ConfigMap of SystemNamespace
	// whose key meshNetworks is watched. At most one of the two is set.
	MeshNetworksConfigMap string
	// MeshConfigFile, if set, is Istio's MeshConfig YAML (what istiod
	// reads with --meshConfig), read once by New: of it, the model uses
	// serviceSettings[].settings.clusterLocal and
	// defaultConfig.discoveryAddress (the cluster-local hosts). Unset:
	// Istio's defaults.
	MeshConfigFile string
	// DebugAddr is the debug HTTP listen address; empty: no listener (the
	// handler is still available from [Server.DebugHandler]).
	DebugAddr string
	// Profiling adds Go's runtime profiles to the debug API (/debug/pprof/).
	Profiling bool
	// DebugRemote serves the whole debug API to every peer; by default
	// only /ready and /metrics are, the rest only to loopback peers.
	DebugRemote bool
	// ProfileMaxSeconds caps the duration of CPU profiles and traces of
	// the debug API; default debug.DefaultMaxProfileSeconds.
	ProfileMaxSeconds int
	// StalePolicy, ProbeInterval, ProbeTimeout, PeerAuthRecheck and
	// NewClients configure the cluster set (see clusters.Config).
	StalePolicy     clusters.StalePolicy
	ProbeInterval   time.Duration
	ProbeTimeout    time.Duration
	PeerAuthRecheck time.Duration
	NewClients      clusters.ClientFactory
	// SwapTimeout bounds the sync of a changed remote secret's new
	// kubeconfig (see clusters.Config).
	SwapTimeout time.Duration
	// GatewayDNS configures the resolver of gateway hostnames, used unless
	// Model.Resolve is set; New fills Wanted, Changed and Logger.
	GatewayDNS gatewaydns.Config
	// ClusterSyncTimeout bounds the wait for the initial sync of every
	// cluster; after it the server serves what it has. Default 1m.
	ClusterSyncTimeout time.Duration
	// Debounce is the quiet period the publish loop waits for after a
	// change (default 5ms); MaxDebounce caps the wait under constant churn
	// (default 100ms).
	Debounce    time.Duration
	MaxDebounce time.Duration
	// Sinks receive every published snapshot, in order, after the xDS
	// server.
	Sinks []Sink
	// XDSAddr is the plaintext ADS listen address; empty: no listener (the
	// server is still available from [Server.XDS], e.g. to register on a
	// TLS gRPC server).
	XDSAddr string
	// XDS configures the xDS server; its Logger and Registerer are ours.
	XDS xds.Config
	// XDSTLSAddr is the listen address of the secure port: xDS over mTLS
	// and the CA's CreateCertificate. Empty: no secure port (the CA still
	// loads and publishes its root). A static server has no CA and no
	// secure port.
	XDSTLSAddr string
	// CA configures the certificate authority: TrustDomain, WorkloadTTLMax,
	// Revision, CustomHosts. New fills ClusterID, Client, Clusters,
	// SystemNamespace, Registry and Logger.
	CA ca.Config
	// WebhookAddr is the listen address of the sidecar injection webhook
	// (HTTPS with the secure port's certificate). Empty: none. Like the
	// secure port, it needs the CA: a static server has none.
	WebhookAddr string
	// Inject configures the injector; New fills what is empty from the
	// server's own settings and wires the model's network decision.
	Inject inject.Config
	// DrainDuration is the drain window: when Run's context ends, the xDS
	// streams are ended spread evenly over it (see docs/drain.md); zero
	// ends them all at once. `causeway serve` defaults it to
	// DefaultDrainDuration.
	DrainDuration time.Duration
	// LeaderElection elects the replica that writes to the clusters
	// (leader.go).
	LeaderElection LeaderElection
	// Logger receives the server's logs. Required.
	Logger *slog.Logger
}

// Server is a running control plane's discovery half. Create it with [New],
// run it with [Server.Run].
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *model.Store
	set      *clusters.Set
	pub      *publisher
	mn       *meshnetworks.Source
	cmWatch  *meshnetworks.ConfigMapWatch
	registry *prometheus.Registry
	debug    *debug.Server
	xds      *xds.Server
	ca       *ca.Authority
	dns      *gatewaydns.Resolver
	elector  *leader.Elector
	gate     *leader.Gate
	xdsAuth  *xdsauth.Authenticator
	// discovery is the mesh config's discoverySelectors (nil: all).
	discovery *kube.DiscoverySelector
	// static lists the clusters of a static (manifests) server; set is
	// nil then.
	static []model.ClusterID

	// listenFn opens the listener of each address (net.Listen); name says
	// which (a flag name), for tests.
	listenFn func(name, addr string) (net.Listener, error)

	// gwWatch reads Istio's Gateways and VirtualServices (gatewayconfig.go).
	gwWatch *kube.GatewayConfigWatch

	ready       atomic.Pointer[readiness]
	addrMu      sync.Mutex
	debugAddr   net.Addr
	xdsAddr     net.Addr
	xdsTLSAddr  net.Addr
	webhookAddr net.Addr
}

type readiness struct {
	ready  bool
	reason string
}

// New checks cfg and builds the server. Nothing runs until [Server.Run].
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Logger == nil:
		return nil, errors.New("server: Config.Logger is nil")
	case cfg.MeshNetworksFile != "" && cfg.MeshNetworksConfigMap != "":
		return nil, errors.New("meshNetworks: give a file or a ConfigMap, not both")
	case cfg.ClusterSyncTimeout < 0 || cfg.Debounce < 0 || cfg.MaxDebounce < 0 || cfg.MeshNetworksPoll < 0 || cfg.DrainDuration < 0:
		return nil, errors.New("server: negative duration in Config")
	}
	cfg.SystemNamespace = cmp.Or(cfg.SystemNamespace, "istio-system")
	cfg.Model.SystemNamespace = cmp.Or(cfg.Model.SystemNamespace, cfg.SystemNamespace)
	cfg.ClusterSyncTimeout = cmp.Or(cfg.ClusterSyncTimeout, DefaultClusterSyncTimeout)
	cfg.MeshNetworksPoll = cmp.Or(cfg.MeshNetworksPoll, DefaultMeshNetworksPoll)
	cfg.Debounce = cmp.Or(cfg.Debounce, DefaultDebounce)
	cfg.MaxDebounce = cmp.Or(cfg.MaxDebounce, DefaultMaxDebounce)
	cfg.MaxDebounce = max(cfg.MaxDebounce, cfg.Debounce)

	s := &Server{cfg: cfg, log: cfg.Logger, registry: prometheus.NewRegistry(), listenFn: listenTCP}
	s.ready.Store(&readiness{reason: "initial sync of the clusters in progress"})
	if err := s.newGatewayDNS(&cfg); err != nil {
		return nil, err
	}
	s.store = model.NewStore(cfg.Model)
	if cfg.MeshConfigFile != "" {
		if err := s.useMeshConfig(&cfg); err != nil {
			return nil, err
		}
	}
	xcfg := cfg.XDS
	xcfg.Logger = cfg.Logger.With("component", "xds")
	xcfg.Registerer = s.registry
	s.xds = xds.New(xcfg)
	s.pub = newPublisher(s.store, append([]Sink{s.xds}, cfg.Sinks...), cfg.Debounce, cfg.MaxDebounce)
	s.mn = meshnetworks.NewSource(s.store, s.pub.notify, cfg.Logger)

	if cfg.Manifests != nil {
		if cfg.MeshNetworksConfigMap != "" {
			return nil, errors.New("meshNetworks: a static (manifests) server watches no ConfigMap: give a file")
		}
		cfg.Manifests.Apply(s.store)
		s.static = cfg.Manifests.Clusters()
	} else if err := s.newClusterSet(); err != nil {
		return nil, err
	}
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	if err := s.newDebug(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// useMeshConfig reads the MeshConfig file of cfg into the model, the xDS
// settings of cfg and the server's discovery selector.
func (s *Server) useMeshConfig(cfg *Config) error {
	mc, err := loadMeshConfig(cfg.MeshConfigFile)
	if err != nil {
		return fmt.Errorf("%w: fix the file given to --mesh-config", err)
	}
	s.store.SetMeshConfig(mc)
	cfg.XDS = withMeshConfig(cfg.XDS, mc)
	s.discovery, err = discoverySelector(mc, cfg.Logger)
	return err
}

// registerMetrics registers the server's metrics, the publisher's, the
// model's and Go's, in its registry.
func (s *Server) registerMetrics() error {
	for _, c := range []prometheus.Collector{
		s.pub.duration, s.pub.count,
		debug.NewCollector(s.Snapshot, s.Clusters),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := s.registry.Register(c); err != nil {
			return fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return nil
}

// newDebug builds the debug server, with the CA's and leader's pages when
// the server has a CA, and the xDS server's proxies and config dumps.
func (s *Server) newDebug(cfg Config) error {
	var err error
	s.debug, err = debug.New(debug.Config{
		Snapshot:  s.Snapshot,
		Clusters:  s.Clusters,
		Ready:     s.Ready,
		Warnings:  s.warnings,
		Gatherer:  s.registry,
		Profiling: cfg.Profiling,
		Logger:    cfg.Logger,

		RemoteDebug:       cfg.DebugRemote,
		MaxProfileSeconds: cfg.ProfileMaxSeconds,
	})
	if err != nil {
		return err
	}
	if s.ca != nil {
		s.debug.Handle("/debug/ca", s.ca.DebugHandler())
		s.debug.Handle(debug.PathLeader, s.leaderHandler())
	}
	s.debug.Handle("/debug/proxies", s.xds.DebugHandler())
	s.debug.Handle("/debug/config_dump", s.xds.DebugHandler())
	return nil
}

// newClusterSet builds the watched cluster set (and the meshNetworks
// ConfigMap watch) of a server that is not static.
func (s *Server) newClusterSet() error {
	cfg := s.cfg
	var err error
	s.set, err = clusters.New(clusters.Config{
		ClusterID:       cfg.ClusterID,
		Local:           cfg.Local,
		SystemNamespace: cfg.SystemNamespace,
		Store:           s.store,
		Changed:         s.pub.notify,
		NewClients:      cfg.NewClients,
		StalePolicy:     cfg.StalePolicy,
		ProbeInterval:   cfg.ProbeInterval,
		ProbeTimeout:    cfg.ProbeTimeout,
		PeerAuthRecheck: cfg.PeerAuthRecheck,
		SwapTimeout:     cfg.SwapTimeout,
		Discovery:       s.discovery,
		Registerer:      s.registry,
		Logger:          cfg.Logger,
		OnCluster: func(ctx context.Context, id model.ClusterID, kube kubernetes.Interface) {
			s.AsLeader(ctx, func(ctx context.Context) {
				if err := s.ca.PublishRoot(ctx, id, kube); err != nil {
					cfg.Logger.Info("root ConfigMaps not published", "cluster", string(id), "err", err)
				}
			})
		},
	})
	if err != nil {
		return err
	}
	if err := s.newLeader(); err != nil {
		return err
	}
	caCfg := cfg.CA
	caCfg.Writer = cfg.LeaderElection.Identity
	caCfg.ClusterID, caCfg.Client, caCfg.SystemNamespace = cfg.ClusterID, cfg.Local.Kube, cfg.SystemNamespace
	caCfg.Clusters = s.set.Client
	caCfg.Registry, caCfg.Logger = s.registry, cfg.Logger.With("component", "ca")
	if s.ca, err = ca.New(caCfg); err != nil {
		return err
	}
	if err := s.newGatewayConfigWatch(); err != nil {
		return err
	}
	if err := s.newXDSAuth(); err != nil {
		return err
	}
	if cfg.MeshNetworksConfigMap != "" {
		s.cmWatch, err = meshnetworks.NewConfigMapWatch(s.mn, cfg.Local.Kube, cfg.SystemNamespace, cfg.MeshNetworksConfigMap)
		if err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx is done, then drains (see [Server.shutdown]) and
// returns nil. It returns an error when it cannot start (an address is
// taken, the meshNetworks file is bad, the CA does not load), or when a
// listener fails while serving: serve then stops as on SIGTERM, and the
// error names the listener and its address.
func (s *Server) Run(ctx context.Context) error {
	lns, err := s.listen()
	if err != nil {
		return err
	}
	var mnFile meshnetworks.FileState
	if s.cfg.MeshNetworksFile != "" {
		if mnFile, err = s.mn.LoadFile(s.cfg.MeshNetworksFile); err != nil {
			lns.close()
			return fmt.Errorf("%w: fix the file given to --mesh-networks", err)
		}
	}

	// The group's loops run on runCtx, which outlives ctx: the streams a
	// drain has not ended yet still get the mesh's changes. It ends once
	// the drain is over. serveCtx ends with ctx, or when a member of the
	// group fails (gctx): serving stops either way.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	serveCtx, stopServe := context.WithCancel(gctx)
	defer stopServe()
	defer context.AfterFunc(ctx, stopServe)()

	// The CA must be loaded before the secure port serves; a CA that cannot
	// load is a failed start, as in Istio.
	if s.ca != nil {
		g.Go(func() error {
			if err := s.ca.Run(runCtx); err != nil {
				return fmt.Errorf("certificate authority: %w", err)
			}
			return nil
		})
		if s.ca.WaitReady(serveCtx) != nil { // ctx ended, or the CA failed
			stopRun()
			lns.close()
			return g.Wait()
		}
	}
	srv := s.serve(g, lns)
	g.Go(func() error { s.pub.run(runCtx); return nil })
	// Leadership ends when serving does (SIGTERM): a draining replica hands
	// the writers over at once instead of after the drain window.
	g.Go(func() error { s.runLeader(serveCtx); return nil })
	if s.set != nil {
		g.Go(func() error {
			if err := s.set.Run(runCtx); err != nil {
				s.log.Info("cluster set stopped", "err", err)
			}
			return nil
		})
	}
	if s.cfg.MeshNetworksFile != "" {
		g.Go(func() error {
			s.mn.PollFile(runCtx, s.cfg.MeshNetworksFile, s.cfg.MeshNetworksPoll, mnFile)
			return nil
		})
	}
	if s.cmWatch != nil {
		g.Go(func() error { s.cmWatch.Run(runCtx); return nil })
	}
	g.Go(func() error { s.runGatewayConfigWatch(runCtx); return nil })
	if s.dns != nil {
		g.Go(func() error { s.dns.Run(runCtx); return nil })
	}

	s.waitInitialSync(serveCtx)

	<-serveCtx.Done()
	s.shutdown(srv, context.Cause(gctx))
	stopRun()
	return g.Wait()
}

// waitInitialSync waits for every cluster's initial list (and the
// meshNetworks ConfigMap), at most ClusterSyncTimeout, then opens the sinks.
func (s *Server) waitInitialSync(ctx context.Context) {
	if s.set == nil {
		s.log.Info("serving static manifests", "clusters", len(s.static))
		s.ready.Store(&readiness{ready: true})
		s.pub.openSinks()
		return
	}
	start := time.Now()
	syncCtx, cancel := context.WithTimeout(ctx, s.cfg.ClusterSyncTimeout)
	defer cancel()
	missing, err := s.set.WaitForSync(syncCtx)
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	if s.cmWatch != nil && !kube.WaitSynced(syncCtx, s.cmWatch.Done()) {
		problems = append(problems, "meshNetworks ConfigMap "+s.cfg.SystemNamespace+"/"+s.cfg.MeshNetworksConfigMap+" not read")
	}
	if ctx.Err() != nil {
		return
	}
	if len(missing) > 0 {
		ids := make([]string, len(missing))
		for i, id := range missing {
			ids[i] = string(id)
		}
		problems = append(problems, "clusters not synced: "+strings.Join(ids, ", "))
	}
	r := &readiness{ready: true}
	if len(problems) > 0 {
		r.reason = fmt.Sprintf("initial sync timed out after %v; serving without: %s", s.cfg.ClusterSyncTimeout, strings.Join(problems, "; "))
		s.log.Info("initial sync incomplete; serving what is known", "timeout", s.cfg.ClusterSyncTimeout, "missing", problems)
	} else {
		s.log.Info("initial sync done", "clusters", len(s.set.IDs()), "duration", time.Since(start).Round(time.Millisecond))
	}
	s.ready.Store(r)
	s.pub.openSinks()
}

// Snapshot returns the latest published snapshot, nil before the first.
func (s *Server) Snapshot() *model.Snapshot { return s.pub.latest.Load() }

// Ready says whether the initial sync is over and, if it is not or it timed
// out, why.
func (s *Server) Ready() (ready bool, reason string) {
	r := s.ready.Load()
	return r.ready, r.reason
}

// Clusters returns the state of every cluster.
func (s *Server) Clusters() []clusters.Status {
	if s.set != nil {
		return s.set.Statuses()
	}
	out := make([]clusters.Status, len(s.static))
	for i, id := range s.static {
		out[i] = clusters.Status{ID: id, Source: "manifests", State: clusters.StateStatic, Synced: true, Live: true}
	}
	return out
}

// XDSTLSAddr returns the secure port's listen address once Run listens, nil
// before, when XDSTLSAddr is empty, or for a static server.
func (s *Server) XDSTLSAddr() net.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.xdsTLSAddr
}

// CA returns the certificate authority, nil for a static server.
func (s *Server) CA() *ca.Authority { return s.ca }

// XDS returns the xDS server, to register on another gRPC server (the TLS
// port) before Run.
func (s *Server) XDS() *xds.Server { return s.xds }

// XDSAddr returns the plaintext xDS listen address once Run listens, nil
// before or when XDSAddr is empty.
func (s *Server) XDSAddr() net.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.xdsAddr
}

// DebugHandler returns the debug HTTP handler, to which a later layer may
// add its own pages (before Run).
func (s *Server) DebugHandler() *debug.Server { return s.debug }

// Registry returns the server's metrics registry (its own, not the global
// one), for later layers' metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// DebugAddr returns the address the debug server listens on, nil before
// Run has bound it or without a listener.
func (s *Server) DebugAddr() net.Addr {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return s.debugAddr
}

// withMeshConfig applies the mesh config's settings that the xDS server
// reads (outboundTrafficPolicy) to its configuration.
func withMeshConfig(x xds.Config, mc *model.MeshConfig) xds.Config {
	if mc.RegistryOnly {
		x.OutboundTrafficPolicy = envoy.RegistryOnly
	}
	return x
}
