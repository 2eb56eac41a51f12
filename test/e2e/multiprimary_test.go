package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	securityv1beta1 "istio.io/api/security/v1beta1"
)

// sleepRequests is how many calls each sleep run makes: with equal weights
// the round robin alternates, so each side gets half.
const sleepRequests = 8

// TestMultiPrimaryMultiNetwork is the home lab's "网关如何通讯/验证" on the
// home setup of doc.go, in the order a user installs it: certificates,
// control planes, east-west gateways, remote secrets, workloads, then the
// checks of issue #7 and the multi-primary check of issue #8.
func TestMultiPrimaryMultiNetwork(t *testing.T) {
	h := newHome(t, multiPrimary)
	s1, s2 := h.sites[0], h.sites[1]

	h.startControlPlanes(t)
	for _, s := range h.sites {
		h.startGateway(t, s)
	}
	// Each control plane watches the other cluster through its remote
	// secret (applied while they run: they pick it up live).
	applyRemoteSecret(t, h.bin, s2.cluster, s2.kubecfg, s1.cluster)
	applyRemoteSecret(t, h.bin, s1.cluster, s1.kubecfg, s2.cluster)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, s := range h.sites {
		root, err := waitRootConfigMap(ctx, s.cluster.Client(), sampleNamespace, h.rootPEM, s.dir)
		if err != nil {
			t.Fatalf("cluster %s: %v", s.cluster.ID, err)
		}
		s.rootFile = root
	}
	hellos := map[*site]*proc{}
	for _, s := range h.sites {
		hellos[s] = startHelloworld(t, h.ps, s.ns, s.helloworldConfig(t))
	}

	// What each network must see: its own pod directly, the other's
	// through the other's gateway (cluster2's only as NodePort 31443 on
	// the node that runs its gateway pod), both with Istio's mTLS.
	sni := "outbound_.5000_._.helloworld.sample.svc.cluster.local"
	wantView := map[string][]string{
		s1.network: slices.Sorted(slices.Values([]string{s1.helloAddr(), s2.gwAddr.String()})),
		s2.network: slices.Sorted(slices.Values([]string{s2.helloAddr(), s1.gwAddr.String()})),
	}
	t.Run("multi-primary: both control planes give a proxy the same EDS", func(t *testing.T) {
		for _, s := range h.sites {
			node := s.sleepNode().proto()
			want := wantView[s.network]
			got := map[string]*upstream{}
			for _, cp := range h.sites {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				up, err := fetchUpstream(ctx, xdsServer{Addr: cp.cp.xds}, node, helloworldCluster, func(eps []endpoint) bool {
					return slices.Equal(addresses(eps), want)
				})
				cancel()
				if err != nil {
					t.Fatalf("%s's view from serve %s never listed %v: %v", s.network, cp.cluster.ID, want, err)
				}
				got[cp.cluster.ID] = up
				for _, ep := range up.Endpoints {
					if ep.TLS == nil || ep.TLS.SNI != sni || !slices.Contains(ep.TLS.ALPN, "istio") {
						t.Errorf("%s's view from serve %s: endpoint %s: transport %+v, want Istio mTLS with SNI %s and ALPN istio", s.network, cp.cluster.ID, ep.Address, ep.TLS, sni)
					}
				}
			}
			a, b := got[s1.cluster.ID], got[s2.cluster.ID]
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("%s's EDS differs between serve %s and serve %s (-%s +%s):\n%s", s.network, s1.cluster.ID, s2.cluster.ID, s1.cluster.ID, s2.cluster.ID, diff)
			}
			t.Logf("%s's view (both control planes): %v", s.network, canonical(a))
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("isolation: a pod address of the other network is unreachable", func(t *testing.T) {
		for _, c := range []struct {
			from      *site
			to        *site
			reachable bool
		}{
			{s1, s1, true}, {s1, s2, false}, {s2, s2, true}, {s2, s1, false},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			conn, err := c.from.ns.dial(ctx, c.to.helloAddr())
			cancel()
			if err == nil {
				_ = conn.Close()
			}
			switch {
			case c.reachable && err != nil:
				t.Errorf("from %s, dial %s (same network): %v; want it to connect", c.from.network, c.to.helloAddr(), err)
			case !c.reachable && err == nil:
				t.Errorf("from %s, dial %s (the other network's pod) connected; want it to fail: only gateway addresses are routed", c.from.network, c.to.helloAddr())
			case !c.reachable:
				t.Logf("from %s, dial %s: %v (as wanted)", c.from.network, c.to.helloAddr(), err)
			}
		}
	})

	sleep := func(t *testing.T, s *site, name string) sleepSummary {
		t.Helper()
		return runSleepRole(t, h.ps, name, s.ns, s.sleepConfig(t))
	}
	sleepID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, sampleNamespace, sleepSA)
	helloID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, sampleNamespace, helloworldSA)

	t.Run("from each network both v1 and v2 answer, identities intact", func(t *testing.T) {
		for _, s := range h.sites {
			sum := sleep(t, s, "sleep-"+s.network)
			checkAllAnswered(t, s.network, sum, map[string]int{"v1": sleepRequests / 2, "v2": sleepRequests / 2}, sleepID, helloID)
		}
	})

	t.Run("PERMISSIVE (no PeerAuthentication): helloworld's inbound accepts a plaintext client", func(t *testing.T) {
		for _, s := range h.sites {
			version, peer, err := plaintextHello(t.Context(), s.ns.dial, s.helloAddr())
			if err != nil {
				t.Errorf("%s: plaintext GET /hello to %s: %v; want it answered (PERMISSIVE keeps a plaintext chain on port %d)", s.network, s.helloAddr(), err, helloworldPort)
				continue
			}
			if want := fmt.Sprintf("v%d", s.n); version != want || peer != noPeer {
				t.Errorf("%s: plaintext GET /hello answered by %s with peer %s, want %s with peer %s", s.network, version, peer, want, noPeer)
			}
		}
	})

	t.Run("STRICT (mesh-wide PeerAuthentication in each cluster): plaintext refused, mTLS still answered, PERMISSIVE again accepts plaintext", func(t *testing.T) {
		// refused is a plaintext GET /hello that connects but is closed
		// unanswered: helloworld's inbound has no chain for it.
		// The last attempt may be cut by the deadline: report the one before.
		refused := func(s *site) func(context.Context) error {
			var prev error
			return func(ctx context.Context) error {
				v, peer, err := plaintextHello(ctx, s.ns.dial, s.helloAddr())
				switch {
				case ctx.Err() != nil && prev != nil:
					return prev
				case err == nil:
					prev = fmt.Errorf("plaintext GET /hello still answered by %s (peer %s)", v, peer)
				case strings.HasPrefix(err.Error(), "read") || strings.HasPrefix(err.Error(), "write"):
					return nil
				default:
					prev = fmt.Errorf("plaintext GET /hello failed before the inbound could refuse it: %w", err)
				}
				return prev
			}
		}
		accepted := func(s *site) func(context.Context) error {
			return func(ctx context.Context) error {
				_, _, err := plaintextHello(ctx, s.ns.dial, s.helloAddr())
				return err
			}
		}
		for _, s := range h.sites {
			if err := applyPeerAuthentication(t.Context(), s.cluster, systemNamespace, "default", securityv1beta1.PeerAuthentication_MutualTLS_STRICT); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range h.sites {
			ctx, cancel := context.WithTimeout(t.Context(), peerAuthTimeout)
			err := waitUntil(ctx, hellos[s], s.network+": helloworld refuses plaintext under STRICT", refused(s))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: STRICT reached helloworld's inbound: a plaintext client is refused", s.network)
		}
		for _, s := range h.sites {
			sum := sleep(t, s, "sleep-"+s.network+"-strict")
			checkAllAnswered(t, s.network+" under STRICT", sum, map[string]int{"v1": sleepRequests / 2, "v2": sleepRequests / 2}, sleepID, helloID)
		}
		for _, s := range h.sites {
			if err := applyPeerAuthentication(t.Context(), s.cluster, systemNamespace, "default", securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range h.sites {
			ctx, cancel := context.WithTimeout(t.Context(), peerAuthTimeout)
			err := waitUntil(ctx, hellos[s], s.network+": helloworld accepts plaintext again under PERMISSIVE", accepted(s))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("killing gateway2 cuts network1 from v2 only, restarting it restores v2", func(t *testing.T) {
		pid := s2.gw.pid()
		s2.gw.kill()
		t.Logf("gateway2 (pid %d) killed with SIGKILL", pid)

		sum := sleep(t, s1, "sleep-network1-gateway2-down")
		t.Logf("network1 with gateway2 down: %v answered, errors by endpoint %v\n%s", sum.Versions, sum.Errors, results(sum))
		if got, want := sum.Versions, map[string]int{"v1": sleepRequests / 2}; !maps.Equal(got, want) {
			t.Errorf("network1 with gateway2 down: versions %v, want %v (v1 keeps answering, v2 does not)", got, want)
		}
		if got, want := sum.Errors, map[string]int{s2.gwAddr.String(): sleepRequests / 2}; !maps.Equal(got, want) {
			t.Errorf("network1 with gateway2 down: errors by endpoint %v, want %v (every call through gateway2 fails)\n%s", got, want, results(sum))
		}
		local := sleep(t, s2, "sleep-network2-gateway2-down")
		if got := local.Versions["v2"]; got != sleepRequests/2 {
			t.Errorf("network2 with its own gateway down: v2 answered %d times, want %d (local calls do not use the gateway)\n%s", got, sleepRequests/2, results(local))
		}

		h.startGateway(t, s2)
		t.Logf("gateway2 restarted (pid %d)", s2.gw.pid())
		sum = sleep(t, s1, "sleep-network1-gateway2-back")
		checkAllAnswered(t, "network1 after gateway2's restart", sum, map[string]int{"v1": sleepRequests / 2, "v2": sleepRequests / 2}, sleepID, helloID)
	})
}

// checkAllAnswered wants every call answered, with the versions counted as
// want, every server seeing the client's SPIFFE id and every client seeing
// the server's.
func checkAllAnswered(t *testing.T, what string, sum sleepSummary, want map[string]int, client, server string) {
	t.Helper()
	checkCapturedPath(t, what, sum)
	if sum.Self != client {
		t.Errorf("%s: the client's certificate names %s, want %s", what, sum.Self, client)
	}
	if len(sum.Errors) > 0 {
		t.Errorf("%s: failed calls by endpoint %v\n%s", what, sum.Errors, results(sum))
	}
	if !maps.Equal(sum.Versions, want) {
		t.Errorf("%s: versions %v, want %v\n%s", what, sum.Versions, want, results(sum))
	}
	if got, wantPeers := sum.Peers, map[string]int{client: sum.total()}; !maps.Equal(got, wantPeers) {
		t.Errorf("%s: the servers saw peers %v, want %v (the client's identity through every hop)", what, got, wantPeers)
	}
	for _, r := range sum.Results {
		if r.Error == "" && r.Server != server {
			t.Errorf("%s: call to %s answered by %q, want the server identity %s", what, r.Endpoint, r.Server, server)
		}
	}
	t.Logf("%s: %v answered %d calls; peers %v\n%s", what, sum.Versions, len(sum.Results), sum.Peers, results(sum))
}

// checkCapturedPath wants the sleep's request taken as a captured Envoy
// takes it: from the virtual outbound listener to the HTTP port's
// non-binding 0.0.0.0_5000, its plaintext HTTP chain, RDS 5000, the
// helloworld virtual host and outbound|5000||helloworld.
func checkCapturedPath(t *testing.T, what string, sum sleepSummary) {
	t.Helper()
	p := sum.Path
	if p == nil {
		t.Errorf("%s: the sleep reported no resolution path", what)
		return
	}
	port := fmt.Sprint(helloworldPort)
	if p.BindsPort {
		t.Errorf("%s: listener %s binds its port; a captured sidecar's per-port listener must not (bind_to_port false), or it takes the application's port", what, p.Listener)
	}
	if p.Listener != "0.0.0.0_"+port || p.RouteConfig != port || p.Cluster != helloworldCluster || p.EDS != helloworldCluster || p.VirtualHost == "" {
		t.Errorf("%s: the request went listener %q chain %q route configuration %q virtual host %q cluster %q (EDS %q); want 0.0.0.0_%s, RDS %s, a virtual host, %s",
			what, p.Listener, p.Chain, p.RouteConfig, p.VirtualHost, p.Cluster, p.EDS, port, port, helloworldCluster)
	}
	sni := fmt.Sprintf("outbound_.%d_._.helloworld.%s.svc.cluster.local", helloworldPort, sampleNamespace)
	helloID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, sampleNamespace, helloworldSA)
	for _, ep := range p.Endpoints {
		if ep.TLS == nil || ep.TLS.SNI != sni || !slices.Contains(ep.TLS.SANs, helloID) {
			t.Errorf("%s: endpoint %s of %s: transport %+v, want tlsMode-istio mTLS with SNI %s and SAN %s", what, ep.Address, p.Cluster, ep.TLS, sni, helloID)
		}
	}
	t.Logf("%s: the sidecar took the request through listener %s, chain %q, RDS %s, virtual host %s, cluster %s", what, p.Listener, p.Chain, p.RouteConfig, p.VirtualHost, p.Cluster)
}

// total is how many calls were answered.
func (s sleepSummary) total() int {
	n := 0
	for _, c := range s.Versions {
		n += c
	}
	return n
}

// results lists the calls of a summary, one a line.
func results(sum sleepSummary) string {
	var b strings.Builder
	for i, r := range sum.Results {
		if r.Error != "" {
			fmt.Fprintf(&b, "  #%d %s: error %s\n", i, r.Endpoint, r.Error)
			continue
		}
		fmt.Fprintf(&b, "  #%d %s: %s (%s), peer %s, server %s\n", i, r.Endpoint, r.Version, r.Instance, r.Peer, r.Server)
	}
	return b.String()
}

// addresses lists the endpoints' addresses, sorted.
func addresses(eps []endpoint) []string {
	out := make([]string, 0, len(eps))
	for _, ep := range eps {
		out = append(out, ep.Address)
	}
	slices.Sort(out)
	return out
}
