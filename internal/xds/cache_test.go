package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// cla is an EDS resource named name with one endpoint at ip.
func cla(name, ip string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}},
		}}}},
	}}}
}

func newTestCache(typeURL string) *viewCache {
	return newViewCache(typeURL, "test.", testkit.DiscardLogger())
}

func mustUpdate(t *testing.T, c *viewCache, upd map[string]types.Resource, del ...string) {
	t.Helper()
	if err := c.UpdateResources(upd, del); err != nil {
		t.Fatal(err)
	}
}

// sotwStream plays go-control-plane's SotW server for one type: it keeps
// the subscription and, like the server, applies a response's returned
// versions only when it sends it.
type sotwStream struct {
	t    *testing.T
	c    *viewCache
	sub  stream.Subscription
	memo *syncMemo
	ch   chan cache.Response
	last string
}

func newSotwStream(t *testing.T, c *viewCache, names []string) *sotwStream {
	return &sotwStream{t: t, c: c, sub: stream.NewSotwSubscription(names, true), memo: &syncMemo{}}
}

// request makes a watch as a request with names (the same, for an ACK)
// would.
func (s *sotwStream) request(names []string) {
	s.t.Helper()
	s.sub.SetResourceSubscription(names)
	s.ch = make(chan cache.Response, 1)
	req := &discoverygrpc.DiscoveryRequest{TypeUrl: s.c.typeURL, ResourceNames: names, VersionInfo: s.last}
	if _, err := s.c.createWatch(req, s.sub, s.ch, s.memo); err != nil {
		s.t.Fatal(err)
	}
}

// pending returns the names of the answer waiting on the watch, or nil.
func (s *sotwStream) pending() []string {
	select {
	case r := <-s.ch:
		s.ch <- r
		out, _ := r.GetDiscoveryResponse()
		return anyNames(out.GetResources())
	default:
		return nil
	}
}

// send takes the answer, as the server does when it sends it.
func (s *sotwStream) send() []string {
	s.t.Helper()
	select {
	case r := <-s.ch:
		s.sub.SetReturnedResources(r.GetReturnedResources())
		s.last = r.GetResponseVersion()
		out, _ := r.GetDiscoveryResponse()
		return anyNames(out.GetResources())
	default:
		s.t.Fatal("no answer")
		return nil
	}
}

func TestViewCacheSotW(t *testing.T) {
	c := newTestCache(edsType)
	mustUpdate(t, c, map[string]types.Resource{"a": cla("a", "10.0.0.1"), "b": cla("b", "10.0.0.2"), "c": cla("c", "10.0.0.3")})
	names := []string{"a", "b"}
	s := newSotwStream(t, c, names)

	s.request(names)
	if diff := cmp.Diff([]string{"a", "b"}, s.send()); diff != "" {
		t.Errorf("first answer (-want +got):\n%s", diff)
	}
	s.request(names) // ACK
	if got := s.pending(); got != nil {
		t.Errorf("ACK answered with %v", got)
	}

	// A change outside the subscription is no news; one inside is sent
	// alone.
	mustUpdate(t, c, map[string]types.Resource{"c": cla("c", "10.0.0.33")})
	if got := s.pending(); got != nil {
		t.Errorf("unsubscribed change answered with %v", got)
	}
	mustUpdate(t, c, map[string]types.Resource{"a": cla("a", "10.0.0.11")})
	if diff := cmp.Diff([]string{"a"}, s.send()); diff != "" {
		t.Errorf("answer to a change (-want +got):\n%s", diff)
	}
	s.request(names)
	if got := s.pending(); got != nil {
		t.Errorf("ACK answered with %v", got)
	}

	// An equal resource is no change.
	mustUpdate(t, c, map[string]types.Resource{"a": cla("a", "10.0.0.11")})
	if got := s.pending(); got != nil {
		t.Errorf("equal content answered with %v", got)
	}

	// An answer the server drops (a new request came before it was sent)
	// leaves the stream's versions alone: the next watch sends it again.
	mustUpdate(t, c, map[string]types.Resource{"b": cla("b", "10.0.0.22")})
	if diff := cmp.Diff([]string{"b"}, s.pending()); diff != "" {
		t.Fatalf("answer to a change (-want +got):\n%s", diff)
	}
	<-s.ch // dropped
	names = []string{"a", "b", "c"}
	s.request(names)
	if diff := cmp.Diff([]string{"b", "c"}, s.send()); diff != "" {
		t.Errorf("answer after a dropped one and a new subscription (-want +got):\n%s", diff)
	}
	s.request(names)
	if got := s.pending(); got != nil {
		t.Errorf("ACK answered with %v", got)
	}

	// A deletion alone is no news in SotW EDS; the resource coming back
	// with other content is.
	mustUpdate(t, c, nil, "c")
	if got := s.pending(); got != nil {
		t.Errorf("deletion answered with %v", got)
	}
	mustUpdate(t, c, map[string]types.Resource{"c": cla("c", "10.0.0.4")})
	if diff := cmp.Diff([]string{"c"}, s.send()); diff != "" {
		t.Errorf("answer to a re-added resource (-want +got):\n%s", diff)
	}
}

// TestViewCacheMemo: a stream that falls behind by more than the change
// log holds gets what it lacks all the same.
func TestViewCacheMemo(t *testing.T) {
	c := newTestCache(edsType)
	all := map[string]types.Resource{}
	var names []string
	for i := range 50 {
		n := fmt.Sprintf("r%02d", i)
		all[n] = cla(n, "10.0.0.1")
		names = append(names, n)
	}
	mustUpdate(t, c, all)
	s := newSotwStream(t, c, names)
	s.request(names)
	s.send()
	// While the stream has no watch (its ACK is on the way), r00 changes
	// once, then r01..r09 so often that r00's change leaves the log.
	mustUpdate(t, c, map[string]types.Resource{"r00": cla("r00", "10.2.0.0")})
	for round := range 200 {
		upd := map[string]types.Resource{}
		for i := 1; i < 10; i++ {
			n := fmt.Sprintf("r%02d", i)
			upd[n] = cla(n, fmt.Sprintf("10.1.%d.%d", round, i))
		}
		mustUpdate(t, c, upd)
	}
	if c.changesFrom == 0 {
		t.Fatal("the change log never dropped anything; the test needs more updates")
	}
	s.request(names)
	if diff := cmp.Diff(names[:10], s.send()); diff != "" {
		t.Errorf("answer after falling behind (-want +got):\n%s", diff)
	}
	// And a stream a few updates behind gets exactly those.
	s.request(names)
	mustUpdate(t, c, map[string]types.Resource{"r03": cla("r03", "10.9.9.9")})
	if diff := cmp.Diff([]string{"r03"}, s.send()); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	mustUpdate(t, c, map[string]types.Resource{"r04": cla("r04", "10.9.9.9")})
	mustUpdate(t, c, map[string]types.Resource{"r05": cla("r05", "10.9.9.9")})
	s.request(names)
	if diff := cmp.Diff([]string{"r04", "r05"}, s.send()); diff != "" {
		t.Errorf("answer to an ACK that comes after two updates (-want +got):\n%s", diff)
	}
}

// TestViewCacheFullState: SotW CDS and LDS answers carry every subscribed
// resource, and a deletion is news.
func TestViewCacheFullState(t *testing.T) {
	c := newTestCache(cdsType)
	cluster := func(name string, ms int64) types.Resource {
		return &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Duration(ms) * time.Millisecond)}
	}
	mustUpdate(t, c, map[string]types.Resource{"a": cluster("a", 1), "b": cluster("b", 1), "c": cluster("c", 1)})
	s := newSotwStream(t, c, nil) // wildcard
	s.request(nil)
	if diff := cmp.Diff([]string{"a", "b", "c"}, s.send()); diff != "" {
		t.Errorf("first answer (-want +got):\n%s", diff)
	}
	s.request(nil)
	mustUpdate(t, c, map[string]types.Resource{"b": cluster("b", 2)})
	if diff := cmp.Diff([]string{"a", "b", "c"}, s.send()); diff != "" {
		t.Errorf("answer to a change (-want +got):\n%s", diff)
	}
	s.request(nil)
	mustUpdate(t, c, nil, "a")
	if diff := cmp.Diff([]string{"b", "c"}, s.send()); diff != "" {
		t.Errorf("answer to a deletion (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "c"}, slices.Sorted(maps.Keys(s.sub.ReturnedResources()))); diff != "" {
		t.Errorf("returned versions (-want +got):\n%s", diff)
	}
}

func TestViewCacheDelta(t *testing.T) {
	c := newTestCache(edsType)
	mustUpdate(t, c, map[string]types.Resource{"a": cla("a", "10.0.0.1"), "b": cla("b", "10.0.0.2")})
	sub := stream.NewDeltaSubscription(nil, nil, map[string]string{}, true) // wildcard
	memo := &syncMemo{}
	watch := func(req *discoverygrpc.DeltaDiscoveryRequest) chan cache.DeltaResponse {
		ch := make(chan cache.DeltaResponse, 1)
		req.TypeUrl = edsType
		if _, err := c.createDeltaWatch(req, sub, ch, memo); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	take := func(ch chan cache.DeltaResponse) (names, removed []string) {
		t.Helper()
		select {
		case r := <-ch:
			sub.SetReturnedResources(r.GetNextVersionMap())
			out, _ := r.GetDeltaDiscoveryResponse()
			return deltaNames(out), out.GetRemovedResources()
		default:
			t.Fatal("no answer")
			return nil, nil
		}
	}
	names, _ := take(watch(&discoverygrpc.DeltaDiscoveryRequest{}))
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("first answer (-want +got):\n%s", diff)
	}
	ch := watch(&discoverygrpc.DeltaDiscoveryRequest{ResponseNonce: "1"})
	mustUpdate(t, c, map[string]types.Resource{"c": cla("c", "10.0.0.3")}, "a")
	names, removed := take(ch)
	if diff := cmp.Diff([]string{"c"}, names); diff != "" || !slices.Equal(removed, []string{"a"}) {
		t.Errorf("answer: removed %v, resources (-want +got):\n%s", removed, diff)
	}
	// A reconnecting client that says what it has gets only the rest.
	known := maps.Clone(sub.ReturnedResources())
	known["b"] = "stale"
	sub = stream.NewDeltaSubscription(nil, nil, known, true)
	memo = &syncMemo{}
	names, _ = take(watch(&discoverygrpc.DeltaDiscoveryRequest{InitialResourceVersions: known}))
	if diff := cmp.Diff([]string{"b"}, names); diff != "" {
		t.Errorf("answer to a reconnect (-want +got):\n%s", diff)
	}
}

// TestViewCacheDeltaLateResponse: a delta response sent after the
// stream's next watch was made (go-control-plane can do that) still leaves
// the stream told about what was deleted meanwhile.
func TestViewCacheDeltaLateResponse(t *testing.T) {
	c := newTestCache(edsType)
	mustUpdate(t, c, map[string]types.Resource{"a": cla("a", "10.0.0.1")})
	sub := stream.NewDeltaSubscription(nil, nil, map[string]string{}, true)
	memo := &syncMemo{}
	ch := make(chan cache.DeltaResponse, 4)
	watch := func(nonce string) {
		t.Helper()
		if _, err := c.createDeltaWatch(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: nonce}, sub, ch, memo); err != nil {
			t.Fatal(err)
		}
	}
	watch("")
	first := <-ch
	sub.SetReturnedResources(first.GetNextVersionMap())
	watch("1")

	mustUpdate(t, c, map[string]types.Resource{"x": cla("x", "10.0.0.9")}) // answered: x
	late := <-ch
	mustUpdate(t, c, nil, "x") // no watch open
	watch("1")                 // the next request comes before the answer is sent
	if len(ch) != 0 {
		t.Fatal("the new watch answered though the stream lacks nothing yet")
	}
	sub.SetReturnedResources(late.GetNextVersionMap()) // now it is sent
	select {
	case r := <-ch:
		out, _ := r.GetDeltaDiscoveryResponse()
		if !slices.Equal(out.GetRemovedResources(), []string{"x"}) || len(out.GetResources()) != 0 {
			t.Errorf("answer: resources %v, removed %v; want x removed", deltaNames(out), out.GetRemovedResources())
		}
	default:
		t.Error("the open watch was not told that x, sent late, is gone")
	}
}
