// Package xds is Causeway's ADS server: it serves every connected proxy the
// resources of its view of the mesh over state-of-the-world and delta xDS.
// The protocol is go-control-plane's server (pkg/server/v3); this package
// supplies its cache and callbacks.
//
// A proxy's view is decided by its node (envoy.ParseNode): its role picks
// which resources it gets, its network which endpoints (split-horizon
// EDS), its cluster which endpoints of cluster-local hosts and which
// cluster IPs its name table (NDS) holds, its namespace and cluster which
// route domains. A type the server does not serve is answered with nothing
// (nds.go), never by ending the stream. Each resource type
// of each distinct view is one shared cache (viewCache), made when the
// first proxy of that view asks for the type; every proxy of the view
// watches the same cache, so a resource is built and marshaled once per
// view, never per proxy. Publish (the model's sink) rebuilds only what the
// changed services feed, compares it with what the view holds, and hands
// the cache only what differs; the cache answers each watching stream
// with just that (delta), or as the SotW protocol requires.
//
// Callbacks keep a registry of connected proxies (Proxies, DebugHandler,
// `causeway proxy-config`). A stream whose client stops reading is closed
// after Config.SendTimeout; no stream ever blocks the publisher or another
// stream. On shutdown, Drain refuses new streams and ends the open ones
// spread over a window (drain.go).
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// DefaultSendTimeout is how long one response may take to be accepted by a
// stream's transport before the stream is closed (Config.SendTimeout).
const DefaultSendTimeout = 30 * time.Second

// Config configures a Server.
type Config struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// TrustDomain is the SPIFFE trust domain of upstream certificates in
	// sidecar clusters; empty means cluster.local.
	TrustDomain string
	// ConnectTimeout bounds a proxy's connect to an upstream endpoint;
	// zero means envoy.DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// SendTimeout is how long sending one response on a stream may block
	// (its client stopped reading, or the connection is dead) before the
	// stream is closed and counted; zero means DefaultSendTimeout.
	SendTimeout time.Duration
	// GatewayPort is the port an east-west gateway's listener binds; zero
	// means model.DefaultGatewayPort (15443).
	GatewayPort uint32
	// SendBudget bounds the bytes of large responses (the first full CDS
	// or EDS of a large mesh) in flight at once across all streams, so
	// that many proxies connecting together do not each pin a copy; zero
	// means DefaultSendBudget, negative no bound. A response larger than
	// the budget is sent alone.
	SendBudget int64
	// ConnSendBudget bounds the bytes of the send budget that the streams
	// of one client connection hold at once, so that one connection with
	// many streams that do not read cannot take the whole budget; zero
	// means SendBudget/8 (DefaultSendBudget/8), negative no bound.
	ConnSendBudget int64
	// SendBudgetWait is how long a response may wait for its share of the
	// send budget before its stream is closed (ResourceExhausted); zero
	// means DefaultSendBudgetWait.
	SendBudgetWait time.Duration

	// MaxViews is the number of views from which a proxy that claims a
	// network or cluster the mesh does not know is refused; zero means
	// DefaultMaxViews, negative no bound.
	MaxViews int
	// ViewGrace is how long a view no stream uses is kept (a proxy that
	// reconnects finds it built) before it is freed; zero means
	// DefaultViewGrace.
	ViewGrace time.Duration

	// MaxRequestBytes bounds the size of one request message; zero means
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxRequestNames bounds the resource names of one request; zero
	// means DefaultMaxRequestNames.
	MaxRequestNames int
	// NamesCacheBytes bounds the memory of the shared resource-name lists
	// (see requestCodec); zero means DefaultNamesCacheBytes.
	NamesCacheBytes int64

	// ResendRate is how many requests per second of one type a stream may
	// have answered at once after ResendBurst (see pacer); zero means
	// DefaultResendRate, negative no pacing. ResendBurst zero means
	// DefaultResendBurst.
	ResendRate  float64
	ResendBurst int

	// Registerer, if set, receives the server's Prometheus metrics.
	Registerer prometheus.Registerer
	// OutboundTrafficPolicy is the mesh config's
	// outboundTrafficPolicy.mode: where a captured sidecar sends
	// connections to destinations no service claims. The zero value is
	// ALLOW_ANY (PassthroughCluster), Istio's default.
	OutboundTrafficPolicy envoy.OutboundTrafficPolicy
}

// Defaults of the views' lifecycle (Config.MaxViews, Config.ViewGrace).
const (
	// DefaultMaxViews: a view is one resource type of one (role, network,
	// namespace, cluster) that proxies claim; a mesh of 10 networks, 20
	// clusters and 200 namespaces of sidecars needs about
	// 200*20 (RDS) + 10*3 (EDS) + 10 views: 4,040. Past the limit, views of
	// known networks and clusters are still made.
	DefaultMaxViews = 5000
	// DefaultViewGrace keeps an unused view long enough for its proxies to
	// reconnect (a control plane restart, a rolling update of the gateway)
	// without rebuilding it.
	DefaultViewGrace = 2 * time.Minute
)

// withDefaults fills the zero fields of cfg.
func (cfg Config) withDefaults() Config {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if cfg.GatewayPort == 0 {
		cfg.GatewayPort = model.DefaultGatewayPort
	}
	if cfg.SendBudget == 0 {
		cfg.SendBudget = DefaultSendBudget
	}
	if cfg.ConnSendBudget == 0 {
		cfg.ConnSendBudget = max(cfg.SendBudget/8, largeResponse)
		if cfg.SendBudget < 0 {
			cfg.ConnSendBudget = -1
		}
	}
	if cfg.SendBudgetWait <= 0 {
		cfg.SendBudgetWait = DefaultSendBudgetWait
	}
	if cfg.MaxViews == 0 {
		cfg.MaxViews = DefaultMaxViews
	}
	if cfg.ViewGrace <= 0 {
		cfg.ViewGrace = DefaultViewGrace
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxRequestNames <= 0 {
		cfg.MaxRequestNames = DefaultMaxRequestNames
	}
	if cfg.NamesCacheBytes <= 0 {
		cfg.NamesCacheBytes = DefaultNamesCacheBytes
	}
	if cfg.ResendRate == 0 {
		cfg.ResendRate = DefaultResendRate
	}
	if cfg.ResendBurst <= 0 {
		cfg.ResendBurst = DefaultResendBurst
	}
	return cfg
}

// Server is the ADS server. It is safe for concurrent use; create it with
// New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ads     serverv3.Server
	reg     *registry
	metrics *metrics
	budget  *sendBudget
	drain   *drainer
	// versionPrefix keeps the versions of this process apart from those of
	// an earlier one a client may still quote after a reconnect.
	versionPrefix string

	// pubMu serializes Publish: view contents change only under it (and at
	// view creation, under mu).
	pubMu sync.Mutex

	// mu guards snap, ports and views. A view is created and filled under
	// it from snap, so Publish, which swaps snap under it too, sees every
	// view that was built from an older snapshot.
	mu    sync.Mutex
	snap  *model.Snapshot
	ports portIndex
	views map[viewKey]*view
	// known is the networks and clusters of a snapshot, computed when the
	// view limit is reached.
	known knownSet
}

// New returns a Server with no snapshot yet: proxies that connect before
// the first Publish get empty answers, then everything once it comes.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:           cfg,
		log:           log,
		metrics:       newMetrics(cfg.Registerer),
		versionPrefix: strconv.FormatInt(time.Now().UnixNano(), 36) + ".",
		ports:         make(portIndex),
		views:         make(map[viewKey]*view),
		drain:         newDrainer(),
	}
	s.reg = newRegistry(s.metrics)
	s.reg.onClose = s.releaseViews
	s.reg.maxNames = cfg.MaxRequestNames
	if cfg.ResendRate > 0 {
		s.reg.newPacer = func() *pacer { return newPacer(cfg.ResendRate, cfg.ResendBurst) }
	}
	s.budget = newSendBudget(cfg.SendBudget, cfg.ConnSendBudget, cfg.SendBudgetWait, s.metrics)
	// The server context only bounds go-control-plane's stream loops; a
	// stream ends with its gRPC stream (client gone, send timeout, or the
	// gRPC server stopping).
	s.ads = serverv3.NewServer(context.Background(), &viewMux{s: s}, s.reg.callbacks(),
		sotwv3.WithLogger(gcpLogger{log: log}))
	return s
}

// clusterOptions are the options of every sidecar and gRPC cluster.
func (s *Server) clusterOptions() envoy.ClusterOptions {
	return envoy.ClusterOptions{ConnectTimeout: s.cfg.ConnectTimeout, TrustDomain: s.cfg.TrustDomain}
}

// Register adds the aggregated discovery service (SotW and delta ADS) to
// gs, so that it can share a gRPC server (the CA's TLS port) with other
// services. The send timeout applies to streams of gs too: it wraps the
// streams inside the service, not through a server option. gs should be
// built with GRPCServerOptions.
func (s *Server) Register(gs *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, adsService{s: s})
}

// GRPCServerOptions are the options the gRPC server of an xDS port should
// have: keepalive pings that find dead connections (their streams end and
// their proxies leave the registry), an enforcement policy that lets
// Envoy and grpc-go send their own keepalives, and the request bounds of
// the server's Config.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// What a real proxy sends (see DefaultMaxRequestBytes); gRPC
		// answers a larger message with ResourceExhausted.
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes),
		// SotW requests' resource_names decoded once per distinct list,
		// and counted.
		serverCodecOption(newRequestCodec(codecLimits{maxNames: s.cfg.MaxRequestNames, cacheBytes: s.cfg.NamesCacheBytes, m: s.metrics})),
	}
}

// Serve serves ADS in plaintext on lis until ctx is done, then stops the
// gRPC server (ending every stream) and returns nil. It returns an error
// if serving fails. lis is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(s.GRPCServerOptions()...)
	s.Register(gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		// GracefulStop would wait for ADS streams, which never end by
		// themselves.
		gs.Stop()
		if err := <-errc; err != nil { // nil after Stop, as documented
			return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
		}
		return nil
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("serving xDS on %s: %w", lis.Addr(), err)
	}
}

// adsService is the registered ADS service: go-control-plane's, with each
// stream's sends bounded by the send timeout.
type adsService struct {
	s *Server
}

var _ discoverygrpc.AggregatedDiscoveryServiceServer = adsService{}

// StreamAggregatedResources serves a state-of-the-world ADS stream.
func (a adsService) StreamAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	ts, err := a.s.openStream(st)
	if err != nil {
		return err
	}
	defer ts.stop()
	return ts.result(a.s.ads.StreamAggregatedResources(&grpc.GenericServerStream[discoverygrpc.DiscoveryRequest, discoverygrpc.DiscoveryResponse]{ServerStream: ts}))
}

// DeltaAggregatedResources serves a delta (incremental) ADS stream.
func (a adsService) DeltaAggregatedResources(st discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	ts, err := a.s.openStream(st)
	if err != nil {
		return err
	}
	defer ts.stop()
	return ts.result(a.s.ads.DeltaAggregatedResources(&grpc.GenericServerStream[discoverygrpc.DeltaDiscoveryRequest, discoverygrpc.DeltaDiscoveryResponse]{ServerStream: ts}))
}

// openStream admits a new ADS stream and wraps it; during a drain it
// refuses it (Unavailable).
func (s *Server) openStream(st grpc.ServerStream) (*timedStream, error) {
	ds, err := s.drain.join()
	if err != nil {
		s.metrics.drained.WithLabelValues("refused").Inc()
		return nil, err
	}
	ts := s.newTimedStream(st)
	ts.drain, ts.left = ds.closing, func() { s.drain.leave(ds) }
	ts.slot.wake.drain = ds.closing
	ds.wake.Store(&ts.slot.wake)
	return ts, nil
}
