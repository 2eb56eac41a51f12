package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// viewCache holds the resources of one type of one view and answers the
// watches of every stream of that view: a go-control-plane
// cache.ConfigWatcher for one type, used through viewMux.
//
// Why not go-control-plane's LinearCache, which does the same: in v0.14.0
// each push costs it, per watching stream, time proportional to all the
// names the stream subscribes to (it indexes and unindexes the watch under
// every name, compares every name's version, and clones the stream's whole
// version map for each response). An Envoy subscribes to the EDS of every
// cluster, so one endpoint change with 2,000 services and 200 proxies cost
// 280 ms of publisher time (BenchmarkPush). Here a push costs each open
// watch time proportional to what changed:
//
//   - An open watch is always in sync with the cache as it was before the
//     update (a watch that is not is answered when it is made, and a
//     watch is dropped once answered), so an update only looks at its own
//     changed names, against each watch's subscription.
//   - Resources are marshaled once per update, into Any values (and delta
//     Resources) shared by every response of every stream.
//   - A response does not copy the stream's map of returned versions: it
//     updates that map in place, when go-control-plane asks for it
//     (GetReturnedResources), which it does only for a response it sends.
//     A response it drops (SotW drops an unsent response when a new request
//     of the type comes) leaves the map as it was, so the next watch sends
//     the same resources again, as the protocol wants.
//
// Making a watch (a request: an ACK, or a new subscription) compares only
// the names changed since the stream was last in sync, when its
// subscription is the same (syncMemo, with a bounded log of changes);
// otherwise every subscribed name. Either way it runs on the stream's
// goroutine, not the publisher's. (go-control-plane's SotW server itself
// still walks every subscribed name of each SotW request; delta requests
// cost it nothing of the kind.)
//
// Versions: a resource's version is a hash of its bytes, so delta clients
// that reconnect (to this process or another) with initial_resource_versions
// get only what differs; a SotW response's version_info is a counter with
// a per-process prefix.
type viewCache struct {
	typeURL string
	// fullState: SotW responses carry every subscribed resource, not only
	// the changed ones (CDS and LDS, as the xDS protocol requires).
	fullState bool
	prefix    string
	log       *slog.Logger

	mu        sync.Mutex
	version   uint64
	resources map[string]*cachedResource
	// all is every resource sorted by name (allNames), for full-state
	// answers to wildcard watches; nil when it must be rebuilt.
	all      []*anypb.Any
	allNames []string
	sotw     map[*sotwWatch]struct{}
	delta    map[*deltaWatch]struct{}
	// changes lists the names each update changed or deleted, oldest
	// first; every change of a version above changesFrom is in it.
	changes     []change
	changesFrom uint64
}

// change is a name an update (version) changed or deleted.
type change struct {
	version uint64
	name    string
}

// syncMemo remembers, for one stream and type, the cache version with
// which the stream's returned versions were last in sync, and for which
// subscription: the stream's next watch then compares only the names
// changed since, not its whole subscription. A stream's type is always
// served by one cache, whose lock guards the memo.
type syncMemo struct {
	valid    bool
	cache    *viewCache
	version  uint64
	wildcard bool
	// names are the resource names of the SotW request the stream was in
	// sync for (a delta subscription changes only with explicit
	// subscribe and unsubscribe lists).
	names []string
	known uintptr // identity of the stream's map of returned versions
	// open is the stream's open delta watch, if any (see apply).
	open *deltaWatch
}

// cachedResource is a resource as every stream gets it.
type cachedResource struct {
	name    string
	res     types.Resource
	any     *anypb.Any
	delta   *discoverygrpc.Resource
	version string
}

type sotwWatch struct {
	req  *cache.Request
	sub  cache.Subscription
	ch   chan cache.Response
	memo *syncMemo
}

type deltaWatch struct {
	req  *cache.DeltaRequest
	sub  cache.Subscription
	ch   chan cache.DeltaResponse
	memo *syncMemo
}

func newViewCache(typeURL, prefix string, log *slog.Logger) *viewCache {
	return &viewCache{
		typeURL:   typeURL,
		fullState: cache.ResourceRequiresFullStateInSotw(typeURL),
		prefix:    prefix,
		log:       log,
		resources: make(map[string]*cachedResource),
		sotw:      make(map[*sotwWatch]struct{}),
		delta:     make(map[*deltaWatch]struct{}),
	}
}

var _ cache.ConfigWatcher = (*viewCache)(nil)

// marshal prepares a resource for every stream.
func (c *viewCache) marshal(name string, res types.Resource) (*cachedResource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("marshaling %s %q: %w", shortType(c.typeURL), name, err)
	}
	sum := sha256.Sum256(b)
	a := &anypb.Any{TypeUrl: c.typeURL, Value: b}
	version := hex.EncodeToString(sum[:16])
	return &cachedResource{
		name: name, res: res, any: a, version: version,
		delta: &discoverygrpc.Resource{Name: name, Version: version, Resource: a},
	}, nil
}

// UpdateResources sets and deletes resources, then answers the open watches
// the change concerns. Resources are marshaled before the lock is taken.
// A resource that does not marshal is left as it was, and an error says so.
func (c *viewCache) UpdateResources(upd map[string]types.Resource, del []string) error {
	prepared := make([]*cachedResource, 0, len(upd))
	var errs []error
	for name, res := range upd {
		cr, err := c.marshal(name, res)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prepared = append(prepared, cr)
	}
	slices.SortFunc(prepared, func(a, b *cachedResource) int { return strings.Compare(a.name, b.name) })

	c.mu.Lock()
	defer c.mu.Unlock()
	changed := make([]*cachedResource, 0, len(prepared))
	for _, cr := range prepared {
		old, ok := c.resources[cr.name]
		if ok && old.version == cr.version {
			continue
		}
		if !ok {
			c.all = nil
		}
		c.resources[cr.name] = cr
		changed = append(changed, cr)
	}
	var deleted []string
	for _, name := range del {
		if _, ok := c.resources[name]; ok {
			delete(c.resources, name)
			deleted = append(deleted, name)
		}
	}
	if len(changed) == 0 && len(deleted) == 0 {
		return errors.Join(errs...)
	}
	if len(deleted) > 0 {
		c.all = nil
	}
	if c.all != nil && len(changed) > 0 {
		// Same names, new content: patch a copy of the sorted list (the
		// old one may be in responses not sent yet).
		c.all = slices.Clone(c.all)
		for _, cr := range changed {
			if i, ok := slices.BinarySearch(c.allNames, cr.name); ok {
				c.all[i] = cr.any
			}
		}
	}
	c.version++
	c.logChanges(changed, deleted)
	u := &update{changed: changed, deleted: deleted}
	for w := range c.sotw {
		if resp := c.sotwIncremental(w, u); resp != nil {
			c.fireSotW(w, resp)
		}
	}
	for w := range c.delta {
		if resp := c.deltaIncremental(w, u); resp != nil {
			c.fireDelta(w, resp)
		}
	}
	return errors.Join(errs...)
}

// update is one UpdateResources as the open watches see it. Watches that
// want all of it (as every Envoy does for EDS) share one list of resources.
type update struct {
	changed []*cachedResource
	deleted []string
	anys    []*anypb.Any
	delta   []*discoverygrpc.Resource
}

// scoped returns the changed resources a watch with sub wants, and the
// deleted names it knows. The slices may be shared: read-only.
func (u *update) scoped(sub cache.Subscription) (mine []*cachedResource, gone []string) {
	mine = u.changed
	if !sub.IsWildcard() {
		subscribed := sub.SubscribedResources()
		for i, cr := range u.changed {
			if _, ok := subscribed[cr.name]; ok {
				if len(mine) < len(u.changed) {
					mine = append(mine, cr)
				}
				continue
			}
			if len(mine) == len(u.changed) {
				mine = slices.Clone(u.changed[:i:i])
			}
		}
	}
	known := sub.ReturnedResources()
	for _, name := range u.deleted {
		if _, ok := known[name]; ok {
			gone = append(gone, name)
		}
	}
	return mine, gone
}

// anysOf returns the Any values of mine, shared when mine is the whole
// update.
func (u *update) anysOf(mine []*cachedResource) []*anypb.Any {
	if len(mine) != len(u.changed) {
		return anys(mine)
	}
	if u.anys == nil {
		u.anys = anys(u.changed)
	}
	return u.anys
}

// deltaOf is anysOf for delta resources.
func (u *update) deltaOf(mine []*cachedResource) []*discoverygrpc.Resource {
	if len(mine) != len(u.changed) {
		return deltaResources(mine)
	}
	if u.delta == nil {
		u.delta = deltaResources(u.changed)
	}
	return u.delta
}

func deltaResources(crs []*cachedResource) []*discoverygrpc.Resource {
	out := make([]*discoverygrpc.Resource, len(crs))
	for i, cr := range crs {
		out[i] = cr.delta
	}
	return out
}

// logChanges records an update's names, keeping the log to a few times the
// number of resources; changes dropped from it raise changesFrom, and
// streams in sync with an older version then compare everything.
func (c *viewCache) logChanges(changed []*cachedResource, deleted []string) {
	for _, cr := range changed {
		c.changes = append(c.changes, change{c.version, cr.name})
	}
	for _, name := range deleted {
		c.changes = append(c.changes, change{c.version, name})
	}
	limit := 2*len(c.resources) + 256
	if len(c.changes) <= 2*limit {
		return
	}
	drop := len(c.changes) - limit
	c.changesFrom = c.changes[drop-1].version
	c.changes = slices.Clone(c.changes[drop:])
}

// memoFor returns the version since which a new watch needs to compare
// only the logged changes, or false if it must compare its whole
// subscription.
func (c *viewCache) memoFor(m *syncMemo, sub cache.Subscription, names []string, subscriptionChanged bool) (uint64, bool) {
	if m == nil || !m.valid || m.cache != c || subscriptionChanged || m.version < c.changesFrom ||
		m.wildcard != sub.IsWildcard() || m.known != mapID(sub.ReturnedResources()) ||
		!slices.Equal(m.names, names) {
		return 0, false
	}
	return m.version, true
}

// remember marks a stream in sync with version for its subscription.
func (m *syncMemo) remember(c *viewCache, version uint64, sub cache.Subscription, names []string) {
	if m == nil {
		return
	}
	*m = syncMemo{valid: true, cache: c, version: version, wildcard: sub.IsWildcard(), names: names,
		known: mapID(sub.ReturnedResources()), open: m.open}
}

func (m *syncMemo) forget() {
	if m != nil {
		m.valid = false
	}
}

func mapID(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }

// diffSince is diff when the stream was in sync at version since, with the
// same subscription: only names changed after it are compared.
func (c *viewCache) diffSince(since uint64, sub cache.Subscription) (changed []*cachedResource, removed []string) {
	i := len(c.changes)
	for i > 0 && c.changes[i-1].version > since {
		i--
	}
	if i == len(c.changes) {
		return nil, nil
	}
	names := make([]string, 0, len(c.changes)-i)
	for _, ch := range c.changes[i:] {
		names = append(names, ch.name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	known := sub.ReturnedResources()
	for _, name := range names {
		cr, ok := c.resources[name]
		v, isKnown := known[name]
		switch {
		case ok && inScope(sub, name) && (!isKnown || v != cr.version):
			changed = append(changed, cr)
		case !ok && isKnown:
			removed = append(removed, name)
		}
	}
	return changed, removed
}

// has reports whether the cache holds res (this very value) under name.
func (c *viewCache) has(name string, res types.Resource) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr, ok := c.resources[name]
	return ok && cr.res == res
}

// GetResources returns the resources, as given to UpdateResources.
func (c *viewCache) GetResources() map[string]types.Resource {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]types.Resource, len(c.resources))
	for name, cr := range c.resources {
		out[name] = cr.res
	}
	return out
}

// inScope reports whether a watch with sub wants name.
func inScope(sub cache.Subscription, name string) bool {
	if sub.IsWildcard() {
		return true
	}
	_, ok := sub.SubscribedResources()[name]
	return ok
}

// allSorted returns every resource's Any, sorted by name; shared.
func (c *viewCache) allSorted() []*anypb.Any {
	if c.all == nil {
		names := make([]string, 0, len(c.resources))
		for name := range c.resources {
			names = append(names, name)
		}
		slices.Sort(names)
		c.allNames = names
		c.all = make([]*anypb.Any, len(names))
		for i, name := range names {
			c.all[i] = c.resources[name].any
		}
	}
	return c.all
}

// sotwVersion is the version_info of a SotW response.
func (c *viewCache) sotwVersion() string { return c.prefix + strconv.FormatUint(c.version, 10) }

// CreateWatch answers a SotW request at once if the stream lacks something
// of its subscription, else keeps the watch until an update concerns it.
func (c *viewCache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	return c.createWatch(req, sub, ch, nil)
}

// createWatch is CreateWatch with the stream's sync memo (nil: none).
func (c *viewCache) createWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response, memo *syncMemo) (func(), error) {
	cancel, _, err := c.openWatch(req, sub, ch, memo)
	return cancel, err
}

// answer says whether opening a watch answered it at once, and at which
// version of the cache: an answer at a version the stream was already
// answered at is a re-send (see pacer), one at a newer version carries
// changes.
type answer struct {
	sent    bool
	version uint64
}

// openWatch is createWatch; answered says the request was answered at once.
func (c *viewCache) openWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response, memo *syncMemo) (cancel func(), ans answer, err error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, answer{}, fmt.Errorf("request of type %s to the cache of %s", req.GetTypeUrl(), c.typeURL)
	}
	w := &sotwWatch{req: req, sub: sub, ch: ch, memo: memo}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The first request of a stream (no version, or one of another
	// process) is always answered, even with nothing, so that the client
	// can finish initializing. A NACK is not a first request, whatever
	// version it quotes (an Envoy that rejects its first response quotes
	// none): the stream holds what it rejected, so the watch waits for
	// something to change, as Istio does; answering it at once would send
	// the same rejected resources again, in a loop as fast as the client
	// can NACK.
	first := req.GetErrorDetail() == nil &&
		(req.GetVersionInfo() == "" || !strings.HasPrefix(req.GetVersionInfo(), c.prefix))
	var changed []*cachedResource
	var removed []string
	if since, ok := c.memoFor(memo, sub, req.GetResourceNames(), false); ok {
		changed, removed = c.diffSince(since, sub)
	} else {
		changed, removed = c.diff(sub)
	}
	if resp := c.sotwFull(w, changed, removed, first); resp != nil {
		memo.forget()
		// The channel is new and empty: this cannot block.
		w.ch <- resp
		return func() {}, answer{sent: true, version: c.version}, nil
	}
	memo.remember(c, c.version, sub, req.GetResourceNames())
	c.sotw[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(c.sotw, w)
		c.mu.Unlock()
	}, answer{}, nil
}

// CreateDeltaWatch answers a delta request at once if the stream lacks
// something of its subscription (or has something deleted), else keeps
// the watch until an update concerns it.
func (c *viewCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	return c.createDeltaWatch(req, sub, ch, nil)
}

// createDeltaWatch is CreateDeltaWatch with the stream's sync memo.
func (c *viewCache) createDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse, memo *syncMemo) (func(), error) {
	cancel, _, err := c.openDeltaWatch(req, sub, ch, memo)
	return cancel, err
}

// openDeltaWatch is createDeltaWatch; answered says the request was
// answered at once.
func (c *viewCache) openDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse, memo *syncMemo) (cancel func(), ans answer, err error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, answer{}, fmt.Errorf("request of type %s to the cache of %s", req.GetTypeUrl(), c.typeURL)
	}
	w := &deltaWatch{req: req, sub: sub, ch: ch, memo: memo}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A wildcard subscription's first request is answered even with
	// nothing: Envoy waits for it to finish initializing.
	first := sub.IsWildcard() && req.GetResponseNonce() == ""
	subChanged := len(req.GetResourceNamesSubscribe()) > 0 || len(req.GetResourceNamesUnsubscribe()) > 0 ||
		len(req.GetInitialResourceVersions()) > 0
	var changed []*cachedResource
	var removed []string
	if since, ok := c.memoFor(memo, sub, nil, subChanged); ok {
		changed, removed = c.diffSince(since, sub)
	} else {
		changed, removed = c.diff(sub)
	}
	if len(changed) > 0 || len(removed) > 0 || first {
		memo.forget()
		// go-control-plane drains the stream's channel before it makes a
		// watch, and the channel has room for two per type: no block.
		w.ch <- c.deltaResponse(w, deltaResources(changed), changed, removed)
		return func() {}, answer{sent: true, version: c.version}, nil
	}
	memo.remember(c, c.version, sub, nil)
	c.delta[w] = struct{}{}
	if memo != nil {
		memo.open = w
	}
	return func() {
		c.mu.Lock()
		c.dropDelta(w)
		c.mu.Unlock()
	}, answer{}, nil
}

// diff compares what a stream knows (sub's returned versions) with the
// cache, over its whole subscription: resources it lacks or has in another
// version, and names it knows that are gone or no longer subscribed.
func (c *viewCache) diff(sub cache.Subscription) (changed []*cachedResource, removed []string) {
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		for _, cr := range c.resources {
			if v, ok := known[cr.name]; !ok || v != cr.version {
				changed = append(changed, cr)
			}
		}
	} else {
		for name := range sub.SubscribedResources() {
			if cr, ok := c.resources[name]; ok {
				if v, ok := known[name]; !ok || v != cr.version {
					changed = append(changed, cr)
				}
			}
		}
	}
	for name := range known {
		if _, ok := c.resources[name]; !ok || !inScope(sub, name) {
			removed = append(removed, name)
		}
	}
	slices.SortFunc(changed, func(a, b *cachedResource) int { return strings.Compare(a.name, b.name) })
	slices.Sort(removed)
	return changed, removed
}

// sotwFull is the answer to a new SotW watch that lacks changed and knows
// removed, or nil if there is none.
func (c *viewCache) sotwFull(w *sotwWatch, changed []*cachedResource, removed []string, replyEvenIfEmpty bool) *sotwResponse {
	if len(changed) == 0 && len(removed) == 0 && !replyEvenIfEmpty {
		return nil
	}
	if !c.fullState {
		// Without full state, a removal alone is no news (SotW cannot say
		// it for these types); the stream just forgets the name.
		if len(changed) == 0 && !replyEvenIfEmpty {
			return nil
		}
		return c.sotwResponse(w, anys(changed), changed, removed)
	}
	// Full state: everything subscribed, and the stream knows exactly that
	// afterwards.
	if w.sub.IsWildcard() {
		all := make([]*cachedResource, 0, len(c.resources))
		for _, cr := range c.resources {
			all = append(all, cr)
		}
		return c.sotwResponse(w, c.allSorted(), all, removed)
	}
	var subscribed []*cachedResource
	for name := range w.sub.SubscribedResources() {
		if cr, ok := c.resources[name]; ok {
			subscribed = append(subscribed, cr)
		}
	}
	slices.SortFunc(subscribed, func(a, b *cachedResource) int { return strings.Compare(a.name, b.name) })
	return c.sotwResponse(w, anys(subscribed), subscribed, removed)
}

// sotwIncremental is the answer of an open SotW watch (in sync with the
// cache before the update) to an update, or nil.
func (c *viewCache) sotwIncremental(w *sotwWatch, u *update) *sotwResponse {
	mine, gone := u.scoped(w.sub)
	switch {
	case len(mine) == 0 && len(gone) == 0:
		return nil
	case !c.fullState:
		if len(mine) == 0 {
			// Nothing to send; the watch stays (and stays in sync: a name
			// it knows that comes back is compared with what it knew).
			return nil
		}
		return c.sotwResponse(w, u.anysOf(mine), mine, gone)
	case w.sub.IsWildcard():
		return c.sotwResponse(w, c.allSorted(), mine, gone)
	default:
		var subscribed []*cachedResource
		for name := range w.sub.SubscribedResources() {
			if cr, ok := c.resources[name]; ok {
				subscribed = append(subscribed, cr)
			}
		}
		slices.SortFunc(subscribed, func(a, b *cachedResource) int { return strings.Compare(a.name, b.name) })
		return c.sotwResponse(w, anys(subscribed), mine, gone)
	}
}

func anys(crs []*cachedResource) []*anypb.Any {
	out := make([]*anypb.Any, len(crs))
	for i, cr := range crs {
		out[i] = cr.any
	}
	return out
}

func (c *viewCache) sotwResponse(w *sotwWatch, resources []*anypb.Any, set []*cachedResource, del []string) *sotwResponse {
	return &sotwResponse{
		c:   c,
		req: w.req,
		out: &discoverygrpc.DiscoveryResponse{
			VersionInfo: c.sotwVersion(),
			Resources:   resources,
			TypeUrl:     c.typeURL,
		},
		known: w.sub.ReturnedResources(),
		set:   set,
		del:   del,
		memo:  w.memo, version: c.version, sub: w.sub, names: w.req.GetResourceNames(),
	}
}

// fireSotW hands an open watch its answer and drops the watch.
func (c *viewCache) fireSotW(w *sotwWatch, resp *sotwResponse) {
	select {
	case w.ch <- resp:
		delete(c.sotw, w)
	default:
		// go-control-plane gives each SotW watch a new channel with room
		// for one answer, and a watch answers once: never here. Keep the
		// watch; the next update tries again.
		c.log.Error("xDS watch channel full; answer kept for the next update", "type", shortType(c.typeURL))
	}
}

// deltaIncremental is the answer of an open delta watch to an update, or
// nil.
func (c *viewCache) deltaIncremental(w *deltaWatch, u *update) *deltaResponse {
	mine, gone := u.scoped(w.sub)
	if len(mine) == 0 && len(gone) == 0 {
		return nil
	}
	return c.deltaResponse(w, u.deltaOf(mine), mine, gone)
}

func (c *viewCache) deltaResponse(w *deltaWatch, resources []*discoverygrpc.Resource, set []*cachedResource, del []string) *deltaResponse {
	return &deltaResponse{
		c:   c,
		req: w.req,
		out: &discoverygrpc.DeltaDiscoveryResponse{
			SystemVersionInfo: c.sotwVersion(),
			Resources:         resources,
			RemovedResources:  del,
			TypeUrl:           c.typeURL,
		},
		known: w.sub.ReturnedResources(),
		set:   set,
		del:   del,
		memo:  w.memo, version: c.version, sub: w.sub,
	}
}

func (c *viewCache) fireDelta(w *deltaWatch, resp *deltaResponse) {
	select {
	case w.ch <- resp:
		c.dropDelta(w)
		w.memo.forget()
	default:
		c.log.Error("xDS delta watch channel full; answer kept for the next update", "type", shortType(c.typeURL))
	}
}

// dropDelta forgets an open delta watch.
func (c *viewCache) dropDelta(w *deltaWatch) {
	delete(c.delta, w)
	if w.memo != nil && w.memo.open == w {
		w.memo.open = nil
	}
}
