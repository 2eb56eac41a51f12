package testkit

import (
	"cmp"
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// ADS is a test's state-of-the-world ADS stream: it sends requests (the
// node on the first only), receives responses, and ACKs or NACKs them.
// It is closed when the test ends.
type ADS struct {
	Stream   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool

	t      testing.TB
	ctx    context.Context // the stream's, for its reader
	cancel context.CancelFunc
	reader <-chan struct{} // closed when Read's goroutine has returned
}

// DialADS opens a state-of-the-world ADS stream to addr as node, for as
// long as ctx and the test last. Without opts the connection is plaintext.
func DialADS(ctx context.Context, t testing.TB, addr string, node *corev3.Node, opts ...grpc.DialOption) *ADS {
	t.Helper()
	conn, ctx := dial(ctx, t, addr, opts)
	return OpenADS(ctx, t, conn, node)
}

// Request asks for names of typeURL (none: all of the type).
func (a *ADS) Request(typeURL string, names ...string) error {
	return a.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// Recv returns the next response.
func (a *ADS) Recv() (*discoveryv3.DiscoveryResponse, error) { return a.Stream.Recv() }

// ACK accepts resp, still subscribed to names.
func (a *ADS) ACK(resp *discoveryv3.DiscoveryResponse, names ...string) error {
	return a.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: names,
		VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
}

// NACK rejects resp with detail, still subscribed to names; the version is
// left empty, as a proxy that accepted nothing of the type yet sends it.
func (a *ADS) NACK(resp *discoveryv3.DiscoveryResponse, detail string, names ...string) error {
	return a.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: names,
		ResponseNonce: resp.GetNonce(), ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: detail}})
}

// Send sends req, with the node on the stream's first request only, as
// Envoy does (a node req already carries is left as it is).
func (a *ADS) Send(req *discoveryv3.DiscoveryRequest) error {
	if !a.sentNode {
		req.Node, a.sentNode = cmp.Or(req.Node, a.node), true
	}
	return a.Stream.Send(req)
}

// DeltaADS is a test's incremental ADS stream, like ADS.
type DeltaADS struct {
	Stream   discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool

	t      testing.TB
	ctx    context.Context // the stream's, for its reader
	cancel context.CancelFunc
	reader <-chan struct{} // closed when Read's goroutine has returned
}

// DialDeltaADS opens an incremental ADS stream to addr as node, for as
// long as ctx and the test last. Without opts the connection is plaintext.
func DialDeltaADS(ctx context.Context, t testing.TB, addr string, node *corev3.Node, opts ...grpc.DialOption) *DeltaADS {
	t.Helper()
	conn, ctx := dial(ctx, t, addr, opts)
	return OpenDeltaADS(ctx, t, conn, node)
}

// Subscribe adds names of typeURL to the subscription (none on the first
// request of a type: all of it).
func (d *DeltaADS) Subscribe(typeURL string, names ...string) error {
	return d.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

// Recv returns the next response.
func (d *DeltaADS) Recv() (*discoveryv3.DeltaDiscoveryResponse, error) { return d.Stream.Recv() }

// ACK accepts resp.
func (d *DeltaADS) ACK(resp *discoveryv3.DeltaDiscoveryResponse) error {
	return d.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

// NACK rejects resp with detail.
func (d *DeltaADS) NACK(resp *discoveryv3.DeltaDiscoveryResponse, detail string) error {
	return d.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(),
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: detail}})
}

// Send sends req, with the node on the stream's first request only, as
// Envoy does (a node req already carries is left as it is).
func (d *DeltaADS) Send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !d.sentNode {
		req.Node, d.sentNode = cmp.Or(req.Node, d.node), true
	}
	return d.Stream.Send(req)
}

// dial connects to addr for the test's lifetime and returns a context that
// ends with ctx or the test.
func dial(ctx context.Context, t testing.TB, addr string, opts []grpc.DialOption) (*grpc.ClientConn, context.Context) {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); _ = conn.Close() })
	return conn, ctx
}

// FirstResponse opens an ADS stream on conn (delta or state of the world),
// asks for every resource of typeURL as node, and returns the error of the
// first answer: nil when a response came, else the stream's status (how a
// refused proxy sees it). ctx carries the call's metadata and deadline.
func FirstResponse(ctx context.Context, conn grpc.ClientConnInterface, delta bool, node *corev3.Node, typeURL string) error {
	c := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	if delta {
		st, err := c.DeltaAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	st, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}
