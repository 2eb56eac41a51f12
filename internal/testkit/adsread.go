package testkit

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
)

// OpenADS opens a state-of-the-world ADS stream on conn as node. The
// stream ends with ctx or the test.
func OpenADS(ctx context.Context, t testing.TB, conn grpc.ClientConnInterface, node *corev3.Node) *ADS {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open an ADS stream: %v", err)
	}
	return &ADS{Stream: stream, node: node, t: t, ctx: ctx, cancel: cancel}
}

// OpenDeltaADS opens an incremental ADS stream on conn as node, like
// OpenADS.
func OpenDeltaADS(ctx context.Context, t testing.TB, conn grpc.ClientConnInterface, node *corev3.Node) *DeltaADS {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("open a delta ADS stream: %v", err)
	}
	return &DeltaADS{Stream: stream, node: node, t: t, ctx: ctx, cancel: cancel}
}

// Read reads the stream's responses on a goroutine (see Reader); the
// caller then receives through the Reader only.
func (a *ADS) Read(buffer int) *Reader[discoveryv3.DiscoveryResponse] {
	r := startReader(a.ctx, a.t, a.cancel, a.Stream.Recv, buffer)
	a.reader = r.exited
	return r
}

// Read reads the stream's responses on a goroutine (see Reader); the
// caller then receives through the Reader only.
func (d *DeltaADS) Read(buffer int) *Reader[discoveryv3.DeltaDiscoveryResponse] {
	r := startReader(d.ctx, d.t, d.cancel, d.Stream.Recv, buffer)
	d.reader = r.exited
	return r
}

// Close ends the stream and, if it is being read, waits for its reader.
func (a *ADS) Close() { endStream(a.cancel, a.reader) }

// Close ends the stream and, if it is being read, waits for its reader.
func (d *DeltaADS) Close() { endStream(d.cancel, d.reader) }

// endStream cancels a stream and waits for its reader, if it has one.
func endStream(cancel context.CancelFunc, reader <-chan struct{}) {
	cancel()
	if reader != nil {
		<-reader
	}
}

// Received is one read of a stream: a response, or the error that ended
// the stream.
type Received[T any] struct {
	Msg *T
	Err error
}

// Reader is a stream read on a goroutine, so that a test can wait for a
// response with a timeout. C holds up to the buffer's count of responses
// (a test that stops reading stops the reader: the server sees a proxy
// that does not read), then the error that ended the stream, then it is
// closed. The reader ends with the stream; the test's end ends both.
type Reader[T any] struct {
	C <-chan Received[T]

	done   chan struct{}
	err    error         // set before done is closed
	exited chan struct{} // closed when the goroutine has returned
}

// Done is closed once the stream has ended.
func (r *Reader[T]) Done() <-chan struct{} { return r.done }

// Err is why the stream ended; nil while it runs.
func (r *Reader[T]) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// startReader starts reading recv into a Reader with room for buffer
// responses; cancel ends the stream (at the test's end at the latest) and
// the reader is waited for.
func startReader[T any](ctx context.Context, t testing.TB, cancel context.CancelFunc, recv func() (*T, error), buffer int) *Reader[T] {
	ch := make(chan Received[T], buffer)
	r := &Reader[T]{C: ch, done: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(r.exited)
		defer close(ch)
		for {
			msg, err := recv()
			if err != nil {
				r.err = err
				close(r.done)
				select {
				case ch <- Received[T]{Err: err}:
				case <-ctx.Done():
				}
				return
			}
			select {
			case ch <- Received[T]{Msg: msg}:
			case <-ctx.Done():
				r.err = ctx.Err()
				close(r.done)
				return
			}
		}
	}()
	t.Cleanup(func() { endStream(cancel, r.exited) })
	return r
}
