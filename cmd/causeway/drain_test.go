package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// replica is a `causeway serve --manifests` process of the test.
type replica struct {
	cmd      *exec.Cmd
	xds, dbg string
	// exited is closed when the process has exited, with err.
	exited chan struct{}
	err    error
	stderr *syncBuffer
}

// syncBuffer holds a replica's output (the first 1 MiB).
type syncBuffer = testkit.LogBuffer

// startReplica runs `causeway serve` on the home example's manifests, on
// free loopback ports, and waits until it is ready.
func startReplica(t *testing.T, bin string, drain time.Duration) *replica {
	t.Helper()
	addrs := testkit.FreeAddrs(t, 2)
	r := &replica{xds: addrs[0], dbg: addrs[1], exited: make(chan struct{}), stderr: &syncBuffer{}}
	r.cmd = exec.Command(bin, "serve", "--manifests", filepath.Join("..", "..", "examples", "home"),
		"--xds-addr", r.xds, "--debug-addr", r.dbg, "--drain-duration", drain.String())
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})
	testkit.Eventually(t, 60*time.Second, "causeway serve not ready after 60s", func() string {
		select {
		case <-r.exited:
			t.Fatalf("causeway serve exited at start: %v\n%s", r.err, r.stderr)
		default:
		}
		if code := r.readyCode(); code != http.StatusOK {
			return fmt.Sprintf("/ready says %d\n%s", code, r.stderr)
		}
		return ""
	})
	return r
}

// readyCode is the status of GET /ready, 0 if there is no answer.
func (r *replica) readyCode() int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.dbg + "/ready")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// deltaProxy is a sidecar's delta ADS stream, read on a goroutine.
type deltaProxy struct {
	t   *testing.T
	ads *testkit.DeltaADS
	in  *testkit.Reader[discoveryv3.DeltaDiscoveryResponse]
}

func sidecar(pod string) *corev3.Node {
	return &corev3.Node{
		Id: "sidecar~10.1.0.9~" + pod + ".sample~sample.svc.cluster.local",
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NETWORK":    structpb.NewStringValue("network1"),
			"CLUSTER_ID": structpb.NewStringValue("cluster1"),
		}},
	}
}

func newDeltaProxy(t *testing.T, addr string) *deltaProxy {
	t.Helper()
	// The requests carry their node.
	ads := testkit.DialDeltaADS(context.Background(), t, addr, nil)
	return &deltaProxy{t: t, ads: ads, in: ads.Read(16)}
}

func (p *deltaProxy) send(req *discoveryv3.DeltaDiscoveryRequest) {
	p.t.Helper()
	if err := p.ads.Send(req); err != nil {
		p.t.Fatal(err)
	}
}

// ended is closed when the stream has ended; its error is p.in.Err().
func (p *deltaProxy) ended() <-chan struct{} { return p.in.Done() }

// recv waits for the next response, which must be of typeURL, and ACKs it.
func (p *deltaProxy) recv(typeURL string) *discoveryv3.DeltaDiscoveryResponse {
	p.t.Helper()
	select {
	case r, ok := <-p.in.C:
		if !ok || r.Err != nil {
			p.t.Fatalf("stream ended: %v", p.in.Err())
		}
		resp := r.Msg
		if resp.GetTypeUrl() != typeURL {
			p.t.Fatalf("got a %s response, want %s", resp.GetTypeUrl(), typeURL)
		}
		p.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: resp.GetNonce()})
		return resp
	case <-time.After(30 * time.Second):
		p.t.Fatalf("no %s response", typeURL)
	}
	return nil
}

func versions(resp *discoveryv3.DeltaDiscoveryResponse) map[string]string {
	out := make(map[string]string, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		out[r.GetName()] = r.GetVersion()
	}
	return out
}

// Two `causeway serve` replicas hold the same model. SIGTERM to the first
// drains it: /ready turns false, its proxies' streams end with
// Unavailable, and it exits 0 within the drain window and its margin.
// A delta proxy then reconnects to the second replica with the versions
// it holds (initial_resource_versions): what it holds in the same version
// is not sent again, a resource it holds in another version is, and one
// that does not exist is in removed_resources. Resource versions are
// content hashes: equal across processes.
func TestServeDrainsAndAnotherReplicaKnowsTheVersions(t *testing.T) {
	testreq.NotShort(t, "builds and runs the causeway binary")
	bin := testkit.CausewayBinary(t)
	const window = 4 * time.Second
	a, b := startReplica(t, bin, window), startReplica(t, bin, window)

	// Proxies on replica a: one records what it is sent.
	proxies := make([]*deltaProxy, 4)
	for i := range proxies {
		proxies[i] = newDeltaProxy(t, a.xds)
		proxies[i].send(&discoveryv3.DeltaDiscoveryRequest{Node: sidecar(fmt.Sprintf("p%d", i)), TypeUrl: resourcev3.ClusterType})
	}
	held := map[string]map[string]string{}
	for i, p := range proxies {
		cds := versions(p.recv(resourcev3.ClusterType))
		if i > 0 {
			continue
		}
		held[resourcev3.ClusterType] = cds
		p.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: slices.Sorted(maps.Keys(cds))})
		held[resourcev3.EndpointType] = versions(p.recv(resourcev3.EndpointType))
		p.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType})
		held[resourcev3.ListenerType] = versions(p.recv(resourcev3.ListenerType))
	}
	if len(held[resourcev3.ClusterType]) < 3 || len(held[resourcev3.EndpointType]) == 0 || len(held[resourcev3.ListenerType]) == 0 {
		t.Fatalf("replica a served too little to test with: %v", held)
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	for i, p := range proxies {
		select {
		case <-p.ended():
			if err := p.in.Err(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "draining") {
				t.Errorf("proxy %d's stream ended with %v, want Unavailable saying the control plane drains", i, err)
			}
		case <-time.After(window + 30*time.Second):
			t.Fatalf("proxy %d's stream still open %v after SIGTERM", i, time.Since(begin))
		}
		if i == 0 {
			// The drain is under way: /ready is false, or the debug
			// server is already gone with the rest.
			if code := a.readyCode(); code == http.StatusOK {
				t.Errorf("replica a: /ready %d during its drain", code)
			}
		}
	}
	select {
	case <-a.exited:
		if a.err != nil {
			t.Errorf("replica a exited with %v after SIGTERM, want 0\n%s", a.err, a.stderr)
		}
	case <-time.After(window + 5*time.Second + 30*time.Second):
		t.Fatalf("replica a still running %v after SIGTERM (window %v)\n%s", time.Since(begin), window, a.stderr)
	}
	if !strings.Contains(a.stderr.String(), "drained") {
		t.Errorf("replica a's log does not say it drained:\n%s", a.stderr)
	}

	// Reconnect to replica b with what the proxy holds, changed: one
	// cluster in a version b does not have, and one b does not know.
	known := maps.Clone(held[resourcev3.ClusterType])
	names := slices.Sorted(maps.Keys(known))
	stale := names[0]
	known[stale] = "not-a-version-of-b"
	const gone = "outbound|1||gone.sample.svc.cluster.local"
	known[gone] = "v-gone"
	p := newDeltaProxy(t, b.xds)
	p.send(&discoveryv3.DeltaDiscoveryRequest{Node: sidecar("p0"), TypeUrl: resourcev3.ClusterType, InitialResourceVersions: known})
	cds := p.recv(resourcev3.ClusterType)
	if got := slices.Sorted(maps.Keys(versions(cds))); !slices.Equal(got, []string{stale}) || !slices.Equal(cds.GetRemovedResources(), []string{gone}) {
		t.Errorf("replica b's CDS to a reconnecting proxy: resources %v, removed %v; want only %q (its version differs), removed [%s]",
			got, cds.GetRemovedResources(), stale, gone)
	}
	if got, want := versions(cds)[stale], held[resourcev3.ClusterType][stale]; got != want {
		t.Errorf("replica b's version of %s = %q, replica a's %q: versions differ across processes", stale, got, want)
	}
	// Unchanged listeners: an empty answer (a wildcard's first request is
	// always answered, so that the proxy finishes initializing).
	p.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, InitialResourceVersions: held[resourcev3.ListenerType]})
	if lds := p.recv(resourcev3.ListenerType); len(lds.GetResources()) > 0 || len(lds.GetRemovedResources()) > 0 {
		t.Errorf("replica b resent listeners the proxy holds in the same version: %v, removed %v", versions(lds), lds.GetRemovedResources())
	}
	// Endpoints: one held in another version comes back, alone.
	eknown := maps.Clone(held[resourcev3.EndpointType])
	enames := slices.Sorted(maps.Keys(eknown))
	eknown[enames[0]] = "not-a-version-of-b"
	p.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNamesSubscribe: names, InitialResourceVersions: eknown})
	if got := slices.Sorted(maps.Keys(versions(p.recv(resourcev3.EndpointType)))); !slices.Equal(got, enames[:1]) {
		t.Errorf("replica b's EDS to a reconnecting proxy: %v, want only %v", got, enames[:1])
	}
}

// A second SIGTERM during a drain ends the process at once, as if the
// signal were not caught.
func TestServeSecondSignalEndsTheDrain(t *testing.T) {
	testreq.NotShort(t, "builds and runs the causeway binary")
	r := startReplica(t, testkit.CausewayBinary(t), time.Hour)
	p := newDeltaProxy(t, r.xds)
	p.send(&discoveryv3.DeltaDiscoveryRequest{Node: sidecar("p0"), TypeUrl: resourcev3.ClusterType})
	p.recv(resourcev3.ClusterType)
	q := newDeltaProxy(t, r.xds)
	q.send(&discoveryv3.DeltaDiscoveryRequest{Node: sidecar("p1"), TypeUrl: resourcev3.ClusterType})
	q.recv(resourcev3.ClusterType)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first stream ends at once, the second in half an hour: the
	// drain is under way.
	<-p.ended()
	if err := p.in.Err(); status.Code(err) != codes.Unavailable {
		t.Fatalf("first stream ended with %v, want Unavailable", err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.exited:
		if !endedBy(r.err, syscall.SIGTERM) {
			t.Errorf("causeway serve ended with %v, want an exit by SIGTERM", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("causeway serve still running 30s after a second SIGTERM")
	}
}

// endedBy says whether a process's Wait error is an exit by sig.
func endedBy(err error, sig syscall.Signal) bool {
	ee, ok := errors.AsType[*exec.ExitError](err)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
