package kube

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationWatcherStreamsInitialLists runs a watcher against a real
// apiserver and checks, in the apiserver's metrics, that every informer
// filled its cache with a streaming list (a watch with sendInitialEvents,
// client-go's WatchList) rather than one whole LIST, which holds every
// object of a kind in memory at once and is the watcher's peak at startup.
// The apiserver serves streaming lists only over an etcd with
// RequestWatchProgress (3.5+; testenv runs tools/etcd's 3.6): over Debian's
// etcd 3.4 it refuses them, client-go falls back to LIST, and
// apiserver_watch_list_duration_seconds counts nothing.
func TestIntegrationWatcherStreamsInitialLists(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver")
	c := testenv.StartClusters(t, 1)[0]
	cs := c.Client()
	ctx := t.Context()
	if _, err := testenv.CreateNamespace(ctx, cs, "app", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, cs, testenv.Pod{Namespace: "app", Name: "web-1", Node: "node-a", IP: "10.0.0.1", Ready: true}); err != nil {
		t.Fatal(err)
	}

	w, err := New(Config{Cluster: testCluster, Client: cs, Store: model.NewStore(model.Config{}), Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Synced():
	case <-time.After(time.Minute):
		t.Fatal("watcher did not sync within a minute")
	}

	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("read the apiserver's /metrics: %v", err)
	}
	streamed := watchListCounts(raw)
	for _, resource := range []string{"namespaces", "nodes", "services", "endpointslices", "pods"} {
		if streamed[resource] == 0 {
			t.Errorf("apiserver_watch_list_duration_seconds_count{resource=%q} = 0: the %s informer did not use a streaming list (is etcd older than 3.5? see tools/etcd/build.sh); counts: %v",
				resource, resource, streamed)
		}
	}
}

// watchListCounts sums apiserver_watch_list_duration_seconds_count by
// resource from a Prometheus text exposition.
func watchListCounts(metrics []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	const name = "apiserver_watch_list_duration_seconds_count{"
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		_, after, ok := strings.Cut(labels, `resource="`)
		if !ok {
			continue
		}
		resource, _, _ := strings.Cut(after, `"`)
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err == nil {
			out[resource] += v
		}
	}
	return out
}
