package xds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// gaugeValue reads a gauge from reg.
func gaugeValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// streamError waits for the stream to end and returns its error.
func (c *sotwClient) streamError() error {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case r, ok := <-c.in:
			if !ok {
				return nil
			}
			if r.Err != nil {
				return r.Err
			}
		case <-deadline:
			c.t.Fatal("the stream did not end")
			return nil
		}
	}
}

// TestNackHoldsTheWatch (issue 14, item 8): a NACK of the first response
// (version_info empty, as Envoy sends when it never accepted anything) is
// not answered with the same resources again; the next change is sent.
func TestNackHoldsTheWatch(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMesh(t, Config{Registerer: reg})
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.publish()
	c := newSotW(t, dial(t, serve(t, m.srv)), sidecarNode("sleep-1", network1, cluster1))

	c.request(cdsType, nil, "", "", "")
	cds := c.recvType(cdsType)
	for range 3 {
		c.request(cdsType, nil, "", cds.GetNonce(), "cluster rejected")
		c.quiet(300 * time.Millisecond)
	}
	if got := counterValue(t, reg, "causeway_xds_responses_total", "cds"); got != 1 {
		t.Errorf("CDS responses after three NACKs: %v, want 1 (the first)", got)
	}
	// Something changes: the stream gets it.
	m.service(cluster1, "sample", "other", "10.1.100.2", 80)
	m.publish()
	next := c.recvType(cdsType)
	if n := len(next.GetResources()); n <= len(cds.GetResources()) {
		t.Errorf("CDS after the change has %d clusters, want more than %d", n, len(cds.GetResources()))
	}
}

// TestResendPaced (issue 14, item 8): a stream whose requests must each be
// answered (a version of another process in each) is answered at the
// resend rate after its burst; the lower bound on the time is the pacer's
// guarantee, not a speed.
func TestResendPaced(t *testing.T) {
	const rate, burst, requests = 4, 2, 8
	m := newMesh(t, Config{ResendRate: rate, ResendBurst: burst})
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.publish()
	c := newSotW(t, dial(t, serve(t, m.srv)), sidecarNode("sleep-1", network1, cluster1))

	start := time.Now()
	nonce := ""
	for range requests {
		c.request(cdsType, nil, "another-process.1", nonce, "")
		nonce = c.recvType(cdsType).GetNonce()
	}
	// The stream's first answer carries the view (progress, not paced);
	// the other requests-1 re-send it: burst at once, then one per 1/rate.
	minimum := time.Duration(requests-1-burst-1) * time.Second / rate
	if took := time.Since(start); took < minimum {
		t.Errorf("%d answered requests took %s, want at least %s at %d/s after a burst of %d", requests, took, minimum, rate, burst)
	}
}

// TestChurnNotPaced: an ACK that finds newer changes in the cache (a
// publish landed between the response and the ACK, as churn makes happen
// all the time) is answered at once every time, whatever the re-send
// pace: only answers at a version the stream already had are re-sends.
// With the pacer charging them, these answers would take at least
// (changes-burst-1)/rate = 8 s.
func TestChurnNotPaced(t *testing.T) {
	const rate, burst, changes = 0.5, 1, 6
	m := newMesh(t, Config{ResendRate: rate, ResendBurst: burst})
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.publish()
	c := newSotW(t, dial(t, serve(t, m.srv)), sidecarNode("sleep-1", network1, cluster1))
	c.request(cdsType, nil, "", "", "")
	prev := c.recvType(cdsType)
	paced := time.Duration(float64(changes-burst-1) / rate * float64(time.Second))
	start := time.Now()
	for i := range changes {
		m.service(cluster1, "sample", fmt.Sprintf("churn-%d", i), fmt.Sprintf("10.1.101.%d", i+1), helloPort)
		m.publish()
		c.ack(prev, nil)
		cur := c.recvType(cdsType)
		if cur.GetVersionInfo() == prev.GetVersionInfo() {
			t.Fatalf("change %d: answered at the version already sent, %s", i, cur.GetVersionInfo())
		}
		prev = cur
	}
	if took := time.Since(start); took >= paced {
		t.Errorf("%d answers carrying changes took %s: paced as re-sends (%s at %v/s after a burst of %d)", changes, took, paced, rate, burst)
	}
}

// TestNackErrorDetailTruncated (issue 14, item 12): a NACK's error_detail
// is kept (and shown by /debug/proxies) cut to maxNackDetail bytes.
func TestNackErrorDetailTruncated(t *testing.T) {
	m := newMesh(t, Config{})
	m.publish()
	id := "sidecar~10.1.0.9~sleep-1.sample~sample.svc.cluster.local"
	c := newSotW(t, dial(t, serve(t, m.srv)), sidecarNode("sleep-1", network1, cluster1))
	c.request(cdsType, nil, "", "", "")
	cds := c.recvType(cdsType)
	huge := strings.Repeat("é", 1<<20) // 2 MiB, multi-byte runes
	c.request(cdsType, nil, "", cds.GetNonce(), huge)
	p := proxyStatus(t, m.srv, id, func(p ProxyStatus) bool { return typeStatus(p, "cds").LastNack != nil })
	got := typeStatus(p, "cds").LastNack.Error
	if len(got) > maxNackDetail+100 {
		t.Fatalf("the NACK detail kept is %d bytes, want at most about %d", len(got), maxNackDetail)
	}
	if !strings.HasPrefix(got, "éé") || !strings.Contains(got, "truncated") || !strings.Contains(got, fmt.Sprint(len(huge))) {
		t.Errorf("the NACK detail kept %q...: want the start of the message and a note of the cut", got[:40])
	}
	if kept, _, ok := strings.Cut(got, "..."); !ok || !strings.HasPrefix(huge, kept) {
		t.Errorf("the cut is not on a rune boundary, or the note is missing")
	}
}

// madeUpNode is a sidecar that claims a network, cluster and namespace no
// one has.
func madeUpNode(i int) *discoverygrpc.DiscoveryRequest {
	ns := fmt.Sprintf("ns-%d", i)
	n := node(fmt.Sprintf("sidecar~10.9.0.%d~pod.%s~%s.svc.cluster.local", i%250+1, ns, ns),
		map[string]string{"NETWORK": fmt.Sprintf("net-%d", i), "CLUSTER_ID": fmt.Sprintf("cluster-%d", i)})
	return &discoverygrpc.DiscoveryRequest{Node: n}
}

// TestViewsFreedAfterGrace (issue 14, item 5): views made for streams with
// made-up metadata are freed once those streams left and the grace ran
// out; the causeway_xds_views gauge comes back to its baseline.
func TestViewsFreedAfterGrace(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMesh(t, Config{Registerer: reg, ViewGrace: 200 * time.Millisecond})
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.publish()
	cc := dial(t, serve(t, m.srv))

	// A real proxy stays connected: its views stay.
	real := newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))
	real.request(edsType, []string{helloCluster}, "", "", "")
	real.ack(real.recvType(edsType), []string{helloCluster})
	real.request(rdsType, []string{"5000"}, "", "", "")
	real.ack(real.recvType(rdsType), []string{"5000"})
	baseline := gaugeValue(t, reg, "causeway_xds_views")
	if baseline != 2 {
		t.Fatalf("views with one proxy: %v, want 2 (its EDS and RDS)", baseline)
	}

	const flood = 30
	var clients []*sotwClient
	for i := range flood {
		c := newSotW(t, cc, madeUpNode(i).GetNode())
		c.request(edsType, []string{helloCluster}, "", "", "")
		c.recvType(edsType)
		c.request(rdsType, []string{"5000"}, "", "", "")
		c.recvType(rdsType)
		clients = append(clients, c)
	}
	if got := gaugeValue(t, reg, "causeway_xds_views"); got != baseline+2*flood {
		t.Fatalf("views during the flood: %v, want %v", got, baseline+2*flood)
	}
	for _, c := range clients {
		c.close()
	}
	testkit.Eventually(t, wait, "timed out waiting for the views of the streams that left to be freed", testkit.Holds(func() bool {
		return gaugeValue(t, reg, "causeway_xds_views") == baseline
	}))
	// The real proxy's views were kept: a new change reaches it.
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-a", "10.1.0.10", 8080})
	m.publish()
	real.recvType(edsType)
}

// TestViewReusedWithinGrace: a proxy that reconnects before the grace ends
// finds its view (the same one, not rebuilt).
func TestViewReusedWithinGrace(t *testing.T) {
	m := newMesh(t, Config{ViewGrace: time.Hour})
	m.publish()
	cc := dial(t, serve(t, m.srv))
	c := newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))
	c.request(edsType, nil, "", "", "")
	c.recvType(edsType)
	key, _ := keyFor(m.srv.reg.latest("sidecar~10.1.0.9~sleep-1.sample~sample.svc.cluster.local").proxy, edsType)
	first := m.srv.viewFor(key)
	c.close()
	testkit.Eventually(t, wait, "timed out waiting for the stream to leave", testkit.Holds(func() bool { return len(m.srv.Proxies()) == 0 }))
	c = newSotW(t, cc, sidecarNode("sleep-1", network1, cluster1))
	c.request(edsType, nil, "", "", "")
	c.recvType(edsType)
	if m.srv.viewFor(key) != first {
		t.Error("the view was rebuilt for a proxy that reconnected within the grace")
	}
}

// TestViewLimitRefusesUnknown (issue 14, item 5): once the server holds
// MaxViews views, a proxy whose network is unknown to the mesh is refused
// with ResourceExhausted and counted; one of a known network is served.
func TestViewLimitRefusesUnknown(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMesh(t, Config{Registerer: reg, MaxViews: 2})
	m.service(cluster1, "sample", "helloworld", "10.1.100.1", helloPort)
	m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-a", "10.1.0.10", 8080})
	m.service(cluster2, "sample", "helloworld", "10.2.100.1", helloPort)
	m.endpoints(cluster2, "sample", "helloworld", helloPort, backend{"hello-b", "10.2.0.10", 8080})
	m.publish()
	cc := dial(t, serve(t, m.srv))

	a := newSotW(t, cc, sidecarNode("a", network1, cluster1))
	a.request(cdsType, nil, "", "", "")
	a.recvType(cdsType)
	a.request(edsType, []string{helloCluster}, "", "", "")
	a.recvType(edsType)

	bad := newSotW(t, cc, sidecarNode("b", "made-up", cluster1))
	bad.request(edsType, []string{helloCluster}, "", "", "")
	err := bad.streamError()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `network "made-up"`) {
		t.Errorf("a proxy of an unknown network past the view limit: %v, want ResourceExhausted naming the network", err)
	}
	if got := counterValue(t, reg, "causeway_xds_view_refusals_total"); got != 1 {
		t.Errorf("causeway_xds_view_refusals_total = %v, want 1", got)
	}

	good := newSotW(t, cc, sidecarNode("c", network2, cluster2))
	good.request(edsType, []string{helloCluster}, "", "", "")
	good.recvType(edsType)
}

// namesRequest is an encoded EDS request naming n resources.
func namesRequest(n int, name string) []byte {
	b := protowire.AppendTag(nil, 4, protowire.BytesType) // type_url
	b = protowire.AppendString(b, edsType)
	for range n {
		b = protowire.AppendTag(b, resourceNamesField, protowire.BytesType)
		b = protowire.AppendString(b, name)
	}
	return b
}

// TestTooManyNamesRefused (issue 14, item 6): a request naming more than
// MaxRequestNames resources ends its stream with ResourceExhausted, and
// its names are never decoded; one at the limit is served.
func TestTooManyNamesRefused(t *testing.T) {
	const limit = 1000
	reg := prometheus.NewRegistry()
	m := newMesh(t, Config{Registerer: reg, MaxRequestNames: limit})
	m.publish()
	cc := dial(t, serve(t, m.srv))

	names := make([]string, limit)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|80||svc-%d.sample.svc.cluster.local", i)
	}
	ok := newSotW(t, cc, sidecarNode("ok", network1, cluster1))
	ok.request(edsType, names, "", "", "")
	ok.recvType(edsType)

	// Empty names (2 bytes each on the wire) and real ones.
	for _, list := range [][]string{make([]string, limit+1), append(names, "x")} {
		bad := newSotW(t, cc, sidecarNode("bad", network1, cluster1))
		bad.request(edsType, list, "", "", "")
		err := bad.streamError()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "1001 resources") {
			t.Errorf("a request of %d names: %v, want ResourceExhausted saying how many", limit+1, err)
		}
	}
	if got := counterValue(t, reg, "causeway_xds_requests_refused_total", "names"); got != 2 {
		t.Errorf("causeway_xds_requests_refused_total{reason=names} = %v, want 2", got)
	}

	// The codec leaves the names out and marks the request.
	c := newRequestCodec(codecLimits{maxNames: limit})
	var req discoverygrpc.DiscoveryRequest
	if err := c.unmarshalShared(namesRequest(limit+1, ""), &req); err != nil {
		t.Fatal(err)
	}
	if len(req.GetResourceNames()) != 0 || tooManyNames(&req) != limit+1 || req.GetTypeUrl() != edsType {
		t.Errorf("codec: %d names, mark %d, type %q; want no names, mark %d, the type kept",
			len(req.GetResourceNames()), tooManyNames(&req), req.GetTypeUrl(), limit+1)
	}
}

// TestRequestSizeBounded (issue 14, item 6): a request larger than
// MaxRequestBytes is refused by gRPC with ResourceExhausted.
func TestRequestSizeBounded(t *testing.T) {
	m := newMesh(t, Config{MaxRequestBytes: 64 << 10})
	m.publish()
	cc := dial(t, serve(t, m.srv))
	c := newSotW(t, cc, sidecarNode("big", network1, cluster1))
	c.request(edsType, []string{strings.Repeat("n", 100<<10)}, "", "", "")
	if err := c.streamError(); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 100 KiB request with a 64 KiB limit: %v, want ResourceExhausted", err)
	}
	// The default is 4 MiB, not the 16 MiB accepted before.
	if got := New(Config{}).cfg.MaxRequestBytes; got != 4<<20 {
		t.Errorf("default MaxRequestBytes = %d, want 4 MiB", got)
	}
}

// TestNamesCacheBoundedByMemory (issue 14, item 6): the shared lists are
// counted by the memory they hold (a list of empty names costs a string
// header per name, eight times its wire bytes) and never pass the bound.
func TestNamesCacheBoundedByMemory(t *testing.T) {
	const bound = 4 << 20
	c := newRequestCodec(codecLimits{cacheBytes: bound, maxNames: 1 << 20})
	for i := range 40 {
		// 20,000 empty names and one that makes the list distinct: 40 KB
		// on the wire, 360 KB in memory.
		b := namesRequest(20000, "")
		b = protowire.AppendTag(b, resourceNamesField, protowire.BytesType)
		b = protowire.AppendString(b, fmt.Sprint(i))
		var req discoverygrpc.DiscoveryRequest
		if err := c.unmarshalShared(b, &req); err != nil {
			t.Fatal(err)
		}
		if len(req.GetResourceNames()) != 20001 {
			t.Fatalf("decoded %d names, want 20001", len(req.GetResourceNames()))
		}
		c.mu.Lock()
		kept, used := len(c.lists), c.bytes
		c.mu.Unlock()
		if used > bound {
			t.Fatalf("after %d lists the cache holds %d bytes, over its bound %d", i+1, used, bound)
		}
		if kept > 0 && used < int64(kept)*20001*nameOverhead {
			t.Fatalf("the cache counts %d bytes for %d lists of 20001 names: less than their string headers", used, kept)
		}
	}
}

// TestConnBudgetLeavesRoomForOthers (issue 14, item 7): the streams of one
// connection hold at most the connection's share of the send budget; a
// response of another connection finds the rest at once.
func TestConnBudgetLeavesRoomForOthers(t *testing.T) {
	const size = largeResponse
	n := int64(proto.Size(response(cdsType, size)))
	b := newSendBudget(8*n, 2*n, time.Minute, newMetrics(nil))
	hostile := b.conn("tcp/192.0.2.1:1000")
	var streams []*streamHolds
	took := 0
	for range 8 {
		s := &streamHolds{b: b, cb: hostile}
		streams = append(streams, s)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		if err := s.take(ctx, response(cdsType, size)); err == nil {
			took++
		}
		cancel()
	}
	if took != 2 {
		t.Errorf("one connection's 8 streams took %d shares, want 2 (its share of the budget)", took)
	}
	fresh := &streamHolds{b: b, cb: b.conn("tcp/192.0.2.2:1000")}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := fresh.take(ctx, response(cdsType, size)); err != nil {
		t.Fatalf("a new connection's first CDS did not get the budget: %v", err)
	}
	for _, s := range append(streams, fresh) {
		s.releaseAll()
	}
	b.leave(hostile)
	b.leave(fresh.cb)
	if !b.sem.TryAcquire(b.limit) || len(b.conns) != 0 {
		t.Errorf("the budget is not whole and free of connections after every stream ended: %d connections", len(b.conns))
	}
}

// TestSendBudgetWaitTimesOut (issue 14, item 7): a response that waits for
// the budget longer than the budget's wait fails with ResourceExhausted.
func TestSendBudgetWaitTimesOut(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newSendBudget(2*largeResponse, -1, 100*time.Millisecond, newMetrics(reg))
	holder := &streamHolds{b: b}
	if err := holder.take(t.Context(), response(cdsType, 2*largeResponse)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	err := (&streamHolds{b: b}).take(ctx, response(cdsType, largeResponse))
	if status.Code(err) != codes.ResourceExhausted || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting past the budget wait: %v, want ResourceExhausted", err)
	}
	if got := counterValue(t, reg, "causeway_xds_send_budget_timeouts_total"); got != 1 {
		t.Errorf("causeway_xds_send_budget_timeouts_total = %v, want 1", got)
	}
	holder.releaseAll()
}

// TestNonReadersDoNotDelayNewProxy (issue 14, item 7): a client that opens
// many streams on one connection, asks each for the (large) CDS and reads
// none, does not keep a new proxy's first CDS waiting: before, the new
// proxy queued behind every one of them, each holding its share for
// maxHold (5 s).
func TestNonReadersDoNotDelayNewProxy(t *testing.T) {
	m := newMesh(t, Config{SendBudget: 1}) // replaced below, once the CDS size is known
	for i := range 600 {
		m.service(cluster1, "fill", fmt.Sprintf("svc-%d", i), fmt.Sprintf("10.1.%d.%d", 110+i/250, i%250+1), 80)
	}
	m.publish()
	p, err := envoy.ParseNode(sidecarNode("x", network1, cluster1))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keyFor(p, cdsType)
	v := m.srv.viewFor(key)
	size := 0
	for _, r := range v.cache.GetResources() {
		size += proto.Size(r) + 8
	}
	if size < largeResponse {
		t.Fatalf("CDS of %d bytes: too small for the budget", size)
	}
	// Room for 4 CDS responses at once, a connection's share for 1.
	m.srv.budget = newSendBudget(int64(4*size), int64(size), time.Minute, m.srv.metrics)
	addr := serve(t, m.srv)

	hostile := dial(t, addr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const streams = 40
	for i := range streams {
		st := testkit.OpenADS(ctx, t, hostile, sidecarNode(fmt.Sprintf("hostile-%d", i), network1, cluster1))
		if err := st.Request(cdsType); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, wait, "timed out waiting for the hostile streams to be registered", testkit.Holds(func() bool { return len(m.srv.Proxies()) == streams }))

	c := newSotW(t, dial(t, addr), sidecarNode("fresh", network1, cluster1))
	c.request(cdsType, nil, "", "", "")
	// Before: 40 streams queued ahead, 4 at a time for 5 s each: 50 s.
	if got := len(c.recvType(cdsType).GetResources()); got < 600 {
		t.Errorf("the new proxy's CDS has %d clusters, want all", got)
	}
}
