package xds

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// kind is what one shared cache holds: which builder fills it.
type kind uint8

const (
	// kindEmpty: a type the proxy's role is not served (a plain router's
	// listeners, a gateway's routes); always empty.
	kindEmpty kind = iota
	kindSidecarCDS
	kindGRPCCDS
	kindGatewayCDS
	kindSidecarEDS
	kindGRPCEDS
	kindGatewayEDS
	kindSidecarLDS
	kindGRPCLDS
	kindGatewayLDS
	kindSidecarRDS
	kindGRPCRDS
	kindSidecarNDS
	// kindCapturedCDS and kindCapturedLDS: a captured sidecar's (see
	// envoy.Proxy.Captured) clusters and listeners.
	kindCapturedCDS
	kindCapturedLDS
)

var kindNames = [...]string{
	kindEmpty: "empty", kindSidecarCDS: "sidecar-cds", kindGRPCCDS: "grpc-cds", kindGatewayCDS: "gateway-cds",
	kindSidecarEDS: "sidecar-eds", kindGRPCEDS: "grpc-eds", kindGatewayEDS: "gateway-eds",
	kindSidecarLDS: "sidecar-lds", kindGRPCLDS: "grpc-lds", kindGatewayLDS: "gateway-lds",
	kindSidecarRDS: "sidecar-rds", kindGRPCRDS: "grpc-rds", kindSidecarNDS: "sidecar-nds",
	kindCapturedCDS: "captured-cds", kindCapturedLDS: "captured-lds",
}

func (k kind) String() string { return kindNames[k] }

func (k kind) isEDS() bool { return k == kindSidecarEDS || k == kindGRPCEDS || k == kindGatewayEDS }

// viewKey identifies a shared cache: a type, the builder, and exactly the
// parts of the proxy the builder reads. Proxies with equal keys get the
// same resources and share the cache.
type viewKey struct {
	typeURL string
	kind    kind
	// network: EDS, sidecar NDS, captured CDS and LDS and the gateway's
	// (headless services' per-pod resources depend on it).
	network   model.NetworkID
	namespace string // sidecar RDS, captured LDS (the workload's)
	// cluster: sidecar RDS, sidecar NDS, captured LDS (VIPs,
	// PeerAuthentications), and EDS (cluster-local hosts show only the
	// proxy's own cluster's endpoints).
	cluster model.ClusterID
	// interception: captured LDS (TPROXY listeners are transparent).
	interception envoy.InterceptionMode
	// inbound: captured CDS and LDS, the workload's ports and protocols
	// (modes unset: the LDS view decides them from the snapshot's
	// PeerAuthentications, which change without the proxy changing).
	inbound envoy.InboundKey
	// labels: captured LDS, the workload's labels (see labelsKey); an
	// Istio gateway's LDS and CDS, the labels Istio's Gateways select by.
	labels string
	// istioGW: the gateway kinds of Istio's Envoy (not Causeway's own
	// gateway, envoy.Proxy.CausewayGateway): Istio's Gateways decide its
	// listeners (gateway_istio.go).
	istioGW bool
}

func (k viewKey) String() string {
	return fmt.Sprintf("%s network=%q namespace=%q cluster=%q interception=%q inbound=%q labels=%q istio_gateway=%t",
		k.kind, k.network, k.namespace, k.cluster, k.interception, k.inbound, k.labels, k.istioGW)
}

// inboundOf is the ports of a captured sidecar's workload: its pod's TCP
// container ports (POD_PORTS) with their protocols, modes unset.
func inboundOf(p *envoy.Proxy) envoy.InboundKey {
	return envoy.WorkloadInbound(p, func(uint32) model.MTLSMode { return model.MTLSUnset }).Key()
}

// labelsKey encodes labels as a comparable string: sorted key=value pairs,
// NUL-separated (neither a label key nor a value holds NUL).
func labelsKey(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
	}
	return b.String()
}

// parseLabelsKey decodes labelsKey.
func parseLabelsKey(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	for kv := range strings.SplitSeq(s, "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// keyFor returns the cache a proxy's requests of typeURL are served from;
// ok is false for a type the server does not serve (viewOf answers it
// with nothing; see unknownView).
func keyFor(p envoy.Proxy, typeURL string) (viewKey, bool) {
	k := viewKey{typeURL: typeURL}
	switch typeURL {
	case resource.ClusterType:
		switch p.Role {
		case envoy.RoleGRPC:
			k.kind = kindGRPCCDS
		case envoy.RoleEastWestGateway:
			k.kind, k.network = kindGatewayCDS, p.Network
			k.setIstioGateway(&p)
		default:
			k.kind = kindSidecarCDS
			if p.Captured() {
				k.kind, k.inbound, k.network = kindCapturedCDS, inboundOf(&p), p.Network
			}
		}
	case resource.EndpointType:
		k.network, k.cluster = p.Network, p.Cluster
		switch p.Role {
		case envoy.RoleGRPC:
			k.kind = kindGRPCEDS
		case envoy.RoleEastWestGateway:
			k.kind, k.istioGW = kindGatewayEDS, !p.CausewayGateway
		default:
			k.kind = kindSidecarEDS
		}
	case resource.ListenerType:
		switch p.Role {
		case envoy.RoleSidecar:
			k.kind = kindSidecarLDS
			if p.Captured() {
				k.kind, k.cluster, k.interception, k.inbound = kindCapturedLDS, p.Cluster, p.Interception, inboundOf(&p)
				k.namespace, k.labels, k.network = p.Namespace, labelsKey(p.Labels), p.Network
			}
		case envoy.RoleGRPC:
			k.kind = kindGRPCLDS
		case envoy.RoleEastWestGateway:
			k.kind, k.network = kindGatewayLDS, p.Network
			k.setIstioGateway(&p)
		}
	case resource.RouteType:
		switch p.Role {
		case envoy.RoleSidecar:
			k.kind, k.namespace, k.cluster = kindSidecarRDS, p.Namespace, p.Cluster
		case envoy.RoleGRPC:
			k.kind = kindGRPCRDS
		}
	case envoy.NameTableType:
		// istiod builds a name table for sidecars only.
		if p.Role == envoy.RoleSidecar {
			k.kind, k.cluster, k.network = kindSidecarNDS, p.Cluster, p.Network
		}
	default:
		return viewKey{}, false
	}
	return k, true
}

// viewMux is the go-control-plane cache of the server: it routes each
// watch to the shared viewCache of the requesting proxy's view of the
// type, creating it on first use, with the stream's sync memo.
type viewMux struct {
	s *Server
}

var _ cache.Cache = (*viewMux)(nil)

// CreateWatch routes a SotW watch. A stream whose requests of the type
// were answered at once too often waits for its pacer first.
func (m *viewMux) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	v, c, err := m.s.viewOf(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	if err := watchingFrom(c.ctx, ch, nil); err != nil {
		return nil, err
	}
	p := c.pacer(req.GetTypeUrl(), m.s.reg.newPacer)
	if err := p.wait(c.ctx); err != nil {
		return nil, err
	}
	cancel, ans, err := v.cache.openWatch(req, sub, ch, c.memo(req.GetTypeUrl()))
	if ans.sent {
		p.answered(ans.version)
	}
	return cancel, err
}

// CreateDeltaWatch routes a delta watch, paced as CreateWatch.
func (m *viewMux) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	v, c, err := m.s.viewOf(req.GetNode(), req.GetTypeUrl())
	if err != nil {
		return nil, err
	}
	if err := watchingFrom(c.ctx, nil, ch); err != nil {
		return nil, err
	}
	p := c.pacer(req.GetTypeUrl(), m.s.reg.newPacer)
	if err := p.wait(c.ctx); err != nil {
		return nil, err
	}
	cancel, ans, err := v.cache.openDeltaWatch(req, sub, ch, c.memo(req.GetTypeUrl()))
	if ans.sent {
		p.answered(ans.version)
	}
	return cancel, err
}

// Fetch refuses REST polling, which the server does not offer.
func (m *viewMux) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("REST fetch is not served; use ADS")
}

// viewOf returns the view serving a request: that of its stream's proxy
// (found by the node pointer the registry indexed) for the type. The
// stream holds a reference on it until it ends.
func (s *Server) viewOf(node *corev3.Node, typeURL string) (*view, *conn, error) {
	c := s.reg.byNode(node)
	if c == nil {
		return nil, nil, status.Error(codes.Internal, "xDS request from a stream whose node is not known")
	}
	key, ok := keyFor(c.proxy, typeURL)
	if !ok {
		return s.unknownView(c, typeURL), c, nil
	}
	v, err := s.acquireView(c, key)
	if err != nil {
		return nil, nil, err
	}
	return v, c, nil
}

// acquireView returns the view of key for stream c, creating it if it is
// new (see viewFor), and records that c uses it: a view some stream uses
// is never freed.
func (s *Server) acquireView(c *conn, key viewKey) (*view, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := c.views[key.typeURL]; v != nil && v.key == key {
		return v, nil
	}
	if c.closed {
		return nil, status.Error(codes.Canceled, "xDS stream ended")
	}
	v, err := s.viewForLocked(key)
	if err != nil {
		return nil, err
	}
	if old := c.views[key.typeURL]; old != nil {
		s.unrefLocked(old)
	}
	if c.views == nil {
		c.views = make(map[string]*view, 4)
	}
	c.views[key.typeURL] = v
	v.refs++
	v.idleGen++ // a pending sweep of v no longer applies
	return v, nil
}

// releaseViews gives back the views of a stream that ended.
func (s *Server) releaseViews(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.closed = true
	for _, v := range c.views {
		s.unrefLocked(v)
	}
	c.views = nil
}

// unrefLocked drops a stream's reference on v; a view no stream uses is
// freed after the grace period, unless a stream takes it again before.
// Callers hold s.mu.
func (s *Server) unrefLocked(v *view) {
	v.refs--
	if v.refs > 0 {
		return
	}
	v.idleGen++
	gen := v.idleGen
	time.AfterFunc(s.cfg.ViewGrace, func() { s.sweepView(v, gen) })
}

// sweepView frees v if no stream took it since it became unused (gen).
func (s *Server) sweepView(v *view, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.refs > 0 || v.idleGen != gen || s.views[v.key] != v {
		return
	}
	delete(s.views, v.key)
	s.metrics.views.Set(float64(len(s.views)))
	s.log.Debug("xDS view freed", "view", v.key.String(), "idle", s.cfg.ViewGrace)
}

// viewForLocked returns the view of key, building it from the latest
// snapshot if it is new. Once the server holds Config.MaxViews views, a new
// view is made only for a network and cluster the mesh knows: made-up
// metadata must not make the server build and keep views without bound.
// Callers hold s.mu.
func (s *Server) viewForLocked(key viewKey) (*view, error) {
	if v := s.views[key]; v != nil {
		return v, nil
	}
	if s.cfg.MaxViews > 0 && len(s.views) >= s.cfg.MaxViews {
		if what := s.unknownLocked(key); what != "" {
			s.metrics.viewRefusals.Inc()
			return nil, status.Errorf(codes.ResourceExhausted,
				"the xDS server holds its limit of %d views and this proxy's %s is not part of the mesh; "+
					"set the proxy's NETWORK and CLUSTER_ID node metadata to a network and cluster the control plane knows "+
					"(causeway networks, /debug/networks), or raise --xds-max-views", s.cfg.MaxViews, what)
		}
	}
	return s.buildViewLocked(key), nil
}

// viewFor returns the view of key, building it if it is new, with no limit
// and no stream reference: a view made here is not freed.
func (s *Server) viewFor(key viewKey) *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.views[key]; v != nil {
		return v
	}
	return s.buildViewLocked(key)
}

// buildViewLocked builds the view of key from the latest snapshot and
// adds it. Callers hold s.mu.
func (s *Server) buildViewLocked(key viewKey) *view {
	v := s.newView(key)
	if s.snap != nil {
		v.update(s.builder(s.snap), everyHost(nil, s.snap))
	}
	s.views[key] = v
	s.metrics.views.Set(float64(len(s.views)))
	s.log.Debug("xDS view created", "view", key.String(), "resources", len(v.entries))
	return v
}

// unknownLocked names the part of key (network, cluster) that the current
// snapshot does not know, or "" if it knows them all. The empty network
// and cluster are always known. Callers hold s.mu.
func (s *Server) unknownLocked(key viewKey) string {
	if key.network == "" && key.cluster == "" {
		return ""
	}
	if s.known.snap != s.snap {
		s.known = knownOf(s.snap)
	}
	if key.network != "" && !s.known.networks[key.network] {
		return fmt.Sprintf("network %q (NETWORK)", key.network)
	}
	if key.cluster != "" && !s.known.clusters[key.cluster] {
		return fmt.Sprintf("cluster %q (CLUSTER_ID)", key.cluster)
	}
	return ""
}

// knownSet is the networks and clusters of one snapshot.
type knownSet struct {
	snap     *model.Snapshot
	networks map[model.NetworkID]bool
	clusters map[model.ClusterID]bool
}

// knownOf lists the networks and clusters snap knows: every network of
// its report, and every cluster with endpoints.
func knownOf(snap *model.Snapshot) knownSet {
	k := knownSet{snap: snap, networks: map[model.NetworkID]bool{}, clusters: map[model.ClusterID]bool{}}
	if snap == nil {
		return k
	}
	for _, n := range snap.Networks().Networks {
		k.networks[n.Name] = true
		for _, c := range n.Clusters {
			k.clusters[c] = true
		}
	}
	for c := range snap.Stats().Endpoints {
		k.clusters[c] = true
	}
	return k
}

// view is one shared cache and what it was built from.
type view struct {
	key   viewKey
	cache *viewCache

	// Touched only under Server.pubMu, or under Server.mu while the view
	// is built (before anyone else sees it).
	entries map[string]*entry
	// byHost lists the names of the resources built from each service
	// (per-host kinds), to delete those a change makes obsolete.
	byHost map[model.Host][]string

	// refs counts the streams served from the view; idleGen changes each
	// time the view is taken or becomes unused, so that a sweep planned
	// when it became unused knows whether it still applies. Both are
	// guarded by Server.mu.
	refs    int
	idleGen uint64
}

// entry is a resource a view holds and, for EDS, the input it was built
// from: comparing inputs saves building a resource only to find it equal.
type entry struct {
	res  types.Resource
	view *model.View
}

func (s *Server) newView(key viewKey) *view {
	return &view{
		key:     key,
		cache:   newViewCache(key.typeURL, s.versionPrefix, s.log.With("view", key.String())),
		entries: make(map[string]*entry),
		byHost:  make(map[model.Host][]string),
	}
}
