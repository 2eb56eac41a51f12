package abuse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// The mesh the xDS abuse tests attack: xdsServices services of one port in
// cluster1 (network1), each with one endpoint. Its CDS is 490 KB, a
// "large" response that takes from the send budget.
const (
	xdsServices = 600
	xdsNetwork  = "network1"
	xdsCluster  = "cluster1"
	// xdsViewGrace is the serve's --xds-view-grace: short, so the test
	// sees unused views go.
	xdsViewGrace = time.Second
	// xdsMaxViews is the serve's --xds-max-views: a made-up flood of 150
	// proxies (2 views each) passes it.
	xdsMaxViews = 200
	// xdsNamesCache is the serve's --xds-names-cache-bytes.
	xdsNamesCache = 8 << 20
)

// Bounds, with the values measured beside them (a 2-core machine shared
// with five other builds and tests, load average 8 to 10).
const (
	// xdsHeapGrowth bounds the live heap (after two GCs) once every
	// attacker left, over the heap before, beyond what the names cache
	// keeps by design (at most xdsNamesCache). Measured: baseline 10.6 to
	// 10.7 MiB, after 19.0 to 20.1 MiB of which 6.8 MiB names cache: +14%
	// to +25% beyond the cache (pools, profiler buckets, the known-network
	// set). Before the fixes the made-up flood alone left every view
	// (issue 14: 1.8 GB with 300 streams on 600 services).
	xdsHeapGrowth = 0.50
	// xdsFirstCDS bounds how long a new proxy waits for its first full CDS
	// while 500 streams on one connection ask for the CDS and read
	// nothing. Measured: 0.03 to 0.6 s; with --xds-conn-send-budget=none
	// (the code before the per-connection budget) 15.1 s.
	xdsFirstCDS = 5 * time.Second
	// xdsMaxResponseRate bounds the responses per second a looping client
	// draws on one stream. Measured: NACK loop 1 response in 1 s (3,100/s
	// before the fix, issue 14); a loop of requests quoting another
	// process's version 40 in 4 s (10/s: the burst of 20, then 5/s;
	// unpaced, as fast as the round trip).
	xdsMaxResponseRate = 15.0
)

var (
	cdsType = resource.ClusterType
	edsType = resource.EndpointType
	rdsType = resource.RouteType
)

// TestXDSAbuse plays hostile xDS clients, one attack after the other,
// against one `causeway serve` process, and checks each stays bounded.
func TestXDSAbuse(t *testing.T) {
	testreq.NotShort(t, "builds causeway and attacks a real causeway serve")
	dir := t.TempDir()
	start := time.Now()
	bin := testkit.CausewayBinary(t)
	t.Logf("built causeway in %s", time.Since(start).Round(time.Millisecond))
	srv := xdsStartServe(t, bin, xdsWorld(t, dir),
		"--xds-view-grace="+xdsViewGrace.String(),
		"--xds-max-views="+strconv.Itoa(xdsMaxViews),
		"--xds-names-cache-bytes="+strconv.Itoa(xdsNamesCache))

	// A normal proxy, connected throughout.
	normal := xdsDial(t, srv.xdsAddr)
	proxy := xdsOpen(t, normal, xdsNode("sidecar~10.1.0.9~sleep-1.sample~sample.svc.cluster.local", xdsNetwork, xdsCluster, "sample"))
	cds := proxy.firstFullCDS(t)
	t.Logf("the CDS: %d clusters, %d bytes", len(cds.GetResources()), proto.Size(cds))
	edsNames := make([]string, 0, len(cds.GetResources()))
	for i := range xdsServices {
		edsNames = append(edsNames, xdsEDSName(i))
	}
	proxy.ack(t, cds, nil)
	proxy.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: edsNames})
	proxy.ack(t, proxy.recv(t), edsNames)

	baseViews := srv.metric(t, "causeway_xds_views")
	baseHeap := srv.liveHeap(t)
	t.Logf("baseline: %v views, live heap %.1f MiB, %v goroutines", baseViews, baseHeap/(1<<20), srv.metric(t, "go_goroutines"))

	attacks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"made-up metadata", func(t *testing.T) { xdsMadeUpMetadata(t, srv, edsNames, baseViews) }},
		{"name floods", func(t *testing.T) { xdsNameFloods(t, srv) }},
		{"non-reading streams", func(t *testing.T) { xdsNonReaders(t, srv) }},
		{"NACK loops", func(t *testing.T) { xdsNackLoops(t, srv) }},
		{"huge error_detail", func(t *testing.T) { xdsHugeErrorDetail(t, srv) }},
	}
	for _, a := range attacks {
		t.Run(a.name, a.run)
		t.Logf("after %s: live heap %.1f MiB, %v goroutines", a.name, srv.liveHeap(t)/(1<<20), srv.metric(t, "go_goroutines"))
	}

	// Every attacker left: the views come back to the baseline and the
	// heap to within xdsHeapGrowth of it, plus what the names cache keeps.
	xdsEventually(t, "the views of the attackers to be freed", func() bool {
		return srv.metric(t, "causeway_xds_views") == baseViews
	})
	heap := srv.liveHeap(t)
	cache := srv.metric(t, "causeway_xds_names_cache_bytes")
	t.Logf("after the attacks: live heap %.1f MiB (%+.1f%%), names cache %.1f MiB",
		heap/(1<<20), 100*(heap-baseHeap)/baseHeap, cache/(1<<20))
	if limit := baseHeap*(1+xdsHeapGrowth) + cache; heap > limit {
		t.Errorf("live heap after every attacker left: %.1f MiB, want at most %.1f MiB (baseline %.1f MiB + %.0f%% + names cache %.1f MiB)",
			heap/(1<<20), limit/(1<<20), baseHeap/(1<<20), 100*xdsHeapGrowth, cache/(1<<20))
	}
	// The normal proxy was served throughout: a NACK-free stream still
	// open, nothing closed it.
	if err := proxy.err(); err != nil {
		t.Errorf("the normal proxy's stream ended during the attacks: %v", err)
	}
}

// xdsMadeUpMetadata: 150 proxies claim networks, clusters and namespaces
// no one has. Past --xds-max-views they are refused; after they leave and
// the grace runs out, the views are back to the baseline.
func xdsMadeUpMetadata(t *testing.T, srv *xdsServe, edsNames []string, baseViews float64) {
	const flood = 150
	ccs := []*grpc.ClientConn{xdsDial(t, srv.xdsAddr), xdsDial(t, srv.xdsAddr), xdsDial(t, srv.xdsAddr)}
	var clients []*xdsStream
	refused := 0
	for i := range flood {
		ns := fmt.Sprintf("made-up-%d", i)
		c := xdsOpen(t, ccs[i%len(ccs)], xdsNode(fmt.Sprintf("sidecar~10.9.%d.%d~pod.%s~%s.svc.cluster.local", i/250, i%250+1, ns, ns),
			fmt.Sprintf("net-%d", i), fmt.Sprintf("cluster-%d", i), ns))
		clients = append(clients, c)
		c.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: edsNames})
		if _, err := c.recvOrErr(t); err != nil {
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "not part of the mesh") {
				t.Fatalf("made-up proxy %d: %v, want served, or refused with ResourceExhausted saying why", i, err)
			}
			refused++
			continue
		}
		c.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: rdsType, ResourceNames: []string{"80"}})
		if _, err := c.recvOrErr(t); err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("made-up proxy %d RDS: %v", i, err)
		}
	}
	views := srv.metric(t, "causeway_xds_views")
	t.Logf("during the flood: %v views, %d of %d proxies refused", views, refused, flood)
	if views > xdsMaxViews {
		t.Errorf("views during the flood: %v, want at most --xds-max-views=%d", views, xdsMaxViews)
	}
	if refused == 0 || srv.metric(t, "causeway_xds_view_refusals_total") == 0 {
		t.Errorf("no made-up proxy was refused past the view limit")
	}
	for _, c := range clients {
		c.close()
	}
	xdsEventually(t, "the flood's views to be freed after the grace", func() bool {
		return srv.metric(t, "causeway_xds_views") == baseViews
	})
}

// xdsNameFloods: requests of too many names or too many bytes are refused
// with ResourceExhausted; requests of many (distinct) lists just under the
// limit are served, and the shared names cache stays within its bound.
func xdsNameFloods(t *testing.T, srv *xdsServe) {
	cc := xdsDial(t, srv.xdsAddr, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	node := xdsNode("sidecar~10.1.0.50~flood.sample~sample.svc.cluster.local", xdsNetwork, xdsCluster, "sample")

	tooMany := xdsOpen(t, cc, node)
	tooMany.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: make([]string, 100_001)})
	if _, err := tooMany.recvOrErr(t); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a request of 100,001 names: %v, want ResourceExhausted", err)
	}
	tooBig := xdsOpen(t, cc, node)
	tooBig.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: []string{strings.Repeat("n", 5<<20)}})
	if _, err := tooBig.recvOrErr(t); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 5 MiB request: %v, want ResourceExhausted", err)
	}

	// 4 streams x 3 requests of 99,000 empty names and one distinct
	// name: each list is 200 KB on the wire and 1.8 MB in memory.
	// The first request of each stream is answered (with nothing: no
	// such resources); the next two change the subscription to names that
	// do not exist either, which needs no answer. A CDS request after
	// them is answered once they were read, decoded and handled.
	var wg sync.WaitGroup
	for s := range 4 {
		st := xdsOpen(t, cc, node)
		wg.Go(func() {
			defer st.close()
			var first *discoverygrpc.DiscoveryResponse
			for r := range 3 {
				names := make([]string, 99_001)
				names[0] = fmt.Sprintf("list-%d-%d", s, r)
				req := &discoverygrpc.DiscoveryRequest{TypeUrl: edsType, ResourceNames: names,
					VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}
				if err := st.trySend(req); err != nil {
					t.Errorf("name flood stream %d: %v", s, err)
					return
				}
				if r > 0 {
					continue
				}
				resp, err := st.recvTimeout(30 * time.Second)
				if err != nil {
					t.Errorf("name flood stream %d: %v, want an answer", s, err)
					return
				}
				first = resp
			}
			if err := st.trySend(&discoverygrpc.DiscoveryRequest{TypeUrl: cdsType}); err != nil {
				t.Errorf("name flood stream %d: %v", s, err)
				return
			}
			if resp, err := st.recvTimeout(30 * time.Second); err != nil || resp.GetTypeUrl() != cdsType {
				t.Errorf("name flood stream %d: CDS after the names: %v, %v", s, resp.GetTypeUrl(), err)
			}
		})
	}
	wg.Wait()
	if got := srv.metric(t, "causeway_xds_names_cache_bytes"); got > xdsNamesCache {
		t.Errorf("names cache: %v bytes, want at most --xds-names-cache-bytes=%d", got, xdsNamesCache)
	}
	tooMany.close()
	tooBig.close()
}

// xdsNonReaders: 500 streams on one connection ask for the CDS and never
// read; a new proxy's first full CDS still comes within xdsFirstCDS.
func xdsNonReaders(t *testing.T, srv *xdsServe) {
	const streams = 500
	hostile := xdsDial(t, srv.xdsAddr, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i := range streams {
		n := xdsNode(fmt.Sprintf("sidecar~10.1.1.%d~idle-%d.sample~sample.svc.cluster.local", i%250+1, i), xdsNetwork, xdsCluster, "sample")
		if err := testkit.OpenADS(ctx, t, hostile, n).Request(cdsType); err != nil {
			t.Fatal(err)
		}
	}
	// Let the hostile streams take what they can of the budget.
	xdsEventually(t, "the send budget to be taken by the non-readers", func() bool {
		return srv.metric(t, "causeway_xds_send_budget_bytes") > 0
	})

	fresh := xdsOpen(t, xdsDial(t, srv.xdsAddr), xdsNode("sidecar~10.1.0.77~fresh.sample~sample.svc.cluster.local", xdsNetwork, xdsCluster, "sample"))
	start := time.Now()
	cds := fresh.firstFullCDS(t)
	took := time.Since(start)
	t.Logf("a new proxy's first CDS (%d clusters) during the attack: %s", len(cds.GetResources()), took)
	if took > xdsFirstCDS {
		t.Errorf("a new proxy's first CDS took %s with %d non-reading streams, want at most %s", took, streams, xdsFirstCDS)
	}
	fresh.close()
}

// xdsNackLoops: a client that NACKs every CDS response as fast as it can,
// and one that quotes another process's version in every request, draw at
// most xdsMaxResponseRate responses per second.
func xdsNackLoops(t *testing.T, srv *xdsServe) {
	cc := xdsDial(t, srv.xdsAddr)
	// The foreign-version loop runs long enough for the rate to show
	// past the burst of 20.
	for mode, loop := range map[string]time.Duration{"nack": time.Second, "foreign version": 4 * time.Second} {
		c := xdsOpen(t, cc, xdsNode("sidecar~10.1.0.60~loop.sample~sample.svc.cluster.local", xdsNetwork, xdsCluster, "sample"))
		c.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType})
		responses := 0
		start := time.Now()
		last := c.recv(t)
		responses++
		for time.Since(start) < loop {
			req := &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType, ResponseNonce: last.GetNonce()}
			if mode == "nack" {
				req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "rejected"}
			} else {
				req.VersionInfo = "another-process.7"
			}
			c.send(t, req)
			r, ok := c.recvWithin(t, loop-time.Since(start))
			if !ok {
				break
			}
			last = r
			responses++
		}
		rate := float64(responses) / time.Since(start).Seconds()
		t.Logf("%s loop: %d responses in %s (%.1f/s)", mode, responses, time.Since(start).Round(time.Millisecond), rate)
		if rate > xdsMaxResponseRate {
			t.Errorf("%s loop drew %.1f responses/s on one stream, want at most %.1f", mode, rate, xdsMaxResponseRate)
		}
		c.close()
	}
}

// xdsHugeErrorDetail: a NACK whose error_detail is 3 MiB is kept cut, so
// /debug/proxies stays small.
func xdsHugeErrorDetail(t *testing.T, srv *xdsServe) {
	id := "sidecar~10.1.0.61~huge.sample~sample.svc.cluster.local"
	c := xdsOpen(t, xdsDial(t, srv.xdsAddr), xdsNode(id, xdsNetwork, xdsCluster, "sample"))
	c.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType})
	cds := c.recv(t)
	c.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType, ResponseNonce: cds.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: strings.Repeat("x", 3<<20)}})
	var detail string
	var size int
	xdsEventually(t, "the NACK in /debug/proxies", func() bool {
		body := srv.get(t, "/debug/proxies")
		size = len(body)
		var proxies []struct {
			ID    string `json:"id"`
			Types []struct {
				Type     string `json:"type"`
				LastNack *struct {
					Error string `json:"error"`
				} `json:"lastNack"`
			} `json:"types"`
		}
		if err := json.Unmarshal(body, &proxies); err != nil {
			t.Fatalf("/debug/proxies: %v", err)
		}
		for _, p := range proxies {
			for _, ts := range p.Types {
				if p.ID == id && ts.Type == "cds" && ts.LastNack != nil {
					detail = ts.LastNack.Error
					return true
				}
			}
		}
		return false
	})
	t.Logf("/debug/proxies: %d bytes, the NACK's detail %d bytes", size, len(detail))
	if len(detail) > 5<<10 || !strings.Contains(detail, "truncated") {
		t.Errorf("the 3 MiB NACK detail shows as %d bytes, want it cut to about 4 KiB with a note", len(detail))
	}
	if size > 256<<10 {
		t.Errorf("/debug/proxies is %d bytes after a 3 MiB NACK, want it small", size)
	}
	c.close()
}

// xdsEDSName is the EDS resource of service i of the world.
func xdsEDSName(i int) string {
	return fmt.Sprintf("outbound|80||svc-%d.fill.svc.cluster.local", i)
}

// xdsWorld writes the manifests of the mesh (one folder per cluster).
func xdsWorld(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "world")
	if err := os.MkdirAll(filepath.Join(root, xdsCluster), 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
  labels:
    topology.istio.io/network: %s
---
apiVersion: v1
kind: Namespace
metadata:
  name: fill
`, xdsNetwork)
	for i := range xdsServices {
		ip := fmt.Sprintf("10.10.%d.%d", i/250, i%250+1)
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: svc-%[1]d
  namespace: fill
spec:
  clusterIP: 10.96.%[2]d.%[3]d
  ports:
  - name: tcp
    port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-%[1]d-1
  namespace: fill
  labels:
    kubernetes.io/service-name: svc-%[1]d
addressType: IPv4
ports:
- name: tcp
  port: 8080
endpoints:
- addresses: [%[4]s]
  conditions: {ready: true}
`, i, i/250, i%250+1, ip)
	}
	if err := os.WriteFile(filepath.Join(root, xdsCluster, "world.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// xdsServe is a running `causeway serve`.
type xdsServe struct {
	xdsAddr, debugAddr string
	client             *http.Client
}

// xdsStartServe starts serve on the manifests of world until the test
// ends, and waits for /ready.
func xdsStartServe(t *testing.T, bin, world string, args ...string) *xdsServe {
	t.Helper()
	s := &xdsServe{xdsAddr: testkit.FreeAddrs(t, 1)[0], debugAddr: testkit.FreeAddrs(t, 1)[0], client: &http.Client{Timeout: 10 * time.Second}}
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--drain-duration=0", "--manifests", world, "--xds-addr", s.xdsAddr,
		"--xds-tls-addr", "", "--debug-addr", s.debugAddr}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(done)
	}()
	t.Cleanup(func() {
		testkit.Stop(cmd.Process, done, 10*time.Second)
		if t.Failed() {
			t.Logf("serve log (tail):\n%s", xdsTail(logPath, 4<<10))
		}
	})
	testkit.Eventually(t, 60*time.Second, "causeway serve not ready after 60 s", func() string {
		select {
		case <-done:
			t.Fatalf("causeway serve exited at start:\n%s", xdsTail(logPath, 4<<10))
		default:
		}
		resp, err := s.client.Get("http://" + s.debugAddr + "/ready")
		if err != nil {
			return err.Error() + "\n" + xdsTail(logPath, 4<<10)
		}
		_ = resp.Body.Close()
		// Ready, and the model published to the xDS server once.
		if resp.StatusCode != http.StatusOK || s.metric(t, "causeway_xds_publish_seconds_count") == 0 {
			return fmt.Sprintf("/ready says %d, or nothing published yet\n%s", resp.StatusCode, xdsTail(logPath, 4<<10))
		}
		return ""
	})
	return s
}

// xdsTail returns the last n bytes of a file.
func xdsTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

// get returns the body of a debug path, at most 8 MiB.
func (s *xdsServe) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := s.client.Get("http://" + s.debugAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b
}

// metric returns the sum of a metric's samples in /metrics.
func (s *xdsServe) metric(t *testing.T, name string) float64 {
	t.Helper()
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(s.get(t, "/metrics")))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// liveHeap forces two collections (/debug/pprof/heap?gc=1) and returns the
// heap in use after them (go_memstats_heap_alloc_bytes).
func (s *xdsServe) liveHeap(t *testing.T) float64 {
	t.Helper()
	s.get(t, "/debug/pprof/heap?gc=1")
	s.get(t, "/debug/pprof/heap?gc=1")
	return s.metric(t, "go_memstats_heap_alloc_bytes")
}

// xdsEventually waits up to 30 s for cond.
func xdsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 30*time.Second, "timed out waiting for "+what, testkit.Holds(cond))
}

// xdsNode is an Istio sidecar's node.
func xdsNode(id, network, cluster, namespace string) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{"NETWORK": network, "CLUSTER_ID": cluster, "NAMESPACE": namespace})
	if err != nil {
		panic(err)
	}
	return &corev3.Node{Id: id, Metadata: md}
}

// xdsDial connects a gRPC client, closed when the test ends.
func xdsDial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// xdsStream is a SotW ADS stream read on a goroutine.
type xdsStream struct {
	ads *testkit.ADS
	in  *testkit.Reader[discoverygrpc.DiscoveryResponse]
}

// xdsStreamBuffer is how many responses a stream's reader holds.
const xdsStreamBuffer = 4

func xdsOpen(t *testing.T, cc *grpc.ClientConn, node *corev3.Node) *xdsStream {
	t.Helper()
	ads := testkit.OpenADS(context.Background(), t, cc, node)
	return &xdsStream{ads: ads, in: ads.Read(xdsStreamBuffer)}
}

func (s *xdsStream) close() { s.ads.Close() }

// err is why the stream ended, nil while it runs.
func (s *xdsStream) err() error { return s.in.Err() }

func (s *xdsStream) trySend(req *discoverygrpc.DiscoveryRequest) error { return s.ads.Send(req) }

func (s *xdsStream) send(t *testing.T, req *discoverygrpc.DiscoveryRequest) {
	t.Helper()
	if err := s.trySend(req); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func (s *xdsStream) ack(t *testing.T, resp *discoverygrpc.DiscoveryResponse, names []string) {
	t.Helper()
	s.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(),
		ResponseNonce: resp.GetNonce(), ResourceNames: names})
}

// recvTimeout waits up to d for a response or the end of the stream (its
// error); it fails, but not the test, after d.
func (s *xdsStream) recvTimeout(d time.Duration) (*discoverygrpc.DiscoveryResponse, error) {
	select {
	case r, ok := <-s.in.C:
		if !ok {
			return nil, errors.New("stream ended without a status")
		}
		return r.Msg, r.Err
	case <-time.After(d):
		return nil, fmt.Errorf("no response in %s", d)
	}
}

// recvOrErr waits up to 30 s for a response or the end of the stream.
func (s *xdsStream) recvOrErr(t *testing.T) (*discoverygrpc.DiscoveryResponse, error) {
	t.Helper()
	r, err := s.recvTimeout(30 * time.Second)
	if err != nil && status.Code(err) == codes.Unknown {
		t.Fatal(err)
	}
	return r, err
}

func (s *xdsStream) recv(t *testing.T) *discoverygrpc.DiscoveryResponse {
	t.Helper()
	r, err := s.recvOrErr(t)
	if err != nil {
		t.Fatalf("stream ended: %v", err)
	}
	return r
}

// recvWithin waits up to d for a response; false if none came.
func (s *xdsStream) recvWithin(t *testing.T, d time.Duration) (*discoverygrpc.DiscoveryResponse, bool) {
	t.Helper()
	select {
	case r, ok := <-s.in.C:
		if !ok || r.Err != nil {
			t.Fatalf("stream ended: %v", s.err())
		}
		return r.Msg, true
	case <-time.After(max(d, 0)):
		return nil, false
	}
}

// firstFullCDS asks for the CDS and waits for it (every service).
func (s *xdsStream) firstFullCDS(t *testing.T) *discoverygrpc.DiscoveryResponse {
	t.Helper()
	s.send(t, &discoverygrpc.DiscoveryRequest{TypeUrl: cdsType})
	r := s.recv(t)
	if r.GetTypeUrl() != cdsType || len(r.GetResources()) < xdsServices {
		t.Fatalf("first CDS: %s with %d resources, want every one of %d services", r.GetTypeUrl(), len(r.GetResources()), xdsServices)
	}
	return r
}
