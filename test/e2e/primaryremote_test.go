package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// Names of primary-remote (Istio's): the control plane's Service in the
// primary, the cluster the primary's gateway passes 15012 to, and the
// Service through which a remote cluster's proxies reach the primary.
const (
	istiodService        = "istiod"
	istiodRemoteService  = "istiod-remote"
	controlPlanePort     = 15012
	controlPlaneListener = "0.0.0.0_15012"
	controlPlaneCluster  = "outbound_.15012_._.istiod.istio-system.svc.cluster.local"
	helloworldGWCluster  = "outbound_.5000_._.helloworld.sample.svc.cluster.local"
)

// TestPrimaryRemote is the home lab's primary-remote model on the home setup
// of doc.go: cluster1 (network1) runs the only control plane and watches
// cluster2 (network2) through its remote secret; cluster2 runs none. Its
// proxies, its gateway and its workloads' certificates all come from the
// primary's control plane through gateway1's control-plane listener
// (172.18.0.10:15012, the address of cluster2's istiod-remote), the only
// address of network1 that network2 can reach besides gateway1's 15443.
// The steps are those of the install walkthrough, in its order.
func TestPrimaryRemote(t *testing.T) {
	h := newHome(t, primaryRemote)
	s1, s2 := h.sites[0], h.sites[1]

	// cluster1's Service istiod as `manifest generate --profile primary`
	// writes it; its EndpointSlice, as the controller would write it for
	// the control plane's pod, is the address the test relays to serve.
	primary := causewayCLI(t, h.bin, "manifest", "generate", "--profile", "primary",
		"--cluster-id", s1.cluster.ID, "--network", s1.network, "--mesh-id", "mesh1", "--only", "Service")
	applyManifest(t, s1.cluster, primary)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := testenv.CreateEndpointSlice(ctx, s1.cluster.Client(), systemNamespace, istiodService, istiodService+"-1",
		[]testenv.EndpointPort{{Name: "grpc-xds", Port: 15010}, {Name: "https-dns", Port: controlPlanePort}},
		[]testenv.Endpoint{{IP: s1.cpAddr.String(), Ready: true, Node: s1.node()}}); err != nil {
		t.Fatal(err)
	}

	// The primary's control plane, and its gateway exposing it.
	h.startControlPlanes(t)
	s1.exposeCP = hostPort(s1.gwAddr.Addr(), controlPlanePort)
	h.startGateway(t, s1)
	gw1 := s1.ns.httpClient()
	gw1Admin := "http://" + s1.gatewaySpec().Admin
	wantCPEndpoint := s1.tlsAddr()
	var gw1Config gatewayConfig
	if err := waitUntil(ctx, s1.gw, "gateway1's listener "+controlPlaneListener+" to the control plane", func(ctx context.Context) error {
		if err := getJSON(ctx, gw1, gw1Admin+"/config", &gw1Config); err != nil {
			return err
		}
		return gw1Config.controlPlaneTo(wantCPEndpoint)
	}); err != nil {
		t.Fatal(err)
	}

	// cluster2: the remote profile, pointed at gateway1's 15012. No
	// injection webhook: this test has no kubelet to run injected pods, and
	// its workloads are the test's own processes (the webhook's URL through
	// the gateway is TestGatewayPassesWebhookThrough's).
	remote := causewayCLI(t, h.bin, "manifest", "generate", "--profile", "remote", "--no-webhook",
		"--cluster-id", s2.cluster.ID, "--network", s2.network, "--mesh-id", "mesh1", "--remote-pilot-address", s1.exposeCP)
	t.Logf("the remote profile:\n%s", remote)
	checkRemoteProfile(t, remote, s1.exposeCP, s2.network)
	applyManifest(t, s2.cluster, remote)

	// The remote secret: the primary now watches cluster2, publishes the
	// mesh root there and accepts its tokens.
	applyRemoteSecret(t, h.bin, s2.cluster, s2.kubecfg, s1.cluster)
	for _, s := range h.sites {
		root, err := waitRootConfigMap(ctx, s.cluster.Client(), sampleNamespace, h.rootPEM, s.dir)
		if err != nil {
			t.Fatalf("cluster %s (published by serve %s): %v", s.cluster.ID, s1.cluster.ID, err)
		}
		s.rootFile = root
	}

	// Every proxy of cluster2 dials what istiod-remote resolves to (a
	// headless Service: its Endpoints), verifying the control plane's
	// certificate for istiod-remote.istio-system.svc.
	remoteCP := istiodRemoteAddress(t, s2.cluster)
	s2.sidecarXDS = xdsServer{Addr: remoteCP, RootCertFile: s2.rootFile, ServerName: remoteCAServerName}
	// The gateway authenticates with its service account's token, as the
	// eastwest-gateway profile's pod does (it projects one and passes
	// --xds-token).
	gwSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: systemNamespace, Name: install.GatewayServiceAccount}}
	if _, err := s2.cluster.Client().CoreV1().ServiceAccounts(systemNamespace).Create(ctx, gwSA, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gwToken, err := writeToken(ctx, s2.cluster.Client(), s2.dir, systemNamespace, install.GatewayServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	s2.gwXDS = s2.sidecarXDS
	s2.gwXDS.TokenFile, s2.gwXDS.ClusterID = gwToken, s2.cluster.ID
	s2.caAddr, s2.caName = remoteCP, remoteCAServerName
	h.startGateway(t, s2)

	for _, s := range h.sites {
		startHelloworld(t, h.ps, s.ns, s.helloworldConfig(t))
	}

	t.Run("the primary's gateway passes 15012 to the control plane", func(t *testing.T) {
		cp := gw1Config.ControlPlane
		if cp == nil {
			t.Fatal("gateway1's /config has no control_plane")
		}
		if got, want := cp.Listen, s1.exposeCP; got != want {
			t.Errorf("gateway1's control-plane listener listens on %s, want %s", got, want)
		}
		got := []string{}
		for _, r := range cp.Routes {
			got = append(got, fmt.Sprintf("%v->%s", r.ServerNames, r.Cluster))
		}
		// Any server name: the control plane's certificate decides.
		if want := []string{"[]->" + controlPlaneCluster}; !slices.Equal(got, want) {
			t.Errorf("gateway1's %s routes %v, want %v", controlPlaneListener, got, want)
		}
	})

	t.Run("the remote's gateway is configured through the primary's gateway", func(t *testing.T) {
		gw2 := s2.ns.httpClient()
		gw2Admin := "http://" + s2.gatewaySpec().Admin
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		var cfg gatewayConfig
		err := waitUntil(ctx, s2.gw, "gateway2's "+helloworldGWCluster, func(ctx context.Context) error {
			if err := getJSON(ctx, gw2, gw2Admin+"/config", &cfg); err != nil {
				return err
			}
			if got := cfg.endpoints(helloworldGWCluster); !slices.Equal(got, []string{s2.helloAddr()}) {
				return fmt.Errorf("endpoints %v, want [%s]", got, s2.helloAddr())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.XDS.Server != remoteCP || !cfg.XDS.Connected {
			t.Errorf("gateway2's ADS %+v, want connected to %s", cfg.XDS, remoteCP)
		}
		// The primary knows it as cluster2's, network2's gateway.
		var proxies []proxyStatus
		if err := getJSON(ctx, http.DefaultClient, "http://"+s1.cp.debug+"/debug/proxies", &proxies); err != nil {
			t.Fatal(err)
		}
		wantID := "router~" + s2.gateway.PodIP + "~"
		i := slices.IndexFunc(proxies, func(p proxyStatus) bool { return strings.HasPrefix(p.ID, wantID) })
		if i < 0 {
			t.Fatalf("serve %s's /debug/proxies lists no %s...: %+v", s1.cluster.ID, wantID, proxies)
		}
		if p := proxies[i]; p.Network != s2.network || p.Cluster != s2.cluster.ID {
			t.Errorf("serve %s knows gateway2 as network %q cluster %q, want %s and %s", s1.cluster.ID, p.Network, p.Cluster, s2.network, s2.cluster.ID)
		}
	})

	t.Run("isolation: network2 reaches network1 only through gateway1", func(t *testing.T) {
		for _, c := range []struct {
			from      *site
			addr      string
			reachable bool
		}{
			{s2, remoteCP, true},
			{s2, s1.gwAddr.String(), true},
			{s2, s1.tlsAddr(), false},
			{s2, s1.helloAddr(), false},
			{s1, s2.helloAddr(), false},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			conn, err := c.from.ns.dial(ctx, c.addr)
			cancel()
			if err == nil {
				_ = conn.Close()
			}
			switch {
			case c.reachable && err != nil:
				t.Errorf("from %s, dial %s: %v; want it to connect", c.from.network, c.addr, err)
			case !c.reachable && err == nil:
				t.Errorf("from %s, dial %s connected; want it to fail: only gateway addresses are routed", c.from.network, c.addr)
			case !c.reachable:
				t.Logf("from %s, dial %s: %v (as wanted)", c.from.network, c.addr, err)
			}
		}
	})

	// The TLS dials to gateway1's 15012 this test makes itself, counted
	// with the rest below.
	tlsDials := 0
	t.Run("through gateway1, the control plane's certificate covers istiod-remote and no other name", func(t *testing.T) {
		tlsDials += 2
		if err := dialControlPlane(t.Context(), s2.ns, remoteCP, remoteCAServerName, h.rootPEM); err != nil {
			t.Errorf("TLS to %s as %s: %v; want the certificate verified", remoteCP, remoteCAServerName, err)
		}
		const other = "istiod.elsewhere.svc"
		err := dialControlPlane(t.Context(), s2.ns, remoteCP, other, h.rootPEM)
		var hostErr x509.HostnameError
		switch {
		case err == nil:
			t.Errorf("TLS to %s as %s verified; want the name refused", remoteCP, other)
		case !errors.As(err, &hostErr):
			t.Errorf("TLS to %s as %s: %v; want x509's name mismatch", remoteCP, other, err)
		case !strings.Contains(err.Error(), remoteCAServerName):
			t.Errorf("TLS to %s as %s: %v; want the names the certificate covers, %s among them", remoteCP, other, err, remoteCAServerName)
		default:
			t.Logf("TLS to %s as %s: %v (as wanted)", remoteCP, other, err)
		}
	})

	sleepID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, sampleNamespace, sleepSA)
	helloID := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, sampleNamespace, helloworldSA)
	// What each network's sleep must be told: its own pod directly, the
	// other's through the other's gateway.
	wantView := map[*site][]string{
		s1: slices.Sorted(slices.Values([]string{s1.helloAddr(), s2.gwAddr.String()})),
		s2: slices.Sorted(slices.Values([]string{s2.helloAddr(), s1.gwAddr.String()})),
	}
	t.Run("from each network both v1 and v2 answer, identities intact", func(t *testing.T) {
		for _, s := range h.sites {
			sum := runSleepRole(t, h.ps, "sleep-"+s.network, s.ns, s.sleepConfig(t))
			if got := addresses(sum.Upstream.Endpoints); !slices.Equal(got, wantView[s]) {
				t.Errorf("%s's sleep (ADS %s) was told %v, want %v", s.network, s.sidecarXDS, got, wantView[s])
			}
			checkAllAnswered(t, s.network, sum, map[string]int{"v1": sleepRequests / 2, "v2": sleepRequests / 2}, sleepID, helloID)
		}
	})

	t.Run("gateway1's control-plane listener carried network2's connections", func(t *testing.T) {
		// At least: gateway2's ADS, helloworld-v2's CA call, network2's
		// sleep's CA call and ADS, and this test's own dials.
		atLeast := uint64(4 + tlsDials)
		if err := getJSON(t.Context(), gw1, gw1Admin+"/config", &gw1Config); err != nil {
			t.Fatal(err)
		}
		if got := gw1Config.connections(controlPlaneCluster); got < atLeast {
			t.Errorf("gateway1's /config: %s carried %d connections, want at least %d", controlPlaneCluster, got, atLeast)
		}
		metrics, err := testkit.HTTPGet(t.Context(), gw1, gw1Admin+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		series := `causeway_gateway_cluster_connections_total{cluster="` + controlPlaneCluster + `"}`
		got, ok := metricValue(metrics, series)
		switch {
		case !ok:
			t.Errorf("gateway1's /metrics has no %s", series)
		case got < float64(atLeast):
			t.Errorf("gateway1's /metrics: %s %v, want at least %d", series, got, atLeast)
		default:
			t.Logf("gateway1's /metrics: %s %v", series, got)
		}
	})
}

// applyManifest applies a YAML stream to cluster c with server-side apply,
// as `kubectl apply --server-side -f -` would.
func applyManifest(t *testing.T, c *testenv.Cluster, manifest []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	applied, err := install.Apply(ctx, c.RESTConfig(), manifest, install.ApplyOptions{})
	if err != nil {
		t.Fatalf("apply to %s: %v", c.ID, err)
	}
	t.Logf("applied to %s: %s", c.ID, strings.Join(applied, ", "))
}

// manifestObject is the part of a generated object the test reads: its
// identity, a Service's spec and an Endpoints' subsets.
type manifestObject struct {
	Kind     string            `json:"kind"`
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		ClusterIP string `json:"clusterIP"`
		Ports     []struct {
			Name string `json:"name"`
			Port int    `json:"port"`
		} `json:"ports"`
	} `json:"spec"`
	Subsets []endpointSubset `json:"subsets"`
}

// endpointSubset is a subset of a v1 Endpoints object.
type endpointSubset struct {
	Addresses []struct {
		IP string `json:"ip"`
	} `json:"addresses"`
	Ports []struct {
		Name string `json:"name"`
		Port int    `json:"port"`
	} `json:"ports"`
}

// subsetAddresses lists ADDRESS:PORT of every address and port of the
// subsets, sorted.
func subsetAddresses(subsets []endpointSubset) []string {
	var out []string
	for _, ss := range subsets {
		for _, a := range ss.Addresses {
			for _, p := range ss.Ports {
				out = append(out, net.JoinHostPort(a.IP, strconv.Itoa(p.Port)))
			}
		}
	}
	slices.Sort(out)
	return out
}

// parseManifest splits a YAML stream into its objects, by "Kind name".
func parseManifest(manifest []byte) (map[string]manifestObject, error) {
	out := map[string]manifestObject{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the manifest: %w", err)
		}
		var obj manifestObject
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("an object of the manifest: %w\n%s", err, doc)
		}
		if obj.Kind != "" {
			out[obj.Kind+" "+obj.Metadata.Name] = obj
		}
	}
}

// checkRemoteProfile wants the remote profile's istiod-remote: a headless
// Service on 15012 in the system namespace, and its Endpoints holding
// exactly the primary's gateway address pilot (ADDRESS:15012), and the
// system namespace labeled with network.
func checkRemoteProfile(t *testing.T, manifest []byte, pilot, network string) {
	t.Helper()
	objs, err := parseManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := objs["Service "+istiodRemoteService]
	if !ok {
		t.Fatalf("the remote profile has no Service %s; objects %v", istiodRemoteService, slices.Sorted(maps.Keys(objs)))
	}
	if svc.Metadata.Namespace != systemNamespace || svc.Spec.ClusterIP != "None" ||
		len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != controlPlanePort {
		t.Errorf("Service %s: namespace %q clusterIP %q ports %+v, want headless in %s with port %d",
			istiodRemoteService, svc.Metadata.Namespace, svc.Spec.ClusterIP, svc.Spec.Ports, systemNamespace, controlPlanePort)
	}
	ep, ok := objs["Endpoints "+istiodRemoteService]
	if !ok {
		t.Fatalf("the remote profile has no Endpoints %s", istiodRemoteService)
	}
	if got, want := subsetAddresses(ep.Subsets), []string{pilot}; ep.Metadata.Namespace != systemNamespace || !slices.Equal(got, want) {
		t.Errorf("Endpoints %s/%s: %v, want %s/%s: %v (the primary's gateway)", ep.Metadata.Namespace, istiodRemoteService, got, systemNamespace, istiodRemoteService, want)
	}
	if ns, ok := objs["Namespace "+systemNamespace]; !ok || ns.Metadata.Labels[labelNetwork] != network {
		t.Errorf("the remote profile's Namespace %s: labels %v, want %s=%s", systemNamespace, ns.Metadata.Labels, labelNetwork, network)
	}
}

// istiodRemoteAddress reads back, from cluster c's API server, the address
// its istiod-remote resolves to (a headless Service: its Endpoints), as a
// remote proxy's DNS lookup would give it.
func istiodRemoteAddress(t *testing.T, c *testenv.Cluster) string {
	t.Helper()
	raw, err := c.Client().CoreV1().RESTClient().Get().
		Namespace(systemNamespace).Resource("endpoints").Name(istiodRemoteService).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("Endpoints %s/%s of %s: %v", systemNamespace, istiodRemoteService, c.ID, err)
	}
	var obj manifestObject
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("Endpoints %s/%s of %s: %v", systemNamespace, istiodRemoteService, c.ID, err)
	}
	addrs := subsetAddresses(obj.Subsets)
	if len(addrs) != 1 {
		t.Fatalf("Endpoints %s/%s of %s list %v, want one address", systemNamespace, istiodRemoteService, c.ID, addrs)
	}
	return addrs[0]
}

// dialControlPlane opens a TLS connection from inside n to addr, verifying
// the server's certificate against rootPEM for serverName (also the SNI).
func dialControlPlane(ctx context.Context, n *netns, addr, serverName string, rootPEM []byte) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return errors.New("the mesh root holds no PEM certificate")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := n.dial(ctx, addr)
	if err != nil {
		return err
	}
	tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: roots})
	defer func() { _ = tc.Close() }()
	return tc.HandshakeContext(ctx)
}

// gatewayConfig is the part of a gateway's /config the test reads.
type gatewayConfig struct {
	XDS struct {
		Server    string `json:"server"`
		Connected bool   `json:"connected"`
		LastError string `json:"last_error"`
	} `json:"xds"`
	ControlPlane *struct {
		Listen        string `json:"listen"`
		Listener      string `json:"listener"`
		ListenerFound bool   `json:"listener_found"`
		Routes        []struct {
			ServerNames []string `json:"server_names"`
			Cluster     string   `json:"cluster"`
		} `json:"routes"`
	} `json:"control_plane"`
	Clusters []struct {
		Name      string `json:"name"`
		Endpoints []struct {
			Address string `json:"address"`
		} `json:"endpoints"`
		Connections uint64 `json:"connections"`
	} `json:"clusters"`
}

// endpoints lists the endpoint addresses of cluster name, sorted.
func (c *gatewayConfig) endpoints(name string) []string {
	out := []string{}
	for _, cl := range c.Clusters {
		if cl.Name == name {
			for _, e := range cl.Endpoints {
				out = append(out, e.Address)
			}
		}
	}
	slices.Sort(out)
	return out
}

// connections is how many connections cluster name carried.
func (c *gatewayConfig) connections(name string) uint64 {
	for _, cl := range c.Clusters {
		if cl.Name == name {
			return cl.Connections
		}
	}
	return 0
}

// controlPlaneTo says why the gateway's control-plane listener does not
// yet pass to endpoint, or nil when it does.
func (c *gatewayConfig) controlPlaneTo(endpoint string) error {
	cp := c.ControlPlane
	switch {
	case cp == nil:
		return errors.New("no control_plane in /config (--expose-control-plane not taken)")
	case cp.Listener != controlPlaneListener || !cp.ListenerFound:
		return fmt.Errorf("listener %q found %v, want %s in LDS (is there a Service istiod with port 15012?)", cp.Listener, cp.ListenerFound, controlPlaneListener)
	}
	if got := c.endpoints(controlPlaneCluster); !slices.Equal(got, []string{endpoint}) {
		return fmt.Errorf("%s has endpoints %v, want [%s]", controlPlaneCluster, got, endpoint)
	}
	return nil
}

// proxyStatus is the part of an entry of /debug/proxies the test reads.
type proxyStatus struct {
	ID      string `json:"id"`
	Network string `json:"network"`
	Cluster string `json:"cluster"`
}

// getJSON GETs url with client and decodes the JSON of a 200 into v.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	body, err := testkit.HTTPGet(ctx, client, url)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// metricValue finds the sample of series (name{labels}) in a Prometheus
// text exposition.
func metricValue(exposition []byte, series string) (float64, bool) {
	for line := range strings.Lines(string(exposition)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
