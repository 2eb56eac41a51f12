package parity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Resource type URLs, spelled out rather than taken from the server under
// test.
const (
	TypeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	TypeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

const (
	// DefaultWait is how long Fetch waits for each type's answer.
	DefaultWait = 10 * time.Second
	// maxMessage bounds one response: a test's clusters give well under
	// a megabyte, a server gone wrong cannot exhaust memory.
	maxMessage = 16 << 20
)

// Snapshot is one server's answer to one proxy: the resources of each
// type by name, and what it did not answer within the wait.
type Snapshot struct {
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	// Unanswered lists the requests (TYPE or TYPE NAMES) the server did not
	// answer before the wait ran out, or rejected with an error.
	Unanswered []string
}

// FetchOptions tunes [Fetch].
type FetchOptions struct {
	// Wait is how long to wait for each type's answer; 0 is DefaultWait.
	// A type not answered in time is recorded in Snapshot.Unanswered and
	// the fetch goes on, as an Envoy would keep running without it.
	Wait time.Duration
	// Credentials secure the connection (the secure port's TLS); nil:
	// plaintext.
	Credentials credentials.TransportCredentials
	// Metadata is sent on the stream (e.g. authorization: Bearer TOKEN,
	// as pilot-agent sends its service-account token to the secure port).
	Metadata metadata.MD
}

// Fetch connects to the ADS server at addr (plaintext unless
// opts.Credentials says otherwise) as node and asks,
// as Envoy does, for CDS, then EDS for the clusters of type EDS, then LDS,
// then RDS for the route configurations the listeners' HTTP connection
// managers name, acknowledging every answer. It returns the resources of
// the last answer of each type. ctx bounds the whole fetch.
func Fetch(ctx context.Context, addr string, node *corev3.Node, opts FetchOptions) (*Snapshot, error) {
	wait := opts.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	creds := opts.Credentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("connect to xDS server %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Metadata != nil {
		ctx = metadata.NewOutgoingContext(ctx, opts.Metadata)
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("open ADS stream to %s: %w", addr, err)
	}
	f := &fetcher{stream: stream, node: node, wait: wait, acked: map[string]*discoveryv3.DiscoveryResponse{}, subs: map[string][]string{}}
	f.responses = make(chan *discoveryv3.DiscoveryResponse, 16)
	f.recvErr = make(chan error, 1)
	go f.receive()

	snap := &Snapshot{
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{},
	}
	steps := []struct {
		typeURL string
		names   func() []string
		store   func(*discoveryv3.DiscoveryResponse) error
	}{
		{TypeCluster, nil, func(r *discoveryv3.DiscoveryResponse) error { return decodeInto(r, snap.Clusters) }},
		{TypeEndpoint, snap.edsNames, func(r *discoveryv3.DiscoveryResponse) error { return decodeCLAs(r, snap.Endpoints) }},
		{TypeListener, nil, func(r *discoveryv3.DiscoveryResponse) error { return decodeInto(r, snap.Listeners) }},
		{TypeRoute, snap.rdsNames, func(r *discoveryv3.DiscoveryResponse) error { return decodeInto(r, snap.Routes) }},
	}
	for _, s := range steps {
		var names []string
		if s.names != nil {
			if names = s.names(); len(names) == 0 {
				continue
			}
		}
		resp, err := f.request(ctx, s.typeURL, names)
		if err != nil {
			if errors.Is(err, errNoAnswer) {
				what := shortType(s.typeURL)
				if len(names) > 0 {
					what += fmt.Sprintf(" %v", names)
				}
				snap.Unanswered = append(snap.Unanswered, what)
				continue
			}
			return nil, fmt.Errorf("xDS server %s, %s: %w", addr, shortType(s.typeURL), err)
		}
		if err := s.store(resp); err != nil {
			return nil, fmt.Errorf("xDS server %s: %w", addr, err)
		}
	}
	return snap, nil
}

var errNoAnswer = errors.New("no answer")

type fetcher struct {
	stream    discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node      *corev3.Node
	wait      time.Duration
	responses chan *discoveryv3.DiscoveryResponse
	recvErr   chan error
	// acked is the last answer of each type, acknowledged; subs the names
	// subscribed to of each type (none: all of them).
	acked map[string]*discoveryv3.DiscoveryResponse
	subs  map[string][]string
}

func (f *fetcher) receive() {
	for {
		resp, err := f.stream.Recv()
		if err != nil {
			f.recvErr <- err
			close(f.responses)
			return
		}
		select {
		case f.responses <- resp:
		case <-f.stream.Context().Done():
			return
		}
	}
}

// request subscribes to typeURL (names, or every resource when empty) and
// waits for its answer, acknowledging it and any answer of another type
// that comes meanwhile (a server may push).
func (f *fetcher) request(ctx context.Context, typeURL string, names []string) (*discoveryv3.DiscoveryResponse, error) {
	f.subs[typeURL] = names
	req := &discoveryv3.DiscoveryRequest{Node: f.node, TypeUrl: typeURL, ResourceNames: names}
	if prev := f.acked[typeURL]; prev != nil {
		req.VersionInfo, req.ResponseNonce = prev.GetVersionInfo(), prev.GetNonce()
	}
	if err := f.stream.Send(req); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	timer := time.NewTimer(f.wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, errNoAnswer
		case resp, ok := <-f.responses:
			if !ok {
				err := <-f.recvErr
				if errors.Is(err, io.EOF) {
					err = errors.New("the server ended the stream")
				}
				return nil, fmt.Errorf("%w (%w)", errNoAnswer, err)
			}
			f.acked[resp.GetTypeUrl()] = resp
			ack := &discoveryv3.DiscoveryRequest{
				Node: f.node, TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(),
				ResourceNames: f.subs[resp.GetTypeUrl()],
			}
			if err := f.stream.Send(ack); err != nil {
				return nil, fmt.Errorf("send ACK: %w", err)
			}
			if resp.GetTypeUrl() == typeURL {
				return resp, nil
			}
		}
	}
}

// decodeInto decodes every resource of resp into m, by name.
func decodeInto[T interface {
	proto.Message
	GetName() string
}](resp *discoveryv3.DiscoveryResponse, m map[string]T) error {
	for _, res := range resp.GetResources() {
		var zero T
		msg := zero.ProtoReflect().New().Interface()
		if err := res.UnmarshalTo(msg); err != nil {
			return fmt.Errorf("decode %s: %w", res.GetTypeUrl(), err)
		}
		v, ok := msg.(T)
		if !ok {
			return fmt.Errorf("decode %s: unexpected %T", res.GetTypeUrl(), msg)
		}
		m[v.GetName()] = v
	}
	return nil
}

// decodeCLAs is decodeInto for ClusterLoadAssignments, named by cluster.
func decodeCLAs(resp *discoveryv3.DiscoveryResponse, m map[string]*endpointv3.ClusterLoadAssignment) error {
	for _, res := range resp.GetResources() {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := res.UnmarshalTo(cla); err != nil {
			return fmt.Errorf("decode %s: %w", res.GetTypeUrl(), err)
		}
		m[cla.GetClusterName()] = cla
	}
	return nil
}

// edsNames are the EDS resource names of the clusters of type EDS.
func (s *Snapshot) edsNames() []string {
	var names []string
	for name, c := range s.Clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		if sn := c.GetEdsClusterConfig().GetServiceName(); sn != "" {
			name = sn
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// rdsNames are the route configurations the listeners' HTTP connection
// managers take from RDS.
func (s *Snapshot) rdsNames() []string {
	var names []string
	for _, l := range s.Listeners {
		for _, fc := range allChains(l) {
			for _, filter := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if filter.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					names = append(names, n)
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// allChains is a listener's filter chains and its default one.
func allChains(l *listenerv3.Listener) []*listenerv3.FilterChain {
	chains := slices.Clone(l.GetFilterChains())
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	return chains
}

func shortType(typeURL string) string {
	switch typeURL {
	case TypeCluster:
		return "CDS"
	case TypeEndpoint:
		return "EDS"
	case TypeListener:
		return "LDS"
	case TypeRoute:
		return "RDS"
	}
	return typeURL
}
