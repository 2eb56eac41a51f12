// Package debug serves Causeway's debug HTTP API (JSON) and its Prometheus
// metrics: /debug/clusters (the watched clusters and their staleness),
// /debug/networks (the model's networks report), /debug/endpoints (one
// service port as a proxy of one network sees it, the schema of `causeway
// view`), /ready and /metrics. It reads only published values: the latest
// model snapshot and the cluster set's statuses; it never touches the
// store. It is also the client side of `causeway status`.
//
// Only /ready and /metrics are served to every peer (kubelet probes and
// Prometheus reach them on the pod address). Everything else, the mesh's
// topology and Go's profiles, is served only to loopback peers (`kubectl
// port-forward` arrives on loopback) unless Config.RemoteDebug is set.
package debug

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Paths of the debug API.
const (
	PathClusters  = "/debug/clusters"
	PathNetworks  = "/debug/networks"
	PathEndpoints = "/debug/endpoints"
	PathReady     = "/ready"
	PathMetrics   = "/metrics"
	// PathPprof is the root of Go's runtime profiles (net/http/pprof), when
	// Config.Profiling is set.
	PathPprof = "/debug/pprof/"
)

// Config configures a [Server].
type Config struct {
	// Snapshot returns the latest published model snapshot, nil before the
	// first. Required.
	Snapshot func() *model.Snapshot
	// Clusters returns the state of every cluster. Required.
	Clusters func() []clusters.Status
	// Ready says whether the server is ready (its initial sync is over) and,
	// if not or if it is ready without some clusters, why. Required.
	Ready func() (ready bool, reason string)
	// Warnings, if set, returns warnings added to /debug/networks' own
	// (e.g. a refused meshNetworks).
	Warnings func() []string
	// Gatherer serves /metrics; nil serves no /metrics.
	Gatherer prometheus.Gatherer
	// Profiling serves Go's runtime profiles under PathPprof (heap, CPU,
	// goroutines: `go tool pprof http://ADDR/debug/pprof/heap`). CPU
	// profiles and traces last at most MaxProfileSeconds.
	Profiling bool
	// MaxProfileSeconds caps ?seconds= of CPU profiles, traces and delta
	// profiles; default DefaultMaxProfileSeconds.
	MaxProfileSeconds int
	// RemoteDebug serves every path to every peer. By default only
	// PathReady and PathMetrics are; the rest (topology, proxies,
	// profiles) only to loopback peers.
	RemoteDebug bool
	// Logger receives the server's logs. Required.
	Logger *slog.Logger
}

// Server is the debug HTTP handler. Further handlers (a later xDS layer's
// /debug/proxies) may be added with [Server.Handle].
type Server struct {
	cfg Config
	mux *http.ServeMux
}

var _ http.Handler = (*Server)(nil)

// New builds the debug handler.
func New(cfg Config) (*Server, error) {
	if cfg.Snapshot == nil || cfg.Clusters == nil || cfg.Ready == nil || cfg.Logger == nil {
		return nil, errors.New("debug: Config.Snapshot, Clusters, Ready and Logger are required")
	}
	if cfg.MaxProfileSeconds <= 0 {
		cfg.MaxProfileSeconds = DefaultMaxProfileSeconds
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET "+PathClusters, s.clusters)
	s.mux.HandleFunc("GET "+PathNetworks, s.networks)
	s.mux.HandleFunc("GET "+PathEndpoints, s.endpoints)
	s.mux.HandleFunc("GET "+PathReady, s.ready)
	if cfg.Gatherer != nil {
		s.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if cfg.Profiling {
		// Named profiles (heap?seconds=N) take a delta over N seconds too.
		s.mux.HandleFunc("GET "+PathPprof, s.capSeconds(pprof.Index))
		s.mux.HandleFunc("GET "+PathPprof+"cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET "+PathPprof+"profile", s.capSeconds(pprof.Profile))
		s.mux.HandleFunc("GET "+PathPprof+"symbol", pprof.Symbol)
		s.mux.HandleFunc("GET "+PathPprof+"trace", s.capSeconds(pprof.Trace))
	}
	return s, nil
}

// Handle adds a handler, as http.ServeMux.Handle does.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP serves the debug API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.RemoteDebug && !Public(r.URL.Path) && !Loopback(r.RemoteAddr) {
		s.fail(w, http.StatusForbidden, fmt.Sprintf("%s is served only to loopback peers: use kubectl port-forward (or run causeway status in the pod), or start the server with --debug-remote", r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Public reports whether a path of the debug API is served to every peer:
// the readiness probe and the metrics.
func Public(p string) bool {
	return p == PathReady || p == PathMetrics
}

// Loopback reports whether a peer address (host:port, as
// http.Request.RemoteAddr) is a loopback address.
func Loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// DefaultMaxProfileSeconds caps the seconds of a CPU profile or trace: a
// longer one would keep the profiler (and its cost) busy for as long as a
// caller asks.
const DefaultMaxProfileSeconds = 30

// capSeconds refuses a ?seconds= above Config.MaxProfileSeconds.
func (s *Server) capSeconds(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("seconds"); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n <= 0 || n > float64(s.cfg.MaxProfileSeconds) {
				s.fail(w, http.StatusBadRequest, fmt.Sprintf("seconds=%s: want a positive number of seconds up to %d (--profile-max-seconds)", v, s.cfg.MaxProfileSeconds))
				return
			}
		}
		h(w, r)
	}
}

// ClustersResponse is the body of /debug/clusters.
type ClustersResponse struct {
	Clusters []clusters.Status `json:"clusters"`
}

// ErrorResponse is the body of every error of the debug API.
type ErrorResponse struct {
	Error string `json:"error"`
}

// ReadyResponse is the body of /ready.
type ReadyResponse struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

func (s *Server) clusters(w http.ResponseWriter, _ *http.Request) {
	st := s.cfg.Clusters()
	if sn := s.cfg.Snapshot(); sn != nil {
		eps := sn.Stats().Endpoints
		for i := range st {
			if st[i].State != clusters.StateError {
				st[i].Endpoints = eps[st[i].ID]
			}
		}
	}
	s.write(w, http.StatusOK, ClustersResponse{Clusters: st})
}

func (s *Server) networks(w http.ResponseWriter, _ *http.Request) {
	sn := s.cfg.Snapshot()
	if sn == nil {
		s.fail(w, http.StatusServiceUnavailable, "no model snapshot yet: the server is starting, retry shortly")
		return
	}
	rep := sn.Networks()
	if s.cfg.Warnings != nil {
		if extra := s.cfg.Warnings(); len(extra) > 0 {
			rep.Warnings = slices.Concat(rep.Warnings, extra)
			slices.Sort(rep.Warnings)
		}
	}
	if rep.Networks == nil {
		rep.Networks = []model.NetworkReport{}
	}
	if rep.Warnings == nil {
		rep.Warnings = []string{}
	}
	s.write(w, http.StatusOK, rep)
}

const endpointsUsage = PathEndpoints + "?host=NAME.NAMESPACE.svc.cluster.local&port=PORT[&network=NETWORK][&cluster=CLUSTER]"

func (s *Server) endpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	host := model.Host(q.Get("host"))
	if host == "" {
		s.fail(w, http.StatusBadRequest, "missing host: use "+endpointsUsage)
		return
	}
	rawPort := q.Get("port")
	if rawPort == "" {
		s.fail(w, http.StatusBadRequest, "missing port: use "+endpointsUsage)
		return
	}
	port, err := strconv.ParseUint(rawPort, 10, 16)
	if err != nil || port == 0 {
		s.fail(w, http.StatusBadRequest, fmt.Sprintf("port %q is not a port number (1-65535): give the Service port, e.g. port=80", rawPort))
		return
	}
	network := model.NetworkID(q.Get("network"))
	cluster := model.ClusterID(q.Get("cluster"))

	sn := s.cfg.Snapshot()
	if sn == nil {
		s.fail(w, http.StatusServiceUnavailable, "no model snapshot yet: the server is starting, retry shortly")
		return
	}
	info := sn.Service(host)
	if info == nil {
		s.fail(w, http.StatusNotFound, fmt.Sprintf("service %s is unknown to every cluster (the host is NAME.NAMESPACE.svc.DOMAIN)", host))
		return
	}
	v, ok := sn.View(host, uint32(port), network)
	if !ok {
		ports := make([]string, 0, len(info.Ports))
		for _, p := range info.Ports {
			ports = append(ports, strconv.FormatUint(uint64(p.Port), 10))
		}
		s.fail(w, http.StatusNotFound, fmt.Sprintf("service %s has no port %d; its ports: %s", host, port, strings.Join(ports, ", ")))
		return
	}
	if cluster != "" {
		known := slices.ContainsFunc(s.cfg.Clusters(), func(st clusters.Status) bool { return st.ID == cluster && st.State != clusters.StateError })
		if !known {
			s.fail(w, http.StatusNotFound, fmt.Sprintf("cluster %s is not watched: see %s", cluster, PathClusters))
			return
		}
		v.Endpoints = slices.DeleteFunc(slices.Clone(v.Endpoints), func(e model.ViewEndpoint) bool { return e.Cluster != cluster })
	}
	if v.Endpoints == nil {
		v.Endpoints = []model.ViewEndpoint{}
	}
	s.write(w, http.StatusOK, v)
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	ok, reason := s.cfg.Ready()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	s.write(w, code, ReadyResponse{Ready: ok, Reason: reason})
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	s.write(w, code, ErrorResponse{Error: msg})
}

func (s *Server) write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.cfg.Logger.Debug("debug response not written", "err", err)
	}
}
