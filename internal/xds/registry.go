package xds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Protocol names of ProxyStatus.Protocol.
const (
	ProtocolSotW  = "sotw"
	ProtocolDelta = "delta"
)

// ProxyStatus is what the server knows of one connected proxy (one ADS
// stream). Its JSON is the schema of /debug/proxies.
type ProxyStatus struct {
	ID        string          `json:"id"`
	Stream    int64           `json:"stream"`
	Role      string          `json:"role"`
	Network   model.NetworkID `json:"network"`
	Cluster   model.ClusterID `json:"cluster"`
	IP        string          `json:"ip,omitempty"`
	Pod       string          `json:"pod,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	// Protocol is ProtocolSotW or ProtocolDelta.
	Protocol    string    `json:"protocol"`
	ConnectedAt time.Time `json:"connectedAt"`
	// Types are the resource types the proxy asked for, sorted by Type.
	Types []TypeStatus `json:"types"`
}

// TypeStatus is the state of one resource type on a proxy's stream.
type TypeStatus struct {
	// Type is cds, eds, lds or rds, or the type URL for any other type.
	Type    string `json:"type"`
	TypeURL string `json:"typeUrl"`
	// Resources is how many resources of the type the proxy was sent and
	// still has (the sum of what SotW and delta responses added and
	// removed).
	Resources int       `json:"resources"`
	LastSent  *Sent     `json:"lastSent,omitempty"`
	LastAck   *Ack      `json:"lastAck,omitempty"`
	LastNack  *Nack     `json:"lastNack,omitempty"`
	Requested time.Time `json:"lastRequest"`
}

// Sent is the last response of a type sent to a proxy.
type Sent struct {
	Nonce     string    `json:"nonce"`
	Version   string    `json:"version"`
	Resources int       `json:"resources"`
	Removed   int       `json:"removed,omitempty"`
	At        time.Time `json:"at"`
}

// Ack is a proxy's last acceptance of a response.
type Ack struct {
	Nonce   string    `json:"nonce"`
	Version string    `json:"version"`
	At      time.Time `json:"at"`
}

// Nack is a proxy's last rejection of a response.
type Nack struct {
	Nonce string `json:"nonce"`
	// Version is the version the proxy still runs (SotW), if any.
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// shortTypes names the four types the server generates.
var shortTypes = map[string]string{
	resource.ClusterType:  "cds",
	resource.EndpointType: "eds",
	resource.ListenerType: "lds",
	resource.RouteType:    "rds",
}

// typeURLOf returns the type URL of a short name, or "" if unknown.
func typeURLOf(short string) string {
	for url, s := range shortTypes {
		if s == short {
			return url
		}
	}
	return ""
}

func shortType(typeURL string) string {
	if s, ok := shortTypes[typeURL]; ok {
		return s
	}
	return typeURL
}

// registry tracks connected proxies by stream, and finds a stream's proxy
// from the node pointer go-control-plane passes to the cache with each
// request.
type registry struct {
	metrics *metrics
	// newPacer makes the re-send pacer of a stream's type (nil: none).
	newPacer func() *pacer
	// maxNames is the codec's bound on a request's names (for messages).
	maxNames int
	// onClose is called with each stream that ends, after it left the
	// registry (the server gives back its views); nil: nothing.
	onClose func(c *conn)

	mu sync.RWMutex
	// streams are keyed by streamKey: go-control-plane numbers SotW and
	// delta streams each from 1, so the two protocols' ids are kept apart.
	streams map[int64]*conn
	nodes   map[*corev3.Node]*conn
	// last numbers the streams of both protocols in the order they opened
	// (conn.stream).
	last int64
}

// sotwKey and deltaKey are the registry keys of go-control-plane's stream
// ids: a SotW stream's id as it is, a delta stream's negated (both start
// at 1, so they never meet).
func sotwKey(id int64) int64  { return id }
func deltaKey(id int64) int64 { return -id }

// conn is one ADS stream.
type conn struct {
	// stream numbers the stream among all of the server's, SotW and delta
	// alike, in the order they opened.
	stream      int64
	protocol    string
	connectedAt time.Time
	// ctx is the stream's context: it ends with the stream.
	ctx context.Context

	// node is the node pointer the conn is indexed under (registry.mu);
	// proxy is set once, by the first request, before the conn is indexed.
	node   *corev3.Node
	proxy  envoy.Proxy
	parsed bool

	mu    sync.Mutex
	types map[string]*typeState
	// memos are the streams' sync memos by type (see viewCache).
	memos map[string]*syncMemo
	// pacers pace the answers to the stream's requests, by type.
	pacers map[string]*pacer

	// views are the views the stream's types are served from, by type
	// URL; guarded by Server.mu (each holds a reference on its view).
	views  map[string]*view
	closed bool
}

// pacer returns the stream's re-send pacer of typeURL, or nil for none.
func (c *conn) pacer(typeURL string, newPacer func() *pacer) *pacer {
	if newPacer == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pacers[typeURL]
	if !ok {
		if c.pacers == nil {
			c.pacers = make(map[string]*pacer, 4)
		}
		p = newPacer()
		c.pacers[typeURL] = p
	}
	return p
}

// memo returns the stream's sync memo of typeURL.
func (c *conn) memo(typeURL string) *syncMemo {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memos[typeURL]
	if m == nil {
		if c.memos == nil {
			c.memos = make(map[string]*syncMemo, 4)
		}
		m = &syncMemo{}
		c.memos[typeURL] = m
	}
	return m
}

// typeState is what a stream did with one type. The resources are the ones
// the server sent, kept by reference: the marshaled Any values are shared
// with the responses (and, for their bytes, with the cache).
type typeState struct {
	requested time.Time
	sent      *Sent
	ack       *Ack
	nack      *Nack
	// full is the last SotW response of a type that is sent whole (CDS,
	// LDS); have accumulates the others and delta responses.
	full []*anypb.Any
	have sentRecord
}

func newRegistry(m *metrics) *registry {
	return &registry{
		metrics: m,
		streams: make(map[int64]*conn),
		nodes:   make(map[*corev3.Node]*conn),
	}
}

func (r *registry) stream(id int64) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.streams[id]
}

// proxyOf returns the proxy of stream id, if it is known yet.
func (r *registry) proxyOf(id int64) (envoy.Proxy, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.streams[id]
	if c == nil || !c.parsed {
		return envoy.Proxy{}, false
	}
	return c.proxy, true
}

// byNode returns the stream whose requests carry node.
func (r *registry) byNode(node *corev3.Node) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.nodes[node]
}

func (r *registry) open(ctx context.Context, id int64, protocol string) {
	if slot := slotFrom(ctx); slot != nil {
		slot.id.Store(id)
	}
	c := &conn{protocol: protocol, connectedAt: time.Now(), ctx: ctx, types: make(map[string]*typeState)}
	r.mu.Lock()
	r.last++
	c.stream = r.last
	r.streams[id] = c
	r.mu.Unlock()
}

func (r *registry) close(id int64) {
	r.mu.Lock()
	c := r.streams[id]
	if c == nil {
		r.mu.Unlock()
		return
	}
	delete(r.streams, id)
	if c.node != nil && r.nodes[c.node] == c {
		delete(r.nodes, c.node)
	}
	if c.parsed {
		r.metrics.proxies.Dec()
	}
	r.mu.Unlock()
	if r.onClose != nil {
		r.onClose(c)
	}
}

// identify handles a request's node: the first request of a stream must
// carry one that parses; a later one that carries a node (clients may
// resend it) re-points the index at it, the proxy staying who the first
// said. The error refuses the stream.
func (r *registry) identify(id int64, node *corev3.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.streams[id]
	if c == nil {
		return status.Errorf(codes.Internal, "xDS stream %d is not registered", id)
	}
	if node == nil {
		if !c.parsed {
			return status.Error(codes.InvalidArgument, "the first xDS request of a stream must carry the node; set node.id and node.metadata in the client's bootstrap")
		}
		return nil
	}
	if !c.parsed {
		if proto.Size(node) == 0 {
			return status.Error(codes.InvalidArgument, "the first xDS request of a stream must carry the node; set node.id and node.metadata in the client's bootstrap")
		}
		p, err := envoy.ParseNode(node)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		// Written under both locks: status reads it under c.mu only.
		c.mu.Lock()
		c.proxy, c.parsed = p, true
		c.mu.Unlock()
		r.metrics.proxies.Inc()
	}
	if c.node != node {
		if c.node != nil && r.nodes[c.node] == c {
			delete(r.nodes, c.node)
		}
		c.node = node
		r.nodes[node] = c
	}
	return nil
}

// state returns the state of typeURL, creating it. Callers hold c.mu.
func (c *conn) state(typeURL string) *typeState {
	ts := c.types[typeURL]
	if ts == nil {
		ts = &typeState{}
		c.types[typeURL] = ts
	}
	return ts
}

// request records a request: the ACK or NACK of the response it names.
// Requests naming another nonce than the last sent one are stale (go-
// control-plane ignores them too) and change nothing but the time.
func (r *registry) request(id int64, typeURL, nonce, version string, detail *statusDetail) {
	c := r.stream(id)
	if c == nil {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.state(typeURL)
	ts.requested = now
	if nonce == "" || ts.sent == nil || ts.sent.Nonce != nonce {
		return
	}
	if detail != nil {
		ts.nack = &Nack{Nonce: nonce, Version: version, Error: detail.message, At: now}
		r.metrics.nacks.WithLabelValues(shortType(typeURL)).Inc()
		return
	}
	ts.ack = &Ack{Nonce: nonce, Version: version, At: now}
}

type statusDetail struct {
	message string
}

// maxNackDetail bounds the error_detail message of a NACK that the registry
// keeps (and /debug/proxies shows): Envoy's own messages name the resource
// and the field that failed, well under 1 KiB; a client may send megabytes.
const maxNackDetail = 4 << 10

func detailOf(code int32, message string, present bool) *statusDetail {
	if !present {
		return nil
	}
	if message == "" {
		message = codes.Code(code).String()
	}
	return &statusDetail{message: truncateDetail(message, maxNackDetail)}
}

// truncateDetail cuts message to at most limit bytes, on a UTF-8
// boundary, and says how much was left out; the result is a new string,
// so the request's (possibly huge) message is not kept alive by it.
func truncateDetail(message string, limit int) string {
	if len(message) <= limit {
		return message
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return strings.Clone(message[:cut]) + fmt.Sprintf("... [truncated: %d of %d bytes shown]", cut, len(message))
}

// sentSotW records a SotW response; ctx is the response's (see
// sentSet).
func (r *registry) sentSotW(ctx context.Context, id int64, resp *discoverygrpc.DiscoveryResponse) {
	c := r.stream(id)
	if c == nil {
		return
	}
	typeURL := resp.GetTypeUrl()
	r.metrics.responses.WithLabelValues(shortType(typeURL)).Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.state(typeURL)
	ts.sent = &Sent{Nonce: resp.GetNonce(), Version: resp.GetVersionInfo(), Resources: len(resp.GetResources()), At: time.Now()}
	if cache.ResourceRequiresFullStateInSotw(typeURL) {
		ts.full, ts.have = resp.GetResources(), sentRecord{}
		return
	}
	set, ok := sentSet(ctx, len(resp.GetResources()))
	rs := make([]*discoverygrpc.Resource, len(resp.GetResources()))
	for i, a := range resp.GetResources() {
		if ok {
			rs[i] = set[i].delta
		} else {
			rs[i] = &discoverygrpc.Resource{Name: resourceName(a), Resource: a}
		}
	}
	ts.have.addOwned(rs)
}

// sentDelta records a delta response.
func (r *registry) sentDelta(id int64, resp *discoverygrpc.DeltaDiscoveryResponse) {
	c := r.stream(id)
	if c == nil {
		return
	}
	typeURL := resp.GetTypeUrl()
	r.metrics.responses.WithLabelValues(shortType(typeURL)).Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.state(typeURL)
	ts.sent = &Sent{Nonce: resp.GetNonce(), Version: resp.GetSystemVersionInfo(),
		Resources: len(resp.GetResources()), Removed: len(resp.GetRemovedResources()), At: time.Now()}
	ts.have.add(resp.GetResources())
	for _, name := range resp.GetRemovedResources() {
		ts.have.remove(name)
	}
}

// resourceName reads the name of a marshaled resource without decoding
// it: every type served here (Cluster, ClusterLoadAssignment, Listener,
// RouteConfiguration) has its name as field 1.
func resourceName(a *anypb.Any) string {
	b := a.GetValue()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return ""
			}
			return string(v)
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return ""
		}
		b = b[m:]
	}
	return ""
}

// status returns the ProxyStatus of c; ok is false until its node is known.
func (c *conn) status() (ProxyStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.parsed {
		return ProxyStatus{}, false
	}
	p := c.proxy
	st := ProxyStatus{
		ID: p.ID, Stream: c.stream, Role: p.Role.String(), Network: p.Network, Cluster: p.Cluster,
		IP: p.IP, Pod: p.PodName, Namespace: p.Namespace,
		Protocol: c.protocol, ConnectedAt: c.connectedAt,
		Types: make([]TypeStatus, 0, len(c.types)),
	}
	for url, ts := range c.types {
		n := ts.have.n
		if ts.full != nil {
			n = len(ts.full)
		}
		st.Types = append(st.Types, TypeStatus{
			Type: shortType(url), TypeURL: url, Resources: n,
			LastSent: ts.sent, LastAck: ts.ack, LastNack: ts.nack, Requested: ts.requested,
		})
	}
	slices.SortFunc(st.Types, func(a, b TypeStatus) int { return cmp.Compare(a.Type, b.Type) })
	return st, true
}

// resources returns what c was last sent of typeURL and still has.
func (c *conn) resources(typeURL string) ([]*anypb.Any, *Sent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.types[typeURL]
	if ts == nil {
		return nil, nil
	}
	if ts.full != nil {
		return slices.Clone(ts.full), ts.sent
	}
	have := ts.have.all()
	out := make([]*anypb.Any, len(have))
	for i, r := range have {
		out[i] = r.GetResource()
	}
	return out, ts.sent
}

// all returns the status of every identified stream, sorted by proxy id,
// then stream.
func (r *registry) all() []ProxyStatus {
	r.mu.RLock()
	conns := make([]*conn, 0, len(r.streams))
	for _, c := range r.streams {
		conns = append(conns, c)
	}
	r.mu.RUnlock()
	out := make([]ProxyStatus, 0, len(conns))
	for _, c := range conns {
		if st, ok := c.status(); ok {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Stream, b.Stream)) })
	return out
}

// latest returns the newest identified stream of proxy id, or nil.
func (r *registry) latest(id string) *conn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *conn
	for _, c := range r.streams {
		if c.parsed && c.proxy.ID == id && (best == nil || c.stream > best.stream) {
			best = c
		}
	}
	return best
}

// checkNames refuses a request the codec found to name too many
// resources (it left them out: see requestCodec.refuse).
func (r *registry) checkNames(req proto.Message) error {
	n := tooManyNames(req)
	if n == 0 {
		return nil
	}
	r.metrics.requestsRefused.WithLabelValues("names").Inc()
	return status.Errorf(codes.ResourceExhausted,
		"xDS request names %d resources; the limit is %d per request (--xds-max-request-names): "+
			"subscribe to fewer names, or to all of them with a wildcard request", n, r.maxNames)
}

// callbacks wires the registry into go-control-plane's server.
func (r *registry) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			r.open(ctx, sotwKey(id), ProtocolSotW)
			return nil
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			r.open(ctx, deltaKey(id), ProtocolDelta)
			return nil
		},
		StreamClosedFunc:      func(id int64, _ *corev3.Node) { r.close(sotwKey(id)) },
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { r.close(deltaKey(id)) },
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			id = sotwKey(id)
			if err := r.checkNames(req); err != nil {
				return err
			}
			if err := r.identify(id, req.GetNode()); err != nil {
				return err
			}
			ed := req.GetErrorDetail()
			r.request(id, req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(),
				detailOf(ed.GetCode(), ed.GetMessage(), ed != nil))
			return nil
		},
		StreamDeltaRequestFunc: func(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
			id = deltaKey(id)
			if err := r.checkNames(req); err != nil {
				return err
			}
			if err := r.identify(id, req.GetNode()); err != nil {
				return err
			}
			ed := req.GetErrorDetail()
			r.request(id, req.GetTypeUrl(), req.GetResponseNonce(), "",
				detailOf(ed.GetCode(), ed.GetMessage(), ed != nil))
			return nil
		},
		StreamResponseFunc: func(ctx context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			r.sentSotW(ctx, sotwKey(id), resp)
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoverygrpc.DeltaDiscoveryRequest, resp *discoverygrpc.DeltaDiscoveryResponse) {
			r.sentDelta(deltaKey(id), resp)
		},
		FetchRequestFunc: func(context.Context, *discoverygrpc.DiscoveryRequest) error {
			return errors.New("REST fetch is not served; use ADS")
		},
	}
}
