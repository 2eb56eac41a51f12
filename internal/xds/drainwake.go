package xds

import (
	"context"
	"sync"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// drainWake lets a drain end an ADS stream whose handler is idle.
//
// go-control-plane's handler waits in a loop for the stream's next request
// or for a response on the one channel the stream's watches answer on; the
// receive of the next request runs on a goroutine of its own and cannot be
// interrupted. So a drain ends an idle stream the way a response would
// wake it: it puts drainResponse on that channel, whose conversion fails
// with errDraining, which ends go-control-plane's loop and with it the
// handler (the stream then ends with errDraining, Unavailable, and gRPC
// fails the receive in progress). A stream that has no watch yet is ended
// by the next one it asks for (watching refuses it), and one in the middle
// of a send by the send (timedStream.SendMsg).
//
// This costs nothing per message. A receive made drainable (a goroutine
// beside each receive, or one per stream that each receive hands its
// message to) cost the server about a tenth of its CPU at the load bench's
// target size; a stream context the drain cancels makes gRPC itself answer
// the proxy with Canceled rather than Unavailable.
type drainWake struct {
	// drain is closed when a drain ends the stream (nil: never); set
	// before the stream's handler starts.
	drain <-chan struct{}

	mu sync.Mutex
	// The channel go-control-plane gave the stream's watches, once the
	// first watch is made (SotW or delta; nil until then).
	sotw  chan<- cache.Response
	delta chan<- cache.DeltaResponse
	woken bool
}

// watching notes the channel the stream's watches answer on, before a
// watch is made; it refuses the watch (errDraining) once a drain ended the
// stream.
func (w *drainWake) watching(sotw chan cache.Response, delta chan cache.DeltaResponse) error {
	w.mu.Lock()
	if sotw != nil {
		w.sotw = sotw
	}
	if delta != nil {
		w.delta = delta
	}
	w.mu.Unlock()
	select {
	case <-w.drain:
		return errDraining
	default:
		return nil
	}
}

// wake puts drainResponse on the stream's watch channel: call it after the
// drain channel closed. It never blocks: when the channel is full, the
// handler has responses to send, and the first send fails with the drain.
// The channel has room for two responses of every type, more than the
// stream has watches, so the marker never takes a watch's room.
func (w *drainWake) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.woken {
		return
	}
	w.woken = true
	switch {
	case w.delta != nil:
		select {
		case w.delta <- drainResponse{}:
		default:
		}
	case w.sotw != nil:
		select {
		case w.sotw <- drainResponse{}:
		default:
		}
	}
}

// watchingFrom is watching for the stream of ctx (a timedStream's); nil for
// a context without one.
func watchingFrom(ctx context.Context, sotw chan cache.Response, delta chan cache.DeltaResponse) error {
	if slot := slotFrom(ctx); slot != nil {
		return slot.wake.watching(sotw, delta)
	}
	return nil
}

// drainResponse is the response a drain puts on a stream's watch channel:
// every conversion to a message fails with errDraining.
type drainResponse struct{}

var (
	_ cache.Response      = drainResponse{}
	_ cache.DeltaResponse = drainResponse{}
)

func (drainResponse) GetDiscoveryResponse() (*discoverygrpc.DiscoveryResponse, error) {
	return nil, errDraining
}

func (drainResponse) GetDeltaDiscoveryResponse() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	return nil, errDraining
}
func (drainResponse) GetRequest() *discoverygrpc.DiscoveryRequest           { return nil }
func (drainResponse) GetDeltaRequest() *discoverygrpc.DeltaDiscoveryRequest { return nil }
func (drainResponse) GetVersion() (string, error)                           { return "", errDraining }
func (drainResponse) GetSystemVersion() (string, error)                     { return "", errDraining }
func (drainResponse) GetResponseVersion() string                            { return "" }
func (drainResponse) GetReturnedResources() map[string]string               { return nil }
func (drainResponse) GetNextVersionMap() map[string]string                  { return nil }
func (drainResponse) GetContext() context.Context                           { return context.Background() }
