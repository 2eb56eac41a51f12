package xds

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// timedStream wraps a server stream so that no SendMsg blocks longer than
// the send timeout once its response has its share of the send budget.
// gRPC's SendMsg blocks while the client's flow-control window is full,
// that is, for as long as the client does not read; the only way to
// unblock it is to end the stream, which only the handler can do by
// returning. So the sends run on a goroutine of their own and SendMsg
// waits for it with a timer: on timeout it fails the stream
// (DeadlineExceeded), go-control-plane returns, gRPC finishes the stream,
// and the send still blocked in the transport then fails and the goroutine
// ends (stop).
//
// go-control-plane sends from one goroutine per stream, one response at a
// time, so one send is in flight at most.
type timedStream struct {
	grpc.ServerStream
	ctx     context.Context
	slot    *streamSlot
	timeout time.Duration
	onStuck func(slot *streamSlot)
	// holds are the stream's shares of the server's send budget.
	holds *streamHolds

	msgs chan any
	// started says that the send of the message handed over has its
	// share of the send budget and is now up to the client.
	started chan struct{}
	results chan error
	done    chan struct{}
	timer   *time.Timer
	failed  error
	// drain is closed when a drain ends the stream (nil: never); left
	// tells the drainer the stream is gone (nil: nothing to tell).
	drain <-chan struct{}
	left  func()
}

// streamSlot travels in the stream's context so that the callbacks can tell
// the wrapper which go-control-plane stream it carries (for logs), and so
// that a drain can reach the stream's handler (drainwake.go).
type streamSlot struct {
	id atomic.Int64
	// wake is what a drain needs to end the stream's handler.
	wake drainWake
}

type streamSlotKey struct{}

// slotFrom returns the slot a timedStream put into ctx, or nil.
func slotFrom(ctx context.Context) *streamSlot {
	s, _ := ctx.Value(streamSlotKey{}).(*streamSlot)
	return s
}

func (s *Server) newTimedStream(st grpc.ServerStream) *timedStream {
	slot := &streamSlot{}
	t := &timedStream{
		ServerStream: st,
		ctx:          context.WithValue(st.Context(), streamSlotKey{}, slot),
		slot:         slot,
		timeout:      s.cfg.SendTimeout,
		onStuck:      s.sendTimedOut,
		holds:        &streamHolds{b: s.budget, cb: s.budget.conn(peerKey(st.Context()))},
		msgs:         make(chan any),
		started:      make(chan struct{}, 1),
		// One slot: the result of a send given up on is left there, so
		// the goroutine never blocks on it.
		results: make(chan error, 1),
		done:    make(chan struct{}),
		timer:   time.NewTimer(time.Hour),
	}
	t.timer.Stop()
	go t.run()
	return t
}

// Context returns the stream's context, carrying the stream slot.
func (t *timedStream) Context() context.Context { return t.ctx }

// SendMsg sends m, or fails the stream if that takes longer than the
// timeout.
func (t *timedStream) SendMsg(m any) error {
	if t.failed != nil {
		return t.failed
	}
	select {
	case t.msgs <- m:
	case <-t.ctx.Done():
		return status.FromContextError(t.ctx.Err()).Err()
	case <-t.drain:
		t.failed = errDraining
		return t.failed
	}
	// The timeout runs from when the response has its share of the send
	// budget. Waiting for the share is waiting for other proxies' sends,
	// which always progresses (each share comes back within maxHold), not
	// this client failing to read: at 1,000 proxies on a mesh of 5,000
	// services, the last in the queue waited longer than the timeout and
	// was disconnected, only to reconnect and queue again.
	select {
	case <-t.started:
	case err := <-t.results: // the stream ended while it waited, or the wait was too long
		if status.Code(err) == codes.ResourceExhausted {
			t.failed = err
		}
		return err
	case <-t.drain:
		// The send goroutine gives up its wait with the stream's end.
		t.failed = errDraining
		return t.failed
	}
	t.timer.Reset(t.timeout)
	select {
	case err := <-t.results:
		t.timer.Stop()
		return err
	case <-t.timer.C:
		t.failed = status.Errorf(codes.DeadlineExceeded,
			"sending a response took longer than %s (the client is not reading); closing the stream", t.timeout)
		t.onStuck(t.slot)
		return t.failed
	case <-t.drain:
		t.timer.Stop()
		t.failed = errDraining
		return t.failed
	}
}

// run performs the sends.
func (t *timedStream) run() {
	for {
		select {
		case m := <-t.msgs:
			if err := t.holds.take(t.ctx, m); err != nil {
				if _, ok := status.FromError(err); !ok {
					err = status.FromContextError(err).Err()
				}
				t.results <- err
				continue
			}
			t.started <- struct{}{}
			t.results <- t.ServerStream.SendMsg(m)
		case <-t.done:
			return
		}
	}
}

// stop ends the send and receive goroutines once their send or receive
// in flight, if any, returns: call it when the handler returns, after
// which gRPC ends the stream and fails that send and that receive.
func (t *timedStream) stop() {
	if t.left != nil {
		t.left()
	}
	t.timer.Stop()
	close(t.done)
	t.holds.releaseAll()
	t.holds.b.leave(t.holds.cb)
}

// result is the status the stream ends with: err, go-control-plane's, or
// the reason the stream failed a send, which go-control-plane reports as
// Unavailable.
func (t *timedStream) result(err error) error {
	if t.failed != nil {
		return t.failed
	}
	select {
	case <-t.drain:
		return errDraining
	default:
		return err
	}
}

// peerKey identifies the client connection of a stream: its address.
func peerKey(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.Network() + "/" + p.Addr.String()
	}
	return ""
}

// RecvMsg receives a request; one that answers a response gives back the
// send budget that type's responses held.
//
// It receives on the caller's goroutine: a drain does not need to
// interrupt a receive, since it ends the stream through its handler
// (drainwake.go), after which gRPC fails the receive in progress.
func (t *timedStream) RecvMsg(m any) error {
	if err := t.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if typeURL := requestType(m); typeURL != "" {
		t.holds.answered(typeURL)
	}
	return nil
}

// sendTimedOut counts and logs a stream closed for a blocked send.
func (s *Server) sendTimedOut(slot *streamSlot) {
	s.metrics.sendTimeouts.Inc()
	key := slot.id.Load() // the registry's key of the stream
	attrs := []any{"timeout", s.cfg.SendTimeout}
	if c := s.reg.stream(key); c != nil {
		attrs = append(attrs, "stream", c.stream, "protocol", c.protocol)
	}
	if p, ok := s.reg.proxyOf(key); ok {
		attrs = append(attrs, "proxy", p.ID)
	}
	s.log.Warn("closing xDS stream: a send blocked past the send timeout", attrs...)
}
