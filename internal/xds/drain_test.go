package xds

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// drainProxy is one proxy of a drain test: a SotW or delta stream on a
// connection of its own, with the error its stream ended with.
type drainProxy struct {
	name  string
	cc    *grpc.ClientConn
	ended <-chan error
	sotw  *sotwClient
	delta *deltaClient
}

// openDrainProxies opens n proxies on addr, alternately SotW and delta,
// one after the other: each has its first CDS response before the next
// opens, so the server saw them open in this order. ended receives the
// index of each proxy whose stream ends, in the order they end.
func openDrainProxies(t *testing.T, addr string, n int) (proxies []*drainProxy, ended <-chan int) {
	t.Helper()
	order := make(chan int, n)
	for i := range n {
		cc := dial(t, addr)
		p := &drainProxy{name: fmt.Sprintf("proxy-%d", i), cc: cc}
		nd := sidecarNode(p.name, network1, cluster1)
		errc := make(chan error, 1)
		if i%2 == 0 {
			p.sotw = newSotW(t, cc, nd)
			p.sotw.request(cdsType, nil, "", "", "")
			p.sotw.ack(p.sotw.recvType(cdsType), nil)
			in := p.sotw.in
			go func() {
				for r := range in {
					if r.Err != nil {
						errc <- r.Err
						order <- i
						return
					}
				}
			}()
		} else {
			p.delta = newDelta(t, cc, nd)
			p.delta.subscribe(cdsType, nil, nil)
			p.delta.ack(p.delta.recvType(cdsType))
			in := p.delta.in
			go func() {
				for r := range in {
					if r.Err != nil {
						errc <- r.Err
						order <- i
						return
					}
				}
			}()
		}
		p.ended = errc
		proxies = append(proxies, p)
	}
	return proxies, order
}

// wantDrained checks that a stream ended as a drain ends it.
func wantDrained(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "draining") {
		t.Errorf("%s ended with %v, want Unavailable saying the control plane is draining", what, err)
	}
}

// steppedDrain replaces the server's drain pauses by steps the test takes:
// each pause is announced on the returned channel (with the time it waits
// for) and lasts until the test sends on release.
func steppedDrain(s *Server) (pauses <-chan time.Time, release chan<- struct{}) {
	p, r := make(chan time.Time), make(chan struct{})
	s.drain.pause = func(ctx context.Context, at time.Time) error {
		select {
		case p <- at:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-r:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return p, r
}

// A drain ends the open streams one at a time, oldest first, at even
// steps of the window; new streams are refused meanwhile. The test steps
// the drain's clock by hand, and counts the streams that ended at each
// step from the clients' side.
func TestDrainSpreadsStreamsOverTheWindow(t *testing.T) {
	m := rawMesh(t, Config{})
	addr := serve(t, m.srv)
	const n = 6
	proxies, order := openDrainProxies(t, addr, n)
	pauses, release := steppedDrain(m.srv)

	const window = time.Minute
	done := make(chan int, 1)
	go func() { done <- m.srv.Drain(t.Context(), window) }()

	var first time.Time
	for step := 1; step < n; step++ {
		// The drain pauses before ending stream `step`: streams 0 to
		// step-1 have ended, in order, and no other.
		var at time.Time
		select {
		case at = <-pauses:
		case <-time.After(wait):
			t.Fatalf("step %d: the drain did not pause", step)
		}
		if step == 1 {
			first = at
		} else if got, want := at.Sub(first), window*time.Duration(step-1)/n; got != want {
			t.Errorf("step %d is %v after step 1, want %v (an even spread)", step, got, want)
		}
		select {
		case i := <-order:
			if i != step-1 {
				t.Errorf("step %d: proxy %d ended, want proxy %d (oldest first)", step, i, step-1)
			}
		case <-time.After(wait):
			t.Fatalf("step %d: no stream ended", step)
		}
		waitOpenStreams(t, m.srv, n-step)
		select {
		case i := <-order:
			t.Fatalf("step %d: proxy %d ended before its step", step, i)
		default:
		}
		if step == 2 {
			// New streams are refused, on a new connection and on one
			// of a proxy still connected.
			for what, cc := range map[string]*grpc.ClientConn{"new connection": dial(t, addr), "existing connection": proxies[n-1].cc} {
				st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(t.Context())
				if err == nil {
					_, err = st.Recv()
				}
				wantDrained(t, "a stream opened during the drain ("+what+")", err)
			}
		}
		release <- struct{}{}
	}
	select {
	case got := <-done:
		if got != n {
			t.Errorf("Drain ended %d streams, want %d", got, n)
		}
	case <-time.After(wait):
		t.Fatal("Drain did not return after its last step")
	}
	if i := <-order; i != n-1 {
		t.Errorf("last proxy to end: %d, want %d", i, n-1)
	}
	for _, p := range proxies {
		wantDrained(t, p.name, <-p.ended)
	}
	waitOpenStreams(t, m.srv, 0)
}

// A drain whose context ends (the window is over, or the operator is in a
// hurry) ends every stream still open at once; so does a zero window.
func TestDrainEndsTheRestWhenItsTimeIsUp(t *testing.T) {
	t.Run("context ends", func(t *testing.T) {
		m := rawMesh(t, Config{})
		proxies, _ := openDrainProxies(t, serve(t, m.srv), 4)
		pauses, _ := steppedDrain(m.srv)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan int, 1)
		go func() { done <- m.srv.Drain(ctx, time.Hour) }()
		<-pauses // before the second stream
		cancel()
		if got := <-done; got != 4 {
			t.Errorf("Drain ended %d streams, want 4", got)
		}
		for _, p := range proxies {
			wantDrained(t, p.name, <-p.ended)
		}
	})
	t.Run("zero window", func(t *testing.T) {
		m := rawMesh(t, Config{})
		proxies, _ := openDrainProxies(t, serve(t, m.srv), 4)
		m.srv.drain.pause = func(context.Context, time.Time) error {
			t.Error("a drain without a window paused")
			return nil
		}
		if got := m.srv.Drain(t.Context(), 0); got != 4 {
			t.Errorf("Drain ended %d streams, want 4", got)
		}
		for _, p := range proxies {
			wantDrained(t, p.name, <-p.ended)
		}
	})
}

// waitOpenStreams waits until the server holds n open ADS streams (their
// handlers running).
func waitOpenStreams(t *testing.T, s *Server, n int) {
	t.Helper()
	testkit.Eventually(t, wait, "open ADS streams", func() string {
		s.drain.mu.Lock()
		got := len(s.drain.streams)
		s.drain.mu.Unlock()
		if got != n {
			return fmt.Sprintf("%d open streams, want %d", got, n)
		}
		return ""
	})
}

// A stream a drain ends before it asked for anything (so no watch is
// there to wake its handler) ends with the drain at its first request,
// SotW and delta alike: the watch it asks for is refused.
func TestDrainEndsAStreamAtItsFirstRequest(t *testing.T) {
	m := rawMesh(t, Config{})
	addr := serve(t, m.srv)
	sotw := newSotW(t, dial(t, addr), sidecarNode("quiet-sotw", network1, cluster1))
	delta := newDelta(t, dial(t, addr), sidecarNode("quiet-delta", network1, cluster1))
	waitOpenStreams(t, m.srv, 2)
	if got := m.srv.Drain(t.Context(), 0); got != 2 {
		t.Fatalf("Drain ended %d streams, want 2", got)
	}
	sotw.request(cdsType, nil, "", "", "")
	delta.subscribe(cdsType, nil, nil)
	for name, in := range map[string]<-chan error{"SotW": firstErr(sotw.in), "delta": firstErr(delta.in)} {
		select {
		case err := <-in:
			wantDrained(t, name+" stream", err)
		case <-time.After(wait):
			t.Fatalf("the %s stream was not ended by its first request after the drain", name)
		}
	}
	waitOpenStreams(t, m.srv, 0)
}

// firstErr gives the error a stream's reader ends with.
func firstErr[T any](in <-chan testkit.Received[T]) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for r := range in {
			if r.Err != nil {
				errc <- r.Err
				return
			}
		}
	}()
	return errc
}
