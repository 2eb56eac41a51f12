package parity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xp "github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

const (
	// tablePath is the table of deliberate differences, from this folder.
	tablePath = "../../docs/parity.md"
	// fetchWait is how long Causeway gets to answer each xDS type; a type
	// not answered in time is a difference (unanswered/...). istiod, the
	// oracle, always answers: it gets oracleWait, so that a loaded machine
	// cannot turn its slowness into a difference.
	fetchWait  = 5 * time.Second
	oracleWait = 20 * time.Second
	// syncTimeout bounds the wait for a server to show both networks.
	syncTimeout = 60 * time.Second
	// reportEnv names a file the full report is also written to.
	reportEnv = "CAUSEWAY_PARITY_REPORT"
	// dumpEnv names a folder each proxy's facts from each server are
	// written to (PHASE_SERVER_PROXY.facts, one "path = value" a line).
	dumpEnv = "CAUSEWAY_PARITY_DUMP"
)

// meshAllowAny and meshRegistryOnly are the two mesh configs compared:
// Istio's default outbound policy, then REGISTRY_ONLY.
const (
	meshAllowAny     = "trustDomain: cluster.local\n"
	meshRegistryOnly = "trustDomain: cluster.local\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n"
)

// proxy is a node compared, named for the report.
type proxy struct {
	name string
	node xp.Node
}

// TestParityWithIstiod is issue 15's proof: for the proxies of doc.go,
// Causeway's answer equals istiod's on the facts Envoy acts on, except for
// the deliberate differences of docs/parity.md.
func TestParityWithIstiod(t *testing.T) {
	testreq.NotShort(t, "parity test: starts two kube-apiservers, istiod and causeway serve")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	w := startParityWorld(ctx, t, nil)
	bins, table, env, sites := w.bins, w.table, w.env, w.sites
	causewayBin, kubeconfig, meshFlag := w.causewayBin, w.kubeconfig, w.meshFlag
	primary := sites[0].cluster

	var proxies []proxy
	for _, s := range sites {
		ws := s.workloads()
		for i := range ws {
			if app := ws[i].app; app == "sleep" || app == "legacy" || app == "httpbin" {
				node := ws[i].sidecar(s, bins.Version)
				proxies = append(proxies, proxy{name: node.String(), node: node})
			}
		}
		gw := s.gatewayNode(bins.Version)
		proxies = append(proxies, proxy{name: gw.String(), node: gw})
	}
	sleep1 := sites[0].workloads()[1].sidecar(sites[0], bins.Version)
	synced := func(f xp.Facts) error {
		// network1's sleep sees helloworld v1 directly and v2 through
		// network2's gateway: both clusters are read.
		cl := "endpoints/outbound|5000||helloworld.sample.svc.cluster.local/"
		for _, ep := range []string{sites[0].podIP(10) + ":5000", sites[1].gatewayIP.String() + ":" + strconv.Itoa(gatewayPort)} {
			if _, ok := f[cl+ep]; !ok {
				return fmt.Errorf("no %s%s yet", cl, ep)
			}
		}
		return nil
	}

	var all []xp.Difference
	for _, phase := range []struct {
		name    string
		mesh    string
		proxies []proxy
	}{
		{name: "ALLOW_ANY", mesh: meshAllowAny, proxies: proxies},
		{name: "REGISTRY_ONLY", mesh: meshRegistryOnly, proxies: sleeps(proxies)},
	} {
		t.Logf("phase %s: starting istiod and causeway serve", phase.name)
		ist := startIstiod(t, env, bins, primary, phase.mesh)
		cw := startCauseway(t, env, causewayBin, primary.ID, kubeconfig, meshFlag, phase.mesh)
		for _, srv := range []server{ist, cw} {
			if err := waitSynced(t.Context(), srv, sleep1, synced); err != nil {
				t.Logf("phase %s: %s never showed both networks to %s (%v); comparing what it serves", phase.name, srv.name, sleep1, err)
			}
		}
		diffs := compareAll(t, phase.name, ist, cw, phase.proxies)
		for i := range diffs {
			diffs[i].Node = phase.name + " " + diffs[i].Node
		}
		all = append(all, diffs...)
		ist.stop()
		cw.stop()
	}

	unexplained, gaps, used := table.Explain(all)
	report := buildReport(all, unexplained, gaps, used, table)
	t.Log("\n" + report)
	if path := os.Getenv(reportEnv); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Errorf("write the report to %s: %v", path, err)
		}
	}
	if len(unexplained) > 0 {
		t.Errorf("%d difference(s) between istiod and causeway are not in the table of deliberate differences (%s), listed under NOT EXPLAINED in the report above; fix them, or add a row with its reason",
			len(unexplained), tablePath)
	}
	if len(gaps) > 0 {
		t.Logf("%d difference(s) are known gaps (%s, issue 15 stays open), listed under KNOWN GAPS in the report above", len(gaps), tablePath)
	}
	if stale := table.StaleGaps(used); len(stale) > 0 {
		t.Errorf("known gap(s) %s of %s match no difference any more: the gap is closed, delete its row", strings.Join(stale, ", "), tablePath)
	}
}

func sleeps(ps []proxy) []proxy {
	var out []proxy
	for i := range ps {
		if strings.HasPrefix(ps[i].node.Pod, "sleep-") {
			out = append(out, ps[i])
		}
	}
	return out
}

func loadTable(t *testing.T) *xp.Table {
	t.Helper()
	doc, err := os.ReadFile(tablePath)
	if err != nil {
		t.Fatalf("read the table of deliberate differences: %v", err)
	}
	table, err := xp.ParseTable(doc)
	if err != nil {
		t.Fatalf("%s: %v", tablePath, err)
	}
	return table
}

// buildReport is the full normalized diff, unexplained first, then the
// known gaps, then what each row of the table explained, then the rows
// nothing matched.
func buildReport(all, unexplained, gaps []xp.Difference, used map[string]int, table *xp.Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "parity with istiod: %d difference(s), %d not in %s, %d known gap(s)\n\n", len(all), len(unexplained), tablePath, len(gaps))
	if len(unexplained) > 0 {
		b.WriteString("##### NOT EXPLAINED\n")
		b.WriteString(xp.Format(unexplained))
		b.WriteString("\n")
	}
	if len(table.Gaps) > 0 {
		b.WriteString("##### KNOWN GAPS (row: count)\n")
		for _, r := range table.Gaps {
			fmt.Fprintf(&b, "  %s: %d  (%s)\n", r.ID, used[r.ID], r.Reason)
		}
		if stale := table.StaleGaps(used); len(stale) > 0 {
			fmt.Fprintf(&b, "known gaps that matched nothing (closed: delete them): %s\n", strings.Join(stale, ", "))
		}
		if len(gaps) > 0 {
			var tagged []xp.Difference
			for _, d := range gaps {
				r, _ := table.MatchGap(d)
				d.Path += "  [" + r.ID + "]"
				tagged = append(tagged, d)
			}
			b.WriteString("\n##### KNOWN GAPS, in full\n")
			b.WriteString(xp.Format(tagged))
		}
		b.WriteString("\n")
	}
	b.WriteString("##### EXPLAINED (row: count)\n")
	var stale []string
	for _, r := range table.Rows {
		if n := used[r.ID]; n > 0 {
			fmt.Fprintf(&b, "  %s: %d  (%s)\n", r.ID, n, r.Reason)
		} else {
			stale = append(stale, r.ID)
		}
	}
	if len(stale) > 0 {
		fmt.Fprintf(&b, "rows that matched nothing: %s\n", strings.Join(stale, ", "))
	}
	var explained []xp.Difference
	for _, d := range all {
		if r, ok := table.Match(d); ok {
			d.Path += "  [" + r.ID + "]"
			explained = append(explained, d)
		}
	}
	if len(explained) > 0 {
		b.WriteString("\n##### EXPLAINED, in full\n")
		b.WriteString(xp.Format(explained))
	}
	return b.String()
}

// server is a running xDS server under comparison.
type server struct {
	name string
	addr string
	stop func()
	// wait is how long it gets to answer each xDS type.
	wait time.Duration
}

func startIstiod(t *testing.T, env *testenv.Env, bins testenv.IstioBinaries, c *testenv.Cluster, mesh string) server {
	t.Helper()
	ist, err := env.StartIstiod(t.Context(), bins, testenv.IstiodOptions{Cluster: c, MeshConfig: mesh})
	if err != nil {
		t.Fatal(err)
	}
	return server{name: "istiod", addr: ist.GRPCAddr, stop: ist.Stop, wait: oracleWait}
}

// meshConfigFlag is --mesh-config when `causeway serve` takes the mesh
// config from a file, else empty (the comparison then shows what the
// mesh config would change).
func meshConfigFlag(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("causeway serve --help: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("--mesh-config ")) {
		return "--mesh-config"
	}
	t.Logf("causeway serve has no --mesh-config flag: it runs with its defaults in every phase")
	return ""
}

func startCauseway(t *testing.T, env *testenv.Env, bin, clusterID, kubeconfig, meshFlag, mesh string) server {
	t.Helper()
	var extra []string
	if meshFlag != "" {
		path := filepath.Join(t.TempDir(), "mesh.yaml")
		if err := os.WriteFile(path, []byte(mesh), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = []string{meshFlag, path}
	}
	var last error
	for range 3 {
		ports, err := testkit.FreePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		xdsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
		debugAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
		args := append([]string{"serve", "--drain-duration=0",
			"--cluster-id", clusterID,
			"--kubeconfig", kubeconfig,
			"--xds-addr", xdsAddr,
			"--xds-tls-addr", "",
			"--webhook-addr", "",
			"--debug-addr", debugAddr,
			"--cluster-sync-timeout", "20s",
		}, extra...)
		p, err := env.Run("causeway serve "+clusterID, bin, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		last = poll(ctx, func(ctx context.Context) error {
			if err := p.Exited(); err != nil {
				return backoffStop{err}
			}
			return httpOK(ctx, "http://"+debugAddr+"/ready")
		})
		cancel()
		if last == nil {
			return server{name: "causeway", addr: xdsAddr, stop: p.Stop, wait: fetchWait}
		}
		p.Stop()
		if !strings.Contains(last.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("causeway serve: %v", last)
	return server{}
}

// backoffStop ends a poll at once.
type backoffStop struct{ err error }

func (b backoffStop) Error() string { return b.err.Error() }
func (b backoffStop) Unwrap() error { return b.err }

// poll calls check every 100 ms until it returns nil, returns a
// backoffStop, or ctx ends; the last error says why.
func poll(ctx context.Context, check func(context.Context) error) error {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if stop, ok := errors.AsType[backoffStop](err); ok {
			return stop.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not before the deadline: %w", err)
		case <-ticker.C:
		}
	}
}

// httpOK GETs url within 2 s and wants 200.
func httpOK(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return testkit.HTTPOK(ctx, http.DefaultClient, url)
}

// waitSynced fetches node's answer from srv until cond accepts it.
func waitSynced(ctx context.Context, srv server, node xp.Node, cond func(xp.Facts) error) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	return poll(ctx, func(ctx context.Context) error {
		snap, err := xp.Fetch(ctx, srv.addr, node.Proto(), xp.FetchOptions{Wait: srv.wait})
		if err != nil {
			return err
		}
		return cond(xp.Normalize(snap))
	})
}

// stableFacts fetches node's answer until two fetches in a row agree (a
// push may land between them), at most five times.
func stableFacts(ctx context.Context, srv server, node xp.Node) (xp.Facts, error) {
	var prev xp.Facts
	for range 5 {
		snap, err := xp.Fetch(ctx, srv.addr, node.Proto(), xp.FetchOptions{Wait: srv.wait})
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", srv.name, node, err)
		}
		f := xp.Normalize(snap)
		if prev != nil && maps.Equal(prev, f) {
			return f, nil
		}
		prev = f
	}
	return prev, nil
}

// compareAll fetches every proxy's answer from both servers, in parallel,
// and returns the differences, sorted by proxy and path.
func compareAll(t *testing.T, phase string, ist, cw server, proxies []proxy) []xp.Difference {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	type result struct {
		istiod, causeway xp.Facts
		err              error
	}
	results := make([]result, len(proxies))
	var wg sync.WaitGroup
	for i := range proxies {
		p := &proxies[i]
		wg.Go(func() {
			r := &results[i]
			if r.istiod, r.err = stableFacts(ctx, ist, p.node); r.err != nil {
				return
			}
			r.causeway, r.err = stableFacts(ctx, cw, p.node)
		})
	}
	wg.Wait()
	var out []xp.Difference
	for i := range proxies {
		p, r := &proxies[i], &results[i]
		if r.err != nil {
			t.Fatalf("fetch %s: %v", p.name, r.err)
		}
		t.Logf("%s: istiod %d facts, causeway %d facts", p.name, len(r.istiod), len(r.causeway))
		if dir := os.Getenv(dumpEnv); dir != "" {
			dumpFacts(t, dir, phase+"_istiod_"+p.name, r.istiod)
			dumpFacts(t, dir, phase+"_causeway_"+p.name, r.causeway)
		}
		out = append(out, xp.Compare(p.name, r.istiod, r.causeway)...)
	}
	slices.SortStableFunc(out, func(a, b xp.Difference) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// dumpFacts writes facts into dir/NAME.facts, sorted, one a line.
func dumpFacts(t *testing.T, dir, name string, f xp.Facts) {
	t.Helper()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f)) {
		fmt.Fprintf(&b, "%s = %s\n", k, f[k])
	}
	name = strings.NewReplacer("/", "_", "@", "_", "(", "_", ")", "").Replace(name)
	if err := os.WriteFile(filepath.Join(dir, name+".facts"), []byte(b.String()), 0o644); err != nil {
		t.Errorf("dump facts: %v", err)
	}
}
