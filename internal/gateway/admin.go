package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves /ready (and Istio's /healthz/ready), /metrics and
// /config. /config (every route, cluster and endpoint address) is served
// only to loopback peers unless Config.AdminRemoteConfig: the admin port is
// reachable on the pod address, and a Service may publish it.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", g.serveReady)
	mux.HandleFunc("GET /healthz/ready", g.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.reg, promhttp.HandlerOpts{Registry: g.metrics.reg}))
	mux.HandleFunc("GET /config", g.serveConfig)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready", "/healthz/ready", "/metrics":
		default:
			if !g.cfg.AdminRemoteConfig && !loopbackPeer(r.RemoteAddr) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(r.URL.Path + " is served only to loopback peers: use kubectl port-forward, or start the gateway with --admin-remote-config\n"))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// loopbackPeer reports whether an http.Request.RemoteAddr is on loopback.
func loopbackPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// serveReady answers 200 once the first full configuration is applied and
// connections are accepted, 503 before that and while draining.
func (g *Gateway) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case g.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
	case !g.isReady():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("waiting for the first configuration from the control plane\n"))
	case !g.listenerFound():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("listener " + g.cfg.ListenerName + " is not in the control plane's LDS: no connection can be routed; check the gateway's network and the east-west Service's port\n"))
	default:
		_, _ = w.Write([]byte("ready\n"))
	}
}

// listenerFound reports whether the main listener's LDS listener is in the
// configuration in use.
func (g *Gateway) listenerFound() bool {
	t := g.Table()
	return t != nil && t.Listener != ""
}

func (g *Gateway) isReady() bool {
	select {
	case <-g.ready:
		return true
	default:
		return false
	}
}

// configDump is the JSON of /config: what the gateway runs with.
type configDump struct {
	Ready    bool   `json:"ready"`
	Draining bool   `json:"draining"`
	Listen   string `json:"listen"`
	// Listener is the LDS listener the gateway runs; ListenerFound says
	// whether LDS holds it.
	Listener      string      `json:"listener"`
	ListenerFound bool        `json:"listener_found"`
	Versions      Versions    `json:"versions"`
	XDS           adsStatus   `json:"xds"`
	Routes        []routeDump `json:"routes"`
	DefaultRoute  *routeDump  `json:"default_route,omitempty"`
	// ControlPlane is the control plane's listener (--expose-control-plane),
	// absent when there is none.
	ControlPlane *listenerDump `json:"control_plane,omitempty"`
	// Webhook is the webhook's listener (--expose-webhook), absent when
	// there is none.
	Webhook  *listenerDump `json:"webhook,omitempty"`
	Clusters []clusterDump `json:"clusters"`
}

// listenerDump is a listener other than the main one: where it listens,
// the LDS listener it runs and its routes (over the same clusters).
type listenerDump struct {
	Listen        string      `json:"listen"`
	Listener      string      `json:"listener"`
	ListenerFound bool        `json:"listener_found"`
	Routes        []routeDump `json:"routes"`
	DefaultRoute  *routeDump  `json:"default_route,omitempty"`
}

// routeDump is a filter chain: SNI (and ALPN) to cluster.
type routeDump struct {
	Name        string   `json:"name,omitempty"`
	ServerNames []string `json:"server_names"`
	TLS         bool     `json:"transport_tls,omitempty"`
	ALPN        []string `json:"alpn,omitempty"`
	Cluster     string   `json:"cluster"`
	// ClusterMissing: CDS holds no cluster of that name.
	ClusterMissing bool `json:"cluster_missing,omitempty"`
}

// clusterDump is a cluster with the endpoints it balances over.
type clusterDump struct {
	Name           string         `json:"name"`
	ConnectTimeout string         `json:"connect_timeout"`
	Endpoints      []endpointDump `json:"endpoints"`
	Connections    uint64         `json:"connections"`
	Active         int64          `json:"active"`
}

type endpointDump struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight"`
}

// dumpConfig describes the gateway's state and table t (may be nil) of
// the main listener, and the control plane's listener if there is one.
func (g *Gateway) dumpConfig(t *Table) configDump {
	d := configDump{
		Ready:    g.isReady(),
		Draining: g.draining.Load(),
		Listen:   g.Addr().String(),
		Listener: g.cfg.ListenerName,
		XDS:      g.ads.status.get(),
		Routes:   []routeDump{},
		Clusters: []clusterDump{},
	}
	d.ControlPlane, d.Webhook = dumpListener(g.controlPlane()), dumpListener(g.webhook())
	if t == nil {
		return d
	}
	d.ListenerFound = t.Listener != ""
	d.Versions = t.Versions
	d.Routes, d.DefaultRoute = dumpRoutes(t)
	for _, c := range t.Clusters {
		cd := clusterDump{
			Name:           c.Name,
			ConnectTimeout: c.ConnectTimeout.String(),
			Endpoints:      make([]endpointDump, len(c.Endpoints)),
			Connections:    c.stats.connections.Load(),
			Active:         c.stats.active.Load(),
		}
		for i, e := range c.Endpoints {
			cd.Endpoints[i] = endpointDump{Address: e.dial, Weight: e.Weight}
		}
		d.Clusters = append(d.Clusters, cd)
	}
	slices.SortFunc(d.Clusters, func(a, b clusterDump) int { return strings.Compare(a.Name, b.Name) })
	return d
}

// dumpRoutes describes the routes of t and its default route (nil when
// it has none).
func dumpRoutes(t *Table) ([]routeDump, *routeDump) {
	routes := make([]routeDump, 0, len(t.Routes))
	for _, r := range t.Routes {
		routes = append(routes, dumpRoute(r))
	}
	if t.Default == nil {
		return routes, nil
	}
	dr := dumpRoute(t.Default)
	return routes, &dr
}

func dumpRoute(r *Route) routeDump {
	names := r.ServerNames
	if names == nil {
		names = []string{}
	}
	return routeDump{
		Name:           r.Name,
		ServerNames:    names,
		TLS:            r.TLS,
		ALPN:           r.ALPN,
		Cluster:        r.ClusterName,
		ClusterMissing: r.Cluster == nil,
	}
}

func (g *Gateway) serveConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g.dumpConfig(g.Table())); err != nil {
		g.log.Debug("writing /config", "error", err)
	}
}

// dumpListener describes l, a listener other than the main one; nil when
// l is.
func dumpListener(l *listener) *listenerDump {
	if l == nil {
		return nil
	}
	d := &listenerDump{Listen: l.ln.Addr().String(), Listener: l.name, Routes: []routeDump{}}
	if t := l.table.Load(); t != nil {
		d.ListenerFound = t.Listener != ""
		d.Routes, d.DefaultRoute = dumpRoutes(t)
	}
	return d
}
