package testkit

import (
	"net"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// scriptedADS answers the first request of a stream with n responses
// (versions "0", "1", ...) and ends the stream with ResourceExhausted; with
// n < 0 it answers nothing and waits for the client to leave.
type scriptedADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	n int
}

func (s scriptedADS) StreamAggregatedResources(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	if _, err := st.Recv(); err != nil {
		return err
	}
	if s.n < 0 {
		<-st.Context().Done()
		return st.Context().Err()
	}
	for i := range s.n {
		if err := st.Send(&discoveryv3.DiscoveryResponse{VersionInfo: strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	return status.Error(codes.ResourceExhausted, "enough")
}

func (s scriptedADS) DeltaAggregatedResources(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	if _, err := st.Recv(); err != nil {
		return err
	}
	for i := range s.n {
		if err := st.Send(&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: strconv.Itoa(i)}); err != nil {
			return err
		}
	}
	return status.Error(codes.ResourceExhausted, "enough")
}

func startScripted(t *testing.T, n int) *grpc.ClientConn {
	t.Helper()
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, scriptedADS{n: n})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// next receives from r within waitADS.
func next[T any](t *testing.T, r *Reader[T]) (Received[T], bool) {
	t.Helper()
	select {
	case got, ok := <-r.C:
		return got, ok
	case <-time.After(waitADS):
		t.Fatal("nothing from the reader")
		return Received[T]{}, false
	}
}

func TestReadGivesTheResponsesInOrderThenTheEnd(t *testing.T) {
	ads := OpenADS(t.Context(), t, startScripted(t, 3), &corev3.Node{Id: "n"})
	r := ads.Read(1) // fewer than the server sends: the reader waits for the test
	if err := ads.Request("cds"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		got, ok := next(t, r)
		if !ok || got.Err != nil || got.Msg.GetVersionInfo() != strconv.Itoa(i) {
			t.Fatalf("read %d: %v, %v, ok %v; want version %d", i, got.Msg, got.Err, ok, i)
		}
	}
	got, ok := next(t, r)
	if !ok || status.Code(got.Err) != codes.ResourceExhausted {
		t.Fatalf("after the responses: %v, ok %v; want the stream's ResourceExhausted", got, ok)
	}
	if _, ok := next(t, r); ok {
		t.Fatal("the channel is open after the end")
	}
	<-r.Done()
	if status.Code(r.Err()) != codes.ResourceExhausted {
		t.Fatalf("Err: %v, want ResourceExhausted", r.Err())
	}
}

func TestDeltaReadGivesTheResponsesThenTheEnd(t *testing.T) {
	ads := OpenDeltaADS(t.Context(), t, startScripted(t, 2), &corev3.Node{Id: "n"})
	r := ads.Read(4)
	if err := ads.Subscribe("cds"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got, _ := next(t, r); got.Msg.GetSystemVersionInfo() != strconv.Itoa(i) {
			t.Fatalf("read %d: %v, %v; want version %d", i, got.Msg, got.Err, i)
		}
	}
	if got, _ := next(t, r); status.Code(got.Err) != codes.ResourceExhausted {
		t.Fatalf("after the responses: %v; want ResourceExhausted", got.Err)
	}
}

func TestCloseEndsTheStreamAndItsReader(t *testing.T) {
	ads := OpenADS(t.Context(), t, startScripted(t, -1), &corev3.Node{Id: "n"})
	r := ads.Read(1)
	if err := ads.Request("cds"); err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err of a running stream: %v, want nil", err)
	}
	closed := make(chan struct{})
	go func() { ads.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitADS):
		t.Fatal("Close did not return")
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("the reader has not ended after Close")
	}
	if status.Code(r.Err()) != codes.Canceled {
		t.Fatalf("Err after Close: %v, want Canceled", r.Err())
	}
}
