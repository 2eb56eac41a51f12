package bench

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// decoded is one resource as received, decoded once for every proxy that
// receives the same bytes.
type decoded struct {
	raw  []byte
	name string
	// CDS: the EDS name to subscribe to, if the cluster is of type EDS.
	edsName string
	// EDS: the endpoints in canonical form and the set of addresses.
	canon string
	ips   map[string]struct{}
}

// internTable decodes resources by their bytes, once. Proxies of one view
// receive identical bytes when the server marshals a resource once per
// view; if it does not, the table only saves less.
type internTable struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64][]*decoded
}

func newInternTable() *internTable {
	return &internTable{seed: maphash.MakeSeed(), m: map[uint64][]*decoded{}}
}

// get returns the decoded form of a resource of typeURL with bytes raw.
func (t *internTable) get(typeURL string, raw []byte) (*decoded, error) {
	h := maphash.Bytes(t.seed, raw)
	t.mu.Lock()
	for _, d := range t.m[h] {
		if bytes.Equal(d.raw, raw) {
			t.mu.Unlock()
			return d, nil
		}
	}
	t.mu.Unlock()
	d, err := decode(typeURL, raw)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.m[h] = append(t.m[h], d)
	t.mu.Unlock()
	return d, nil
}

// size is how many distinct resources were decoded.
func (t *internTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ds := range t.m {
		n += len(ds)
	}
	return n
}

func decode(typeURL string, raw []byte) (*decoded, error) {
	d := &decoded{raw: bytes.Clone(raw)}
	switch typeURL {
	case resourcev3.ClusterType:
		var c clusterv3.Cluster
		if err := proto.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("decode a Cluster: %w", err)
		}
		d.name = c.GetName()
		if c.GetType() == clusterv3.Cluster_EDS {
			d.edsName = cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName())
		}
	case resourcev3.EndpointType:
		var cla endpointv3.ClusterLoadAssignment
		if err := proto.Unmarshal(raw, &cla); err != nil {
			return nil, fmt.Errorf("decode a ClusterLoadAssignment: %w", err)
		}
		d.name = cla.GetClusterName()
		weights := map[string]int{}
		d.ips = map[string]struct{}{}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				w := 1
				if lw := lb.GetLoadBalancingWeight(); lw != nil {
					w = int(lw.GetValue())
				}
				weights[hostPort(sa.GetAddress(), int32(sa.GetPortValue()))] += w
				d.ips[sa.GetAddress()] = struct{}{}
			}
		}
		d.canon = canonical(weights)
	default:
		return nil, fmt.Errorf("unexpected resource type %s", typeURL)
	}
	return d, nil
}

// shared is what every proxy of a run reads: the decoded resources, the
// change logs and the phases' counters.
type shared struct {
	intern *internTable
	logs   map[string]*changeLog // by network
	phases []*phaseStats
}

// newShared is the state shared by the proxies of a run of phases phases
// over clusters: an empty intern table, a change log per network and
// empty phase statistics.
func newShared(clusters []*benchCluster, phases int) *shared {
	sh := &shared{intern: newInternTable(), logs: map[string]*changeLog{}, phases: make([]*phaseStats, phases)}
	for i := range sh.phases {
		sh.phases[i] = &phaseStats{}
	}
	for _, bc := range clusters {
		sh.logs[bc.network] = newChangeLog(len(bc.slices))
	}
	return sh
}

// proxy is one simulated sidecar: one gRPC connection, one ADS stream.
type proxy struct {
	sh       *shared
	id       string
	network  string
	cluster  string
	protocol Protocol
	// bytes counts the wire bytes of every response received.
	bytes     atomic.Int64
	responses atomic.Int64
	// stalled stops the reading loop until resumeCh is closed.
	stalled  atomic.Bool
	resumeCh chan struct{}

	mu       sync.Mutex
	cds      map[string]*decoded // by cluster name
	eds      map[string]*decoded // by EDS name
	subs     []string            // EDS names subscribed, sorted
	cursor   map[string]int      // per EDS name, first change not yet received
	lat      [][]time.Duration   // per phase
	excluded bool                // its deliveries are not counted
	expect   map[string]string   // the full view looked for, while starting
	good     int                 // names of expect whose EDS matches
	cdsHave  int                 // names of expect present in CDS
	fullAt   time.Time
	err      error
	done     chan struct{}
	// failover: the proxy reconnects to another replica when its stream
	// ends (failover.go); streams records each stream it opened.
	failover bool
	streams  []*streamRecord
}

// newProxy makes proxy i of the netIndex-th network (both 0-based); expect
// is the full view it must reach at start.
func newProxy(sh *shared, netIndex, i int, network, cluster string, protocol Protocol, expect map[string]string) *proxy {
	ip := fmt.Sprintf("10.%d.%d.%d", 200+netIndex, i>>8&255, i&255)
	pod := "proxy-" + strconv.Itoa(i)
	return &proxy{
		sh:       sh,
		id:       "sidecar~" + ip + "~" + pod + ".bench-proxies~bench-proxies.svc." + domain,
		network:  network,
		cluster:  cluster,
		protocol: protocol,
		resumeCh: make(chan struct{}),
		cds:      map[string]*decoded{},
		eds:      map[string]*decoded{},
		cursor:   map[string]int{},
		expect:   expect,
		done:     make(chan struct{}),
	}
}

func (p *proxy) node() *corev3.Node {
	return &corev3.Node{
		Id:      p.id,
		Cluster: "bench-proxies",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NETWORK":    structpb.NewStringValue(p.network),
			"CLUSTER_ID": structpb.NewStringValue(p.cluster),
		}},
	}
}

// statsHandler counts the wire bytes of received messages.
type statsHandler struct{ p *proxy }

var _ stats.Handler = statsHandler{}

func (h statsHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (h statsHandler) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok && in.Client {
		h.p.bytes.Add(int64(in.WireLength))
	}
}

func (h statsHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (h statsHandler) HandleConn(context.Context, stats.ConnStats) {}

// dial opens the proxy's connection. smallWindow keeps gRPC's flow-control
// windows at their 64 KiB minimum, so that a proxy that stops reading
// holds up the server's sends soon, as a stuck Envoy does.
func (p *proxy) dial(addr string, smallWindow bool) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(statsHandler{p}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1 << 30)),
	}
	if smallWindow {
		opts = append(opts, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: dial %s: %w", p.id, addr, err)
	}
	return conn, nil
}

// run speaks ADS on conn until ctx ends or the stream fails; the error, if
// not the end of ctx, is kept in p.err.
func (p *proxy) run(ctx context.Context, conn *grpc.ClientConn) {
	defer close(p.done)
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	var err error
	if p.protocol == ProtocolDelta {
		err = p.runDelta(ctx, client)
	} else {
		err = p.runSotW(ctx, client)
	}
	if err != nil && ctx.Err() == nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
}

// stall makes the proxy stop reading its stream: the next response it gets
// is not applied, and it does not read another, until resume.
func (p *proxy) stall() { p.stalled.Store(true) }

func (p *proxy) resume() {
	if p.stalled.CompareAndSwap(true, false) {
		close(p.resumeCh)
	}
}

// waitIfStalled blocks while the proxy is stalled.
func (p *proxy) waitIfStalled(ctx context.Context) {
	if !p.stalled.Load() {
		return
	}
	select {
	case <-p.resumeCh:
	case <-ctx.Done():
	}
}

func (p *proxy) runSotW(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	stream, err := client.StreamAggregatedResources(ctx, p.callOptions()...)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: p.node(), TypeUrl: resourcev3.ClusterType}); err != nil {
		return fmt.Errorf("send CDS request: %w", err)
	}
	var edsVersion, edsNonce string
	for {
		resp, err := stream.Recv()
		if err != nil {
			return recvError(err)
		}
		// A stalled proxy holds what it got and reads nothing more.
		p.waitIfStalled(ctx)
		now := time.Now()
		p.responses.Add(1)
		p.markResponse(now)
		switch resp.GetTypeUrl() {
		case resourcev3.ClusterType:
			changed, err := p.applyCDS(resp.GetResources(), nil, true)
			if err != nil {
				return err
			}
			ack := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
			if err := stream.Send(ack); err != nil {
				return fmt.Errorf("ACK CDS: %w", err)
			}
			if changed {
				req := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: p.subscriptions(), VersionInfo: edsVersion, ResponseNonce: edsNonce}
				if err := stream.Send(req); err != nil {
					return fmt.Errorf("send EDS request: %w", err)
				}
			}
		case resourcev3.EndpointType:
			if err := p.applyEDS(resp.GetResources(), nil, nil, now); err != nil {
				return err
			}
			edsVersion, edsNonce = resp.GetVersionInfo(), resp.GetNonce()
			ack := &discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, VersionInfo: edsVersion, ResponseNonce: edsNonce, ResourceNames: p.subscriptions()}
			if err := stream.Send(ack); err != nil {
				return fmt.Errorf("ACK EDS: %w", err)
			}
		default:
			return fmt.Errorf("response of type %s, which was not asked for", resp.GetTypeUrl())
		}
	}
}

func (p *proxy) runDelta(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	stream, err := client.DeltaAggregatedResources(ctx, p.callOptions()...)
	if err != nil {
		return fmt.Errorf("open delta ADS stream: %w", err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: p.node(), TypeUrl: resourcev3.ClusterType}); err != nil {
		return fmt.Errorf("send CDS request: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return recvError(err)
		}
		// A stalled proxy holds what it got and reads nothing more.
		p.waitIfStalled(ctx)
		now := time.Now()
		p.responses.Add(1)
		p.markResponse(now)
		switch resp.GetTypeUrl() {
		case resourcev3.ClusterType:
			if err := p.deltaCDS(stream, resp); err != nil {
				return err
			}
		case resourcev3.EndpointType:
			if err := p.deltaEDS(stream, resp, now); err != nil {
				return err
			}
		default:
			return fmt.Errorf("response of type %s, which was not asked for", resp.GetTypeUrl())
		}
	}
}

// deltaCDS applies a delta CDS response, ACKs it, and subscribes to the
// EDS names it adds and unsubscribes from those it drops.
func (p *proxy) deltaCDS(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, resp *discoveryv3.DeltaDiscoveryResponse) error {
	before := p.subscriptions()
	anys := make([]*anypb.Any, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		anys[i] = r.GetResource()
	}
	if _, err := p.applyCDS(anys, resp.GetRemovedResources(), false); err != nil {
		return err
	}
	ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.GetNonce()}
	if err := stream.Send(ack); err != nil {
		return fmt.Errorf("ACK CDS: %w", err)
	}
	add, remove := diffSorted(before, p.subscriptions())
	if len(add) > 0 || len(remove) > 0 {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("send EDS subscription: %w", err)
		}
	}
	return nil
}

// deltaEDS applies a delta EDS response received at now and ACKs it.
func (p *proxy) deltaEDS(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, resp *discoveryv3.DeltaDiscoveryResponse, now time.Time) error {
	anys := make([]*anypb.Any, len(resp.GetResources()))
	names := make([]string, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		anys[i], names[i] = r.GetResource(), r.GetName()
	}
	if err := p.applyEDS(anys, names, resp.GetRemovedResources(), now); err != nil {
		return err
	}
	ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: resp.GetNonce()}
	if err := stream.Send(ack); err != nil {
		return fmt.Errorf("ACK EDS: %w", err)
	}
	return nil
}

func recvError(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("the server ended the stream")
	}
	if status.Code(err) == codes.Canceled {
		return nil
	}
	return fmt.Errorf("receive: %w", err)
}

// subscriptions are the EDS names the proxy subscribes to.
func (p *proxy) subscriptions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.subs
}

// applyCDS takes clusters: all of them when full (SotW), else added or
// updated ones and removed names (delta). It reports whether the EDS
// subscriptions changed.
func (p *proxy) applyCDS(res []*anypb.Any, removed []string, full bool) (bool, error) {
	ds := make([]*decoded, len(res))
	for i, a := range res {
		d, err := p.sh.intern.get(resourcev3.ClusterType, a.GetValue())
		if err != nil {
			return false, err
		}
		ds[i] = d
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if full {
		clear(p.cds)
	}
	for _, name := range removed {
		delete(p.cds, name)
	}
	for _, d := range ds {
		p.cds[d.name] = d
	}
	subs := make([]string, 0, len(p.cds))
	for _, d := range p.cds {
		if d.edsName != "" {
			subs = append(subs, d.edsName)
		}
	}
	slices.Sort(subs)
	subs = slices.Compact(subs)
	changed := !slices.Equal(subs, p.subs)
	if changed {
		// Endpoints of clusters no longer there are dropped, as Envoy does.
		keep := make(map[string]bool, len(subs))
		for _, s := range subs {
			keep[s] = true
		}
		for name := range p.eds {
			if !keep[name] {
				p.setEDSLocked(name, nil)
			}
		}
		p.subs = subs
	}
	if p.expect != nil {
		p.cdsHave = 0
		for _, s := range subs {
			if _, ok := p.expect[s]; ok {
				p.cdsHave++
			}
		}
	}
	return changed, nil
}

// applyEDS takes endpoint resources received at now (names, in delta, as
// the response names them; else from the resource) and removed names.
func (p *proxy) applyEDS(res []*anypb.Any, names, removed []string, now time.Time) error {
	ds := make([]*decoded, len(res))
	for i, a := range res {
		d, err := p.sh.intern.get(resourcev3.EndpointType, a.GetValue())
		if err != nil {
			return err
		}
		if len(names) > i && names[i] != d.name {
			return fmt.Errorf("delta EDS resource named %q holds cluster %q", names[i], d.name)
		}
		ds[i] = d
	}
	log := p.sh.logs[p.network]
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range removed {
		p.setEDSLocked(name, nil)
	}
	for _, d := range ds {
		p.setEDSLocked(d.name, d)
		if log != nil {
			if s := log.byName[d.name]; s != nil {
				s.deliver(p, d.name, d.ips, now)
			}
		}
	}
	if p.expect != nil && p.fullAt.IsZero() && p.good == len(p.expect) && p.cdsHave == len(p.expect) {
		p.fullAt = now
	}
	p.markCompleteLocked(now)
	return nil
}

// setEDSLocked sets (or, with nil, removes) the endpoints of name and keeps
// the count of names that match the expected view.
func (p *proxy) setEDSLocked(name string, d *decoded) {
	old := p.eds[name]
	if d == nil {
		delete(p.eds, name)
	} else {
		p.eds[name] = d
	}
	if p.expect == nil {
		return
	}
	want, ok := p.expect[name]
	if !ok {
		return
	}
	if old != nil && old.canon == want {
		p.good--
	}
	if d != nil && d.canon == want {
		p.good++
	}
}

// recordDelivery counts a change of phase received after lat. The caller
// holds p.mu.
func (p *proxy) recordDelivery(phase int, lat time.Duration) {
	if p.excluded {
		return
	}
	for len(p.lat) <= phase {
		p.lat = append(p.lat, nil)
	}
	p.lat[phase] = append(p.lat[phase], lat)
	p.sh.phases[phase].delivered.Add(1)
}

// undelivered counts the changes of phase in log that p has not received.
func (p *proxy) undelivered(log *changeLog, phase int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for name, s := range log.byName {
		n += s.undelivered(p, name, phase)
	}
	return n
}

// view returns the proxy's endpoints by EDS name, in canonical form.
func (p *proxy) view() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.eds))
	for name, d := range p.eds {
		out[name] = d.canon
	}
	return out
}

// diffSorted returns what b adds to a and what it removes, both sorted.
func diffSorted(a, b []string) (add, remove []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			remove = append(remove, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			add = append(add, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, remove
}
