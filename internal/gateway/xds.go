package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// kindOf is the kind of an xDS type URL; false for a type the gateway
// does not subscribe to.
func kindOf(typeURL string) (int, bool) {
	switch typeURL {
	case resourcev3.ListenerType:
		return kindListeners, true
	case resourcev3.ClusterType:
		return kindClusters, true
	case resourcev3.EndpointType:
		return kindEndpoints, true
	default:
		return 0, false
	}
}

// adsClient keeps the gateway's configuration in step with the control
// plane over one ADS stream at a time (state of the world): LDS and CDS by
// wildcard, then EDS for the EDS clusters CDS names. Every response is
// decoded and checked as a whole; an accepted one is applied (a new Table
// per gateway listener is published) and ACKed, a rejected one is NACKed with the reason and
// the last good configuration stays. When the stream breaks, a new one is
// opened after a backoff, with the last accepted versions; the gateway
// keeps serving its last table meanwhile.
//
// Everything but status is owned by the goroutine running run.
type adsClient struct {
	log     *slog.Logger
	metrics *metrics
	node    *corev3.Node
	// listenerNames are the LDS listeners the gateway runs, main first.
	listenerNames  []string
	reconnectDelay time.Duration
	// tokenFile and cluster are sent on every stream (see streamContext).
	tokenFile string
	cluster   string
	// publish installs new tables, one per listener of listenerNames in
	// that order; ready is called once, when the first full configuration
	// (LDS, CDS and EDS of every EDS cluster) is applied.
	publish func([]*Table)
	ready   func()

	in       tableInputs
	tables   []*Table
	got      [numKinds]bool
	edsNames []string // the EDS subscription, sorted
	isReady  bool
	// lastNACK is the version and error of the last NACK per kind: a
	// control plane that sends the rejected version again (go-control-
	// plane's snapshot cache does, at once) is answered again, but not
	// logged again.
	lastNACK [numKinds]string

	status statusCell
}

// statusCell holds the ADS client's status for /config, under a mutex:
// the client writes it, the admin server reads it.
type statusCell struct {
	mu sync.Mutex
	v  adsStatus
}

// adsStatus is the state of the ADS stream, for /config.
type adsStatus struct {
	Server    string `json:"server"`
	Connected bool   `json:"connected"`
	// Streams counts the ADS streams opened so far.
	Streams int `json:"streams"`
	// LastError is why the last stream ended, if one did.
	LastError string `json:"last_error,omitempty"`
	// LastNACK is the error of the last rejected response, if any.
	LastNACK string `json:"last_nack,omitempty"`
}

func (s *statusCell) update(f func(*adsStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.v)
}

func (s *statusCell) get() adsStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v
}

func newADSClient(cfg Config, m *metrics, publish func([]*Table), ready func()) *adsClient {
	c := &adsClient{
		log:            cfg.Logger,
		metrics:        m,
		node:           node(cfg),
		listenerNames:  cfg.listenerNames(),
		reconnectDelay: cfg.ReconnectDelay,
		tokenFile:      cfg.XDSTokenFile,
		cluster:        string(cfg.ClusterID),
		publish:        publish,
		ready:          ready,
		in: tableInputs{
			listeners: map[string]*listenerConfig{},
			clusters:  map[string]clusterConfig{},
			endpoints: map[string][]Endpoint{},
		},
	}
	c.status.v.Server = cfg.XDS
	return c
}

// run keeps an ADS stream open over conn until ctx ends.
func (c *adsClient) run(ctx context.Context, conn grpc.ClientConnInterface) {
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	delay := c.reconnectDelay
	for {
		healthy, err := c.stream(ctx, client)
		c.metrics.xdsConnected.Set(0)
		c.status.update(func(s *adsStatus) {
			s.Connected = false
			if err != nil {
				s.LastError = err.Error()
			}
		})
		if ctx.Err() != nil {
			return
		}
		if healthy {
			delay = c.reconnectDelay
		}
		// Jitter: between 3/4 and 5/4 of the delay, so that gateways cut
		// off together do not come back together.
		wait := delay*3/4 + rand.N(delay/2+1)
		c.log.Warn("ADS stream ended; keeping the last configuration and reconnecting", "error", err, "after", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, MaxReconnectDelay)
	}
}

// stream runs one ADS stream until it breaks or ctx ends. healthy reports
// whether the control plane answered on it at all (then the backoff
// starts over).
func (c *adsClient) stream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx, err = c.streamContext(ctx)
	if err != nil {
		return false, err
	}
	st, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("opening the ADS stream: %w", err)
	}
	c.status.update(func(s *adsStatus) { s.Streams++ })
	s := &adsStream{st: st, node: c.node}
	// Versions of a previous stream are sent again: a control plane that
	// still has them need not resend (xDS protocol, "reconnect").
	reqs := []*discoveryv3.DiscoveryRequest{
		{TypeUrl: resourcev3.ListenerType, VersionInfo: c.in.versions.Listeners},
		{TypeUrl: resourcev3.ClusterType, VersionInfo: c.in.versions.Clusters},
	}
	if len(c.edsNames) > 0 {
		reqs = append(reqs, &discoveryv3.DiscoveryRequest{
			TypeUrl: resourcev3.EndpointType, VersionInfo: c.in.versions.Endpoints, ResourceNames: c.edsNames,
		})
	}
	for _, r := range reqs {
		if err := s.send(r); err != nil {
			return false, err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return healthy, nil
			}
			return healthy, fmt.Errorf("ADS stream: %w", err)
		}
		if !healthy {
			healthy = true
			c.metrics.xdsConnected.Set(1)
			c.status.update(func(s *adsStatus) { s.Connected = true })
			c.log.Info("ADS stream up", "server", c.status.get().Server)
		}
		if err := c.handle(s, resp); err != nil {
			return healthy, err
		}
	}
}

// adsStream sends the requests of one stream: the node goes with the
// first only, and the last nonce of each type is remembered for requests
// that follow a subscription change.
type adsStream struct {
	st     discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	sent   bool
	nonces [numKinds]string
}

func (s *adsStream) send(r *discoveryv3.DiscoveryRequest) error {
	if !s.sent {
		r.Node = s.node
		s.sent = true
	}
	if err := s.st.Send(r); err != nil {
		return fmt.Errorf("sending an ADS request for %s: %w", r.GetTypeUrl(), err)
	}
	return nil
}

// handle applies or rejects one response, and answers it.
func (c *adsClient) handle(s *adsStream, resp *discoveryv3.DiscoveryResponse) error {
	kind, ok := kindOf(resp.GetTypeUrl())
	if !ok {
		c.log.Debug("ignoring an xDS response of a type not subscribed to", "type", resp.GetTypeUrl())
		return nil
	}
	s.nonces[kind] = resp.GetNonce()
	prevEDS := c.edsNames
	var err error
	switch kind {
	case kindListeners:
		err = c.applyListeners(resp)
	case kindClusters:
		err = c.applyClusters(resp)
	default:
		err = c.applyEndpoints(resp)
	}
	req := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
	if kind == kindEndpoints {
		req.ResourceNames = c.edsNames
	}
	if err != nil {
		c.metrics.xdsNack[kind].Inc()
		c.status.update(func(s *adsStatus) { s.LastNACK = err.Error() })
		level := slog.LevelWarn
		if key := resp.GetVersionInfo() + "\x00" + err.Error(); key != c.lastNACK[kind] {
			c.lastNACK[kind] = key
		} else {
			level = slog.LevelDebug
		}
		c.log.Log(context.Background(), level, "rejected an xDS update; keeping the last good configuration",
			"type", kindName(kind), "version", resp.GetVersionInfo(), "error", err)
		req.VersionInfo = c.version(kind)
		req.ErrorDetail = status.New(codes.InvalidArgument, err.Error()).Proto()
		return s.send(req)
	}
	c.metrics.xdsAck[kind].Inc()
	c.log.Debug("applied an xDS update", "type", kindName(kind), "version", resp.GetVersionInfo(), "resources", len(resp.GetResources()))
	c.tables = buildTables(c.in, c.listenerNames, c.tables)
	c.publish(c.tables)
	req.VersionInfo = resp.GetVersionInfo()
	if err := s.send(req); err != nil {
		return err
	}
	if kind == kindClusters && !slices.Equal(prevEDS, c.edsNames) {
		if err := s.send(&discoveryv3.DiscoveryRequest{
			TypeUrl:       resourcev3.EndpointType,
			VersionInfo:   c.in.versions.Endpoints,
			ResourceNames: c.edsNames,
			ResponseNonce: s.nonces[kindEndpoints],
		}); err != nil {
			return err
		}
	}
	c.got[kind] = true
	c.checkReady()
	return nil
}

func (c *adsClient) version(kind int) string {
	switch kind {
	case kindListeners:
		return c.in.versions.Listeners
	case kindClusters:
		return c.in.versions.Clusters
	default:
		return c.in.versions.Endpoints
	}
}

// checkReady calls ready once LDS and CDS are applied and every EDS cluster
// has had its endpoints (Envoy's cluster warming).
func (c *adsClient) checkReady() {
	if c.isReady || !c.got[kindListeners] || !c.got[kindClusters] {
		return
	}
	for _, n := range c.edsNames {
		if _, ok := c.in.endpoints[n]; !ok {
			return
		}
	}
	c.isReady = true
	c.ready()
}

// unwrap returns the resource an xDS response carries in a, which may be
// wrapped in a discovery Resource (as servers do for TTLs).
func unwrap(a *anypb.Any, typeURL string, into proto.Message) error {
	if a.GetTypeUrl() == resourcev3.APITypePrefix+"envoy.service.discovery.v3.Resource" {
		r := new(discoveryv3.Resource)
		if err := a.UnmarshalTo(r); err != nil {
			return fmt.Errorf("decoding a wrapped resource: %w", err)
		}
		a = r.GetResource()
	}
	if a.GetTypeUrl() != typeURL {
		return fmt.Errorf("a resource of type %s in a response of type %s", a.GetTypeUrl(), typeURL)
	}
	if err := a.UnmarshalTo(into); err != nil {
		return fmt.Errorf("decoding %s: %w", typeURL, err)
	}
	return nil
}

// applyListeners takes a full LDS state: the listeners of listenerNames
// are the gateway's; others are not for this gateway and are ignored.
func (c *adsClient) applyListeners(resp *discoveryv3.DiscoveryResponse) error {
	mine := make(map[string]*listenerConfig, len(c.listenerNames))
	seen := make(map[string]bool, len(resp.GetResources()))
	for _, a := range resp.GetResources() {
		l := new(listenerv3.Listener)
		if err := unwrap(a, resourcev3.ListenerType, l); err != nil {
			return err
		}
		if seen[l.GetName()] {
			return fmt.Errorf("listener %q sent twice", l.GetName())
		}
		seen[l.GetName()] = true
		if !slices.Contains(c.listenerNames, l.GetName()) {
			c.log.Debug("ignoring a listener that is not the gateway's", "listener", l.GetName(), "want", c.listenerNames)
			continue
		}
		cfg, err := decodeListener(l)
		if err != nil {
			return err
		}
		mine[l.GetName()] = cfg
	}
	for _, name := range c.listenerNames {
		if mine[name] == nil {
			c.log.Info("LDS holds no listener for the gateway: every connection to it is refused until it does", "listener", name)
		}
	}
	c.in.listeners = mine
	c.in.versions.Listeners = resp.GetVersionInfo()
	return nil
}

// applyClusters takes a full CDS state and updates the EDS subscription.
func (c *adsClient) applyClusters(resp *discoveryv3.DiscoveryResponse) error {
	clusters := make(map[string]clusterConfig, len(resp.GetResources()))
	var names []string
	for _, a := range resp.GetResources() {
		cl := new(clusterv3.Cluster)
		if err := unwrap(a, resourcev3.ClusterType, cl); err != nil {
			return err
		}
		if _, dup := clusters[cl.GetName()]; dup {
			return fmt.Errorf("cluster %q sent twice", cl.GetName())
		}
		cfg, err := decodeCluster(cl)
		if err != nil {
			return err
		}
		clusters[cl.GetName()] = cfg
		if cfg.edsName != "" {
			names = append(names, cfg.edsName)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for n := range c.in.endpoints {
		if _, ok := slices.BinarySearch(names, n); !ok {
			delete(c.in.endpoints, n)
		}
	}
	c.in.clusters = clusters
	c.edsNames = names
	c.in.versions.Clusters = resp.GetVersionInfo()
	return nil
}

// applyEndpoints takes EDS resources; those not subscribed are ignored,
// those subscribed but absent keep their endpoints (EDS is not full state).
func (c *adsClient) applyEndpoints(resp *discoveryv3.DiscoveryResponse) error {
	type update struct {
		name string
		eps  []Endpoint
	}
	updates := make([]update, 0, len(resp.GetResources()))
	for _, a := range resp.GetResources() {
		cla := new(endpointv3.ClusterLoadAssignment)
		if err := unwrap(a, resourcev3.EndpointType, cla); err != nil {
			return err
		}
		eps, err := decodeAssignment(cla)
		if err != nil {
			return fmt.Errorf("endpoints of %q: %w", cla.GetClusterName(), err)
		}
		if _, ok := slices.BinarySearch(c.edsNames, cla.GetClusterName()); !ok {
			continue
		}
		updates = append(updates, update{cla.GetClusterName(), eps})
	}
	for _, u := range updates {
		c.in.endpoints[u.name] = u.eps
	}
	c.in.versions.Endpoints = resp.GetVersionInfo()
	return nil
}
