package xds

import (
	"context"
	"sync"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// apply records in a stream's map of returned versions what a response
// gave it. go-control-plane calls it (through GetReturnedResources) on the
// stream's goroutine, only for a response it sends; the cache's lock keeps
// it apart from updates, which read the maps of open watches.
//
// The stream is then in sync with the version the response was built at,
// for the subscription of its watch: its memo says so.
func (c *viewCache) apply(known map[string]string, set []*cachedResource, del []string, a applied) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cr := range set {
		known[cr.name] = cr.version
	}
	for _, name := range del {
		delete(known, name)
	}
	a.memo.remember(c, a.version, a.sub, a.names)
	// A delta response can be sent after the stream's next watch was made
	// (a request came while it waited in the stream's channel). That watch
	// was compared with the versions before this response, and is open
	// only if it found nothing; now that the stream has more, compare
	// again, so that it learns of anything deleted since.
	if m := a.memo; m != nil && m.open != nil && mapID(m.open.sub.ReturnedResources()) == mapID(known) {
		w := m.open
		if changed, removed := c.diff(w.sub); len(changed) > 0 || len(removed) > 0 {
			c.fireDelta(w, c.deltaResponse(w, deltaResources(changed), changed, removed))
		}
	}
}

// applied is what a response tells the stream's memo once sent.
type applied struct {
	memo    *syncMemo
	version uint64
	sub     cache.Subscription
	names   []string
}

// sotwResponse is a cache.Response whose resources are shared and whose
// returned versions are the stream's own map, updated when sent.
type sotwResponse struct {
	c       *viewCache
	req     *cache.Request
	out     *discoverygrpc.DiscoveryResponse
	known   map[string]string
	set     []*cachedResource
	del     []string
	once    sync.Once
	memo    *syncMemo
	version uint64
	sub     cache.Subscription
	names   []string
}

var _ cache.Response = (*sotwResponse)(nil)

func (r *sotwResponse) GetDiscoveryResponse() (*discoverygrpc.DiscoveryResponse, error) {
	return r.out, nil
}
func (r *sotwResponse) GetRequest() *discoverygrpc.DiscoveryRequest { return r.req }
func (r *sotwResponse) GetVersion() (string, error)                 { return r.out.GetVersionInfo(), nil }
func (r *sotwResponse) GetResponseVersion() string                  { return r.out.GetVersionInfo() }

// GetContext returns a context that carries the response's resources
// (sentSet), so
// that the registry learns the names of what is sent without decoding it.
func (r *sotwResponse) GetContext() context.Context {
	return context.WithValue(context.Background(), sentKey{}, r.set)
}

// GetReturnedResources applies the response to the stream's map of
// returned versions and returns that map.
func (r *sotwResponse) GetReturnedResources() map[string]string {
	r.once.Do(func() {
		r.c.apply(r.known, r.set, r.del, applied{memo: r.memo, version: r.version, sub: r.sub, names: r.names})
	})
	return r.known
}

// deltaResponse is sotwResponse for delta streams.
type deltaResponse struct {
	c       *viewCache
	req     *cache.DeltaRequest
	out     *discoverygrpc.DeltaDiscoveryResponse
	known   map[string]string
	set     []*cachedResource
	del     []string
	once    sync.Once
	memo    *syncMemo
	version uint64
	sub     cache.Subscription
}

var _ cache.DeltaResponse = (*deltaResponse)(nil)

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	return r.out, nil
}
func (r *deltaResponse) GetDeltaRequest() *discoverygrpc.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error) {
	return r.out.GetSystemVersionInfo(), nil
}
func (r *deltaResponse) GetResponseVersion() string           { return r.out.GetSystemVersionInfo() }
func (r *deltaResponse) GetContext() context.Context          { return context.Background() }
func (r *deltaResponse) GetNextVersionMap() map[string]string { return r.GetReturnedResources() }

// GetReturnedResources applies the response to the stream's map of
// returned versions and returns that map.
func (r *deltaResponse) GetReturnedResources() map[string]string {
	r.once.Do(func() {
		r.c.apply(r.known, r.set, r.del, applied{memo: r.memo, version: r.version, sub: r.sub})
	})
	return r.known
}

type sentKey struct{}

// sentSet returns the resources a non-full-state SotW response carries,
// in order, from the context go-control-plane passes to the response
// callback; ok is false if ctx does not carry n of them.
func sentSet(ctx context.Context, n int) ([]*cachedResource, bool) {
	if ctx == nil {
		return nil, false
	}
	set, ok := ctx.Value(sentKey{}).([]*cachedResource)
	return set, ok && len(set) == n
}
