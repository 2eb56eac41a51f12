package bench

import (
	"context"
	"errors"
	"io"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// streamRecord is one ADS stream of a failover proxy.
type streamRecord struct {
	replica   int
	start     time.Time
	firstResp time.Time
	complete  time.Time
}

// callOptions: a failover proxy fails fast on a replica that is down (and
// tries the other); the others wait for the server to listen.
func (p *proxy) callOptions() []grpc.CallOption {
	if p.failover {
		return nil
	}
	return []grpc.CallOption{grpc.WaitForReady(true)}
}

// markResponse records the first response of the current stream.
func (p *proxy) markResponse(now time.Time) {
	if !p.failover {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.streams); n > 0 && p.streams[n-1].firstResp.IsZero() {
		p.streams[n-1].firstResp = now
	}
}

// markCompleteLocked records when the current stream first holds a complete
// view: clusters, and endpoints for each. The caller holds p.mu.
func (p *proxy) markCompleteLocked(now time.Time) {
	n := len(p.streams)
	if !p.failover || n == 0 || !p.streams[n-1].complete.IsZero() || len(p.subs) == 0 {
		return
	}
	for _, s := range p.subs {
		if _, ok := p.eds[s]; !ok {
			return
		}
	}
	p.streams[n-1].complete = now
}

// beginStream forgets what the previous stream delivered (a new stream
// starts from nothing: no initial_resource_versions are sent) and records
// the new one. Delivered changes stay delivered.
func (p *proxy) beginStream(replica int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.cds)
	for name := range p.eds {
		p.setEDSLocked(name, nil)
	}
	p.subs = nil
	p.streams = append(p.streams, &streamRecord{replica: replica, start: time.Now()})
}

// runFailover speaks ADS to replica first, and whenever the stream ends,
// to the next replica, until ctx ends. Streams that end because a replica
// went away are expected; a stream that fails otherwise (a bad resource)
// is kept in p.err.
func (p *proxy) runFailover(ctx context.Context, addrs []string, first int) {
	defer close(p.done)
	cur := first
	// The proxy stays with its first replica until that one answers (it
	// may not listen yet), so that the proxies are spread as asked.
	home := true
	for ctx.Err() == nil {
		conn, err := p.dial(addrs[cur], false)
		if err != nil {
			p.setErr(err)
			return
		}
		p.beginStream(cur)
		client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
		if p.protocol == ProtocolDelta {
			err = p.runDelta(ctx, client)
		} else {
			err = p.runSotW(ctx, client)
		}
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !replicaGone(err) {
			p.setErr(err)
			return
		}
		p.mu.Lock()
		answered := !p.streams[len(p.streams)-1].firstResp.IsZero()
		p.mu.Unlock()
		if answered {
			home = false
		}
		if !home {
			cur = (cur + 1) % len(addrs)
		}
		if !answered {
			// Neither replica may be up yet (at start, or both moving):
			// do not spin.
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func (p *proxy) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// replicaGone says whether a stream's end is what a replica that stops,
// dies or drains causes: the end of the stream or connection, or any gRPC
// status (the server or the transport ended the stream). A failure of the
// proxy's own (a resource it cannot decode) is none of these.
func replicaGone(err error) bool {
	if errors.Is(err, io.EOF) || err.Error() == "the server ended the stream" {
		return true
	}
	_, isStatus := status.FromError(err)
	return isStatus
}

// streamSince returns the proxy's first stream opened after t.
func (p *proxy) streamSince(t time.Time) *streamRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.streams {
		if !s.start.Before(t) {
			c := *s
			return &c
		}
	}
	return nil
}
