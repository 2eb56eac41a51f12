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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/debug"
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/kube"
	"github.com/causeway-mesh/causeway/internal/manifests"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/xds"
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
	mn       *meshNetworksSource
	cmWatch  *configMapWatch
	registry *prometheus.Registry
	debug    *debug.Server
	xds      *xds.Server
	ca       *ca.Authority
	// discovery is the mesh config's discoverySelectors (nil: all).
	discovery *kube.DiscoverySelector
	// static lists the clusters of a static (manifests) server; set is
	// nil then.
	static []model.ClusterID

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
	case cfg.ClusterSyncTimeout < 0 || cfg.Debounce < 0 || cfg.MaxDebounce < 0 || cfg.MeshNetworksPoll < 0:
		return nil, errors.New("server: negative duration in Config")
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "istio-system"
	}
	if cfg.Model.SystemNamespace == "" {
		cfg.Model.SystemNamespace = cfg.SystemNamespace
	}
	if cfg.ClusterSyncTimeout == 0 {
		cfg.ClusterSyncTimeout = DefaultClusterSyncTimeout
	}
	if cfg.MeshNetworksPoll == 0 {
		cfg.MeshNetworksPoll = DefaultMeshNetworksPoll
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxDebounce == 0 {
		cfg.MaxDebounce = DefaultMaxDebounce
	}
	cfg.MaxDebounce = max(cfg.MaxDebounce, cfg.Debounce)

	s := &Server{cfg: cfg, log: cfg.Logger, registry: prometheus.NewRegistry()}
	s.ready.Store(&readiness{reason: "initial sync of the clusters in progress"})
	s.store = model.NewStore(cfg.Model)
	if cfg.MeshConfigFile != "" {
		mc, err := loadMeshConfig(cfg.MeshConfigFile)
		if err != nil {
			return nil, fmt.Errorf("%w: fix the file given to --mesh-config", err)
		}
		s.store.SetMeshConfig(mc)
		cfg.XDS = withMeshConfig(cfg.XDS, mc)
		if s.discovery, err = discoverySelector(mc, cfg.Logger); err != nil {
			return nil, err
		}
	}
	xcfg := cfg.XDS
	xcfg.Logger = cfg.Logger.With("component", "xds")
	xcfg.Registerer = s.registry
	s.xds = xds.New(xcfg)
	s.pub = newPublisher(s.store, append([]Sink{s.xds}, cfg.Sinks...), cfg.Debounce, cfg.MaxDebounce)
	s.mn = &meshNetworksSource{store: s.store, changed: s.pub.notify, log: cfg.Logger}

	var err error
	if cfg.Manifests != nil {
		if cfg.MeshNetworksConfigMap != "" {
			return nil, errors.New("meshNetworks: a static (manifests) server watches no ConfigMap: give a file")
		}
		cfg.Manifests.Apply(s.store)
		s.static = cfg.Manifests.Clusters()
	} else if err := s.newClusterSet(); err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{
		s.pub.duration, s.pub.count,
		debug.NewCollector(s.Snapshot, s.Clusters),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := s.registry.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	s.debug, err = debug.New(debug.Config{
		Snapshot:  s.Snapshot,
		Clusters:  s.Clusters,
		Ready:     s.Ready,
		Warnings:  s.mn.warnings,
		Gatherer:  s.registry,
		Profiling: cfg.Profiling,
		Logger:    cfg.Logger,

		RemoteDebug:       cfg.DebugRemote,
		MaxProfileSeconds: cfg.ProfileMaxSeconds,
	})
	if err != nil {
		return nil, err
	}
	if s.ca != nil {
		s.debug.Handle("/debug/ca", s.ca.DebugHandler())
	}
	s.debug.Handle("/debug/proxies", s.xds.DebugHandler())
	s.debug.Handle("/debug/config_dump", s.xds.DebugHandler())
	return s, nil
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
		Discovery:       s.discovery,
		Registerer:      s.registry,
		Logger:          cfg.Logger,
		OnCluster: func(ctx context.Context, id model.ClusterID, kube kubernetes.Interface) {
			if err := s.ca.PublishRoot(ctx, id, kube); err != nil {
				cfg.Logger.Info("root ConfigMaps not published", "cluster", string(id), "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	caCfg := cfg.CA
	caCfg.ClusterID, caCfg.Client, caCfg.SystemNamespace = cfg.ClusterID, cfg.Local.Kube, cfg.SystemNamespace
	caCfg.Clusters = s.set.Client
	caCfg.Registry, caCfg.Logger = s.registry, cfg.Logger.With("component", "ca")
	if s.ca, err = ca.New(caCfg); err != nil {
		return err
	}
	if cfg.MeshNetworksConfigMap != "" {
		s.cmWatch, err = newConfigMapWatch(s.mn, cfg.Local.Kube, cfg.SystemNamespace, cfg.MeshNetworksConfigMap)
		if err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx is done. It returns an error only when it cannot
// start (the debug address is taken, the meshNetworks file is bad); it
// returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	var ln net.Listener
	if s.cfg.DebugAddr != "" {
		var err error
		ln, err = net.Listen("tcp", s.cfg.DebugAddr)
		if err != nil {
			return fmt.Errorf("debug server: listen on %s: %w: pick another --debug-addr", s.cfg.DebugAddr, err)
		}
		s.addrMu.Lock()
		s.debugAddr = ln.Addr()
		s.addrMu.Unlock()
	}
	var xln net.Listener
	if s.cfg.XDSAddr != "" {
		var err error
		xln, err = net.Listen("tcp", s.cfg.XDSAddr)
		if err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return fmt.Errorf("xDS server: listen on %s: %w: pick another --xds-addr", s.cfg.XDSAddr, err)
		}
		s.addrMu.Lock()
		s.xdsAddr = xln.Addr()
		s.addrMu.Unlock()
	}
	var tlsLn net.Listener
	if s.cfg.XDSTLSAddr != "" && s.ca != nil {
		var err error
		if tlsLn, err = net.Listen("tcp", s.cfg.XDSTLSAddr); err != nil {
			closeAll(ln, xln)
			return fmt.Errorf("secure port: listen on %s: %w: pick another --xds-tls-addr", s.cfg.XDSTLSAddr, err)
		}
		s.addrMu.Lock()
		s.xdsTLSAddr = tlsLn.Addr()
		s.addrMu.Unlock()
	}
	wh, err := s.listenWebhook()
	if err != nil {
		closeAll(ln, xln, tlsLn)
		return err
	}
	var mnFile fileState
	if s.cfg.MeshNetworksFile != "" {
		var err error
		if mnFile, err = s.mn.loadFile(s.cfg.MeshNetworksFile); err != nil {
			closeAll(ln, xln, tlsLn, wh.listener())
			return fmt.Errorf("%w: fix the file given to --mesh-networks", err)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// The CA must be loaded before the secure port serves; a CA that cannot
	// load is a failed start, as in Istio.
	if s.ca != nil {
		caErr := make(chan error, 1)
		wg.Go(func() { caErr <- s.ca.Run(ctx) })
		caReady := make(chan error, 1)
		go func() { caReady <- s.ca.WaitReady(ctx) }()
		select {
		case err := <-caErr:
			cancel()
			wg.Wait()
			closeAll(ln, xln, tlsLn, wh.listener())
			if err == nil {
				return nil // ctx ended during the start
			}
			return fmt.Errorf("certificate authority: %w", err)
		case err := <-caReady:
			if err != nil { // ctx ended before the CA was loaded
				cancel()
				wg.Wait()
				closeAll(ln, xln, tlsLn, wh.listener())
				return nil
			}
		}
	}
	var gs *grpc.Server
	if tlsLn != nil {
		gs = grpc.NewServer(append(s.xds.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(s.ca.ServingTLSConfig())))...)
		s.ca.Register(gs)
		s.xds.Register(gs)
		s.log.Info("secure port listening (xDS over mTLS, CA)", "addr", tlsLn.Addr().String())
		wg.Go(func() {
			if err := gs.Serve(tlsLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.log.Info("secure port stopped", "err", err)
			}
		})
	}
	var whSrv *http.Server
	if wh != nil {
		whSrv = s.serveWebhook(&wg, wh)
	}
	httpSrv := &http.Server{Handler: s.debug, ReadHeaderTimeout: 5 * time.Second}
	if ln != nil {
		s.log.Info("debug server listening", "addr", ln.Addr().String())
		wg.Go(func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Info("debug server stopped", "err", err)
			}
		})
	}
	if xln != nil {
		s.log.Info("xDS server listening", "addr", xln.Addr().String())
		wg.Go(func() {
			if err := s.xds.Serve(ctx, xln); err != nil {
				s.log.Info("xDS server stopped", "err", err)
			}
		})
	}
	wg.Go(func() { s.pub.run(ctx) })
	if s.set != nil {
		wg.Go(func() {
			if err := s.set.Run(ctx); err != nil {
				s.log.Info("cluster set stopped", "err", err)
			}
		})
	}
	if s.cfg.MeshNetworksFile != "" {
		wg.Go(func() { s.mn.pollFile(ctx, s.cfg.MeshNetworksFile, s.cfg.MeshNetworksPoll, mnFile) })
	}
	if s.cmWatch != nil {
		wg.Go(func() { s.cmWatch.run(ctx) })
	}

	s.waitInitialSync(ctx)

	<-ctx.Done()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	_ = httpSrv.Shutdown(shutdownCtx)
	if whSrv != nil {
		_ = whSrv.Shutdown(shutdownCtx)
	}
	if gs != nil {
		gs.Stop() // ADS streams never end by themselves: no GracefulStop
	}
	stop()
	wg.Wait()
	return nil
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
	if s.cmWatch != nil {
		select {
		case <-s.cmWatch.done:
		case <-syncCtx.Done():
			if isClosed(s.cmWatch.done) {
				break
			}
			problems = append(problems, "meshNetworks ConfigMap "+s.cfg.SystemNamespace+"/"+s.cfg.MeshNetworksConfigMap+" not read")
		}
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

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
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

func closeAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			_ = l.Close()
		}
	}
}

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
