package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// site is one cluster on its own L3 network: the apiserver, the network
// namespace standing for the network, and the addresses the home lab's home
// setup gives its pods, nodes and gateway.
type site struct {
	// n is 1 or 2: network n, cluster n, addresses 10.n.0.0/24.
	n        int
	network  string
	cluster  *testenv.Cluster
	ns       *netns
	kubecfg  string
	dir      string
	gateway  eastWestGateway
	gwAddr   netip.AddrPort // where other networks reach the gateway
	transit  netip.Addr     // this end of the veth
	cp       *controlPlane
	cpAddr   netip.Addr // the relays to a control plane inside ns
	rootFile string     // the mesh root from the ConfigMap
	// How the site's sidecars reach the control plane: ADS, and the CA at
	// caAddr whose certificate must cover caName. Multi-primary: the
	// site's own relays; a remote site: the primary's gateway.
	sidecarXDS xdsServer
	caAddr     string
	caName     string
	// gwXDS is where the site's gateway takes its configuration;
	// exposeCP, when set, is the address of its control-plane listener.
	gwXDS    xdsServer
	exposeCP string
	helloIP  netip.Addr
	sleepIP  netip.Addr
	// helloVIP is the cluster IP of Service helloworld in this cluster.
	helloVIP netip.Addr
	workerIP netip.Addr // InternalIP of the cluster's node
	gw       *proc
}

// podAddr is an address of the site's pod range 10.n.0.0/24.
func podAddr(n int, host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n), 0, host})
}

func (s *site) node() string { return s.cluster.ID + "-worker" }

// xdsAddr and tlsAddr are the relays to the control plane's plaintext ADS
// and its secure port (xDS over TLS and the CA) inside the namespace.
func (s *site) xdsAddr() string { return hostPort(s.cpAddr, 15010) }
func (s *site) tlsAddr() string { return hostPort(s.cpAddr, 15012) }
func (s *site) helloAddr() string {
	return hostPort(s.helloIP, helloworldPort)
}

// identity is the workload identity of service account sa of the sample
// namespace in this site's cluster, with a fresh token.
func (s *site) identity(t *testing.T, sa string) workloadIdentity {
	t.Helper()
	token, err := writeToken(t.Context(), s.cluster.Client(), s.dir, sampleNamespace, sa)
	if err != nil {
		t.Fatal(err)
	}
	return workloadIdentity{
		CAAddr:         s.caAddr,
		CAServerName:   s.caName,
		RootCertFile:   s.rootFile,
		TokenFile:      token,
		ClusterID:      s.cluster.ID,
		TrustDomain:    trustDomain,
		Namespace:      sampleNamespace,
		ServiceAccount: sa,
	}
}

// sleepNode is the xDS node of the site's sleep pod, an injected pod of
// Istio's samples/sleep (no container ports) whose traffic iptables
// captures.
func (s *site) sleepNode() sidecarNode {
	return sidecarNode{
		IP: s.sleepIP.String(), Pod: "sleep-" + s.cluster.ID, Namespace: sampleNamespace, Network: s.network, ClusterID: s.cluster.ID,
		Interception: "REDIRECT",
		Labels:       map[string]string{"app": "sleep", labelTLSMode: "istio"},
	}
}

// helloNode is the xDS node of the site's helloworld pod (see
// helloworldPod), captured, with its container port http 5000.
func (s *site) helloNode() sidecarNode {
	version := fmt.Sprintf("v%d", s.n)
	return sidecarNode{
		IP: s.helloIP.String(), Pod: "helloworld-" + version, Namespace: sampleNamespace, Network: s.network, ClusterID: s.cluster.ID,
		Interception: "REDIRECT",
		Labels:       map[string]string{"app": "helloworld", "version": version, labelTLSMode: "istio"},
		PodPorts:     []podPort{{Name: "http", ContainerPort: helloworldPort, Protocol: "TCP"}},
	}
}

// helloworldConfig is the helloworld role of site s.
func (s *site) helloworldConfig(t *testing.T) helloworldConfig {
	t.Helper()
	version := fmt.Sprintf("v%d", s.n)
	id := s.identity(t, helloworldSA)
	return helloworldConfig{
		Version:  version,
		Instance: "helloworld-" + version,
		Listen:   s.helloAddr(),
		Identity: id,
		XDS:      s.sidecarXDS.withToken(id),
		Node:     s.helloNode(),
	}
}

// sleepConfig is the sleep role of site s: curl helloworld.sample:5000/hello
// through the captured sidecar, to the address the cluster's DNS gives.
func (s *site) sleepConfig(t *testing.T) sleepConfig {
	t.Helper()
	id := s.identity(t, sleepSA)
	return sleepConfig{
		XDS:          s.sidecarXDS.withToken(id),
		Node:         s.sleepNode(),
		Identity:     id,
		Destination:  hostPort(s.helloVIP, helloworldPort),
		Host:         fmt.Sprintf("helloworld.%s:%d", sampleNamespace, helloworldPort),
		Path:         "/hello",
		MinEndpoints: 2,
		Requests:     sleepRequests,
		Timeout:      3 * time.Second,
	}
}

// deployment is how the control planes are laid out.
type deployment int

const (
	// multiPrimary: every cluster runs a control plane that watches all.
	multiPrimary deployment = iota
	// primaryRemote: cluster1 runs the only control plane; cluster2's
	// proxies reach it through cluster1's east-west gateway.
	primaryRemote
)

// primary reports whether site s runs a control plane in deployment d.
func (d deployment) primary(s *site) bool {
	return d == multiPrimary || s.n == 1
}

// home is the home lab: two clusters, two networks, one mesh.
type home struct {
	model deployment
	bin   string
	ps    *procs
	sites []*site
	// rootPEM is root-cert.pem of `causeway certs root`.
	rootPEM []byte
}

// prerequisites skips (or, in CI, fails) the test when what it needs is
// missing, and builds causeway while the clusters start.
func prerequisites(t *testing.T) {
	t.Helper()
	testreq.NotShort(t, "end-to-end test: starts two kube-apiservers, control planes, gateways and network namespaces")
	requireNetns(t)
	testenv.RequireBinaries(t, false)
}

// newHome builds the topology of doc.go: clusters and their objects, the
// CA certificates (an intermediate for each primary), the namespaces and
// their link and routes. No control plane runs yet.
func newHome(t *testing.T, model deployment) *home {
	t.Helper()
	prerequisites(t)
	built := make(chan struct{})
	var bin string
	var buildErr error
	go func() {
		defer close(built)
		bin, buildErr = testkit.BuildCauseway()
	}()
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	<-built
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	h := &home{bin: bin, model: model}

	// Unique names: other runs (or a crashed one) may hold theirs.
	pid := os.Getpid()
	for i, c := range env.Clusters {
		n := i + 1
		s := &site{
			n:        n,
			network:  fmt.Sprintf("network%d", n),
			cluster:  c,
			kubecfg:  c.WriteKubeconfig(t),
			dir:      t.TempDir(),
			cpAddr:   podAddr(n, 253),
			helloIP:  podAddr(n, 10),
			sleepIP:  podAddr(n, 20),
			workerIP: podAddr(n, 1),
		}
		s.sidecarXDS = xdsServer{Addr: s.xdsAddr()}
		s.gwXDS = s.sidecarXDS
		s.caAddr, s.caName = s.tlsAddr(), caServerName
		s.ns = newNetns(t, fmt.Sprintf("cw-e2e-%d-net%d", pid, n))
		h.sites = append(h.sites, s)
	}
	s1, s2 := h.sites[0], h.sites[1]
	// After the namespaces: cleanups run last first, so every process is
	// stopped before its namespace is deleted.
	h.ps = newProcs(t)

	// Gateways: cluster1 behind a LoadBalancer address, cluster2 only as a
	// NodePort on the address of the node that runs its pod.
	s1.gwAddr = netip.MustParseAddrPort("172.18.0.10:15443")
	s1.gateway = eastWestGateway{Network: s1.network, Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: s1.gwAddr.Addr().String(),
		PodName: eastWestName + "-7d9f8-c1", PodIP: podAddr(1, 30).String(), Node: s1.node()}
	s2.workerIP = netip.MustParseAddr("192.168.2.10")
	s2.gwAddr = netip.AddrPortFrom(s2.workerIP, 31443)
	s2.gateway = eastWestGateway{Network: s2.network, Type: corev1.ServiceTypeNodePort, NodePort: int32(s2.gwAddr.Port()),
		PodName: eastWestName + "-5b6c4-c2", PodIP: podAddr(2, 30).String(), Node: s2.node()}

	// The networks: each site's addresses on its namespace's loopback, a
	// veth between them, and a route to the other's gateway address only.
	for _, s := range h.sites {
		s.ns.addAddrs(t, s.cpAddr, s.helloIP, s.sleepIP, s.gwAddr.Addr())
	}
	s1.transit, s2.transit = link(t, s1.ns, s2.ns, fmt.Sprintf("cw%da", pid), fmt.Sprintf("cw%db", pid), netip.MustParsePrefix("10.255.0.0/30"))
	s1.ns.route(t, netip.PrefixFrom(s2.gwAddr.Addr(), 32), s2.transit, s1.transit)
	s2.ns.route(t, netip.PrefixFrom(s1.gwAddr.Addr(), 32), s1.transit, s2.transit)

	// The clusters' objects, as the home lab has them.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, s := range h.sites {
		cs := s.cluster.Client()
		steps := []func() error{
			func() error { return createMeshNamespaces(ctx, cs, s.network) },
			func() error {
				_, err := testenv.CreateNode(ctx, cs, s.node(), map[string]string{"kubernetes.io/hostname": s.node()}, "", s.workerIP.String())
				return err
			},
			func() error {
				ip, err := helloworldService(ctx, cs)
				s.helloVIP = ip
				return err
			},
			func() error { return helloworldPod(ctx, cs, fmt.Sprintf("v%d", s.n), s.helloIP.String(), s.node()) },
			func() error { return s.gateway.create(ctx, cs) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("cluster %s: %v", s.cluster.ID, err)
			}
		}
	}

	// Istio's PeerAuthentication CRD, installed before any control plane
	// starts, as Istio's base chart would be.
	for _, s := range h.sites {
		if err := s.cluster.InstallPeerAuthCRD(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// One root, one intermediate per primary, plugged in as cacerts.
	certs := map[*testenv.Cluster]string{}
	for _, s := range h.sites {
		if model.primary(s) {
			certs[s.cluster] = s.kubecfg
		}
	}
	root, err := os.ReadFile(makeCACerts(t, h.bin, filepath.Join(t.TempDir(), "certs"), certs))
	if err != nil {
		t.Fatal(err)
	}
	h.rootPEM = root
	return h
}

// startControlPlanes starts `causeway serve` for each primary site and
// the relays of 10.n.0.253:15010 and :15012 in its namespace to it.
func (h *home) startControlPlanes(t *testing.T) {
	t.Helper()
	for _, s := range h.sites {
		if !h.model.primary(s) {
			continue
		}
		s.cp = startServe(t, h.ps, h.bin, s.cluster.ID, s.kubecfg)
		forward(t, s.ns, s.xdsAddr(), s.cp.xds)
		forward(t, s.ns, s.tlsAddr(), s.cp.xdsTLS)
	}
}

// gatewaySpec is the `causeway gateway` of site s.
func (s *site) gatewaySpec() gatewaySpec {
	spec := gatewaySpec{
		Name:      "gateway" + fmt.Sprint(s.n),
		Network:   s.network,
		ClusterID: s.cluster.ID,
		XDS:       s.gwXDS,
		Listen:    s.gwAddr.String(),
		Admin:     "127.0.0.1:15021",
		PodIP:     s.gateway.PodIP,
		PodName:   s.gateway.PodName,
		// The control plane's listener, for remote clusters.
		ExposeControlPlane: s.exposeCP,
	}
	if s.gwAddr.Port() != gatewayPort {
		spec.ListenerName = fmt.Sprintf("0.0.0.0_%d", gatewayPort)
	}
	return spec
}

// startGateway starts site s's east-west gateway.
func (h *home) startGateway(t *testing.T, s *site) {
	t.Helper()
	s.gw = startGateway(t, h.ps, h.bin, s.ns, s.gatewaySpec())
}
