package parity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	xp "github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// Istio's names and conventions the world is written with.
const (
	systemNamespace     = "istio-system"
	sampleNamespace     = "sample"
	permissiveNamespace = "permissive"
	labelNetwork        = "topology.istio.io/network"
	labelTLSMode        = "security.istio.io/tlsMode"
	eastWestName        = "istio-eastwestgateway"
	gatewayPort         = 15443
	trustDomain         = "cluster.local"
)

// site is one cluster on its own network.
type site struct {
	n       int // 1 or 2: cluster n, network n, pod addresses 10.n.0.0/24
	cluster *testenv.Cluster
	network string
	// gatewayIP is the east-west gateway's LoadBalancer address.
	gatewayIP netip.Addr
}

func (s *site) podIP(host byte) string {
	return netip.AddrFrom4([4]byte{10, byte(s.n), 0, host}).String()
}

func (s *site) node() string { return s.cluster.ID + "-worker" }

// workload is a pod, the Service that selects it (unless Service is nil),
// its EndpointSlice, and the node pilot-agent would announce for it.
type workload struct {
	namespace string
	app       string
	pod       string
	ip        string
	sa        string
	ports     []corev1.ContainerPort
	svc       *testenv.Service
	hostname  string // headless: the endpoint's hostname
	labels    map[string]string
}

func (w workload) podLabels() map[string]string {
	l := map[string]string{
		"app":                                 w.app,
		labelTLSMode:                          "istio",
		"service.istio.io/canonical-name":     w.app,
		"service.istio.io/canonical-revision": "v1",
	}
	maps.Copy(l, w.labels)
	return l
}

// sidecar is the node of the workload's injected istio-proxy.
func (w workload) sidecar(s *site, istioVersion string) xp.Node {
	var ports []xp.PodPort
	for _, p := range w.ports {
		ports = append(ports, xp.PodPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: "TCP"})
	}
	return xp.Node{
		Type: "sidecar", IP: w.ip, Pod: w.pod, Namespace: w.namespace,
		Labels: w.podLabels(), Network: s.network, ClusterID: s.cluster.ID, MeshID: trustDomain,
		InterceptionMode: "REDIRECT", IstioVersion: istioVersion,
		ServiceAccount: w.sa, WorkloadName: w.app, Node: s.node(), PodPorts: ports,
	}
}

// workloads are the pods of site s: the same services in both clusters,
// and legacy and httpbin in cluster1 only.
func (s *site) workloads() []workload {
	httpSvc := func(ns, name string, port int32) *testenv.Service {
		return &testenv.Service{Namespace: ns, Name: name, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromInt32(port)}}}
	}
	ws := []workload{
		{namespace: sampleNamespace, app: "helloworld", pod: fmt.Sprintf("helloworld-v%d", s.n), ip: s.podIP(10), sa: "helloworld",
			ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 5000}}, svc: httpSvc(sampleNamespace, "helloworld", 5000),
			labels: map[string]string{"version": fmt.Sprintf("v%d", s.n)}},
		{namespace: sampleNamespace, app: "sleep", pod: fmt.Sprintf("sleep-%d", s.n), ip: s.podIP(20), sa: "sleep",
			ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}, svc: httpSvc(sampleNamespace, "sleep", 80)},
		{namespace: sampleNamespace, app: "tcp-echo", pod: fmt.Sprintf("tcp-echo-%d", s.n), ip: s.podIP(40), sa: "tcp-echo",
			ports: []corev1.ContainerPort{{Name: "tcp", ContainerPort: 9000}, {Name: "tls", ContainerPort: 9443}},
			svc: &testenv.Service{Namespace: sampleNamespace, Name: "tcp-echo", Selector: map[string]string{"app": "tcp-echo"},
				Ports: []corev1.ServicePort{
					{Name: "tcp", Port: 9000, TargetPort: intstr.FromInt32(9000)},
					{Name: "tls", Port: 9443, TargetPort: intstr.FromInt32(9443)},
				}}},
		// A port without a name: istiod sniffs its protocol.
		{namespace: sampleNamespace, app: "plain", pod: fmt.Sprintf("plain-%d", s.n), ip: s.podIP(50), sa: "plain",
			ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			svc: &testenv.Service{Namespace: sampleNamespace, Name: "plain", Selector: map[string]string{"app": "plain"},
				Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}}},
		// Headless, one StatefulSet pod per cluster.
		{namespace: sampleNamespace, app: "db", pod: fmt.Sprintf("db-%d", s.n-1), ip: s.podIP(60), sa: "db",
			hostname: fmt.Sprintf("db-%d", s.n-1),
			ports:    []corev1.ContainerPort{{Name: "tcp-postgres", ContainerPort: 5432}},
			svc: &testenv.Service{Namespace: sampleNamespace, Name: "db", Selector: map[string]string{"app": "db"}, Headless: true,
				Ports: []corev1.ServicePort{{Name: "tcp-postgres", Port: 5432, TargetPort: intstr.FromInt32(5432)}}}},
	}
	if s.n == 1 {
		ws = append(ws,
			workload{namespace: sampleNamespace, app: "legacy", pod: "legacy-1", ip: s.podIP(70), sa: "legacy",
				ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}}, svc: httpSvc(sampleNamespace, "legacy", 8000)},
			workload{namespace: permissiveNamespace, app: "httpbin", pod: "httpbin-1", ip: s.podIP(80), sa: "httpbin",
				ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}}, svc: httpSvc(permissiveNamespace, "httpbin", 8000)},
		)
	}
	return ws
}

// gatewayLabels are the labels of the east-west gateway's Service and pod.
func (s *site) gatewayLabels() map[string]string {
	return map[string]string{"app": eastWestName, "istio": "eastwestgateway", labelNetwork: s.network}
}

func (s *site) gatewayPod() string { return fmt.Sprintf("%s-%d", eastWestName, s.n) }

// gatewayNode is the east-west gateway's node, as its pilot-agent sends it
// with the environment samples/multicluster/gen-eastwest-gateway.sh sets.
func (s *site) gatewayNode(istioVersion string) xp.Node {
	return xp.Node{
		Type: "router", IP: s.podIP(30), Pod: s.gatewayPod(), Namespace: systemNamespace,
		Labels: s.gatewayLabels(), Network: s.network, ClusterID: s.cluster.ID, MeshID: trustDomain,
		IstioVersion: istioVersion, ServiceAccount: "istio-eastwestgateway-service-account",
		WorkloadName: eastWestName, Node: s.node(),
		RouterMode: "sni-dnat", RequestedNetworkView: s.network,
	}
}

// write creates the site's namespaces, node, workloads and gateway.
func (s *site) write(ctx context.Context) error {
	cs := s.cluster.Client()
	if _, err := testenv.CreateNamespace(ctx, cs, systemNamespace, map[string]string{labelNetwork: s.network}); err != nil {
		return err
	}
	for _, ns := range []string{sampleNamespace, permissiveNamespace} {
		if _, err := testenv.CreateNamespace(ctx, cs, ns, map[string]string{"istio-injection": "enabled"}); err != nil {
			return err
		}
	}
	if _, err := testenv.CreateNode(ctx, cs, s.node(), map[string]string{"kubernetes.io/hostname": s.node()}, "", s.podIP(1)); err != nil {
		return err
	}
	ws := s.workloads()
	for i := range ws {
		if err := ws[i].create(ctx, cs, s.node()); err != nil {
			return fmt.Errorf("cluster %s: %w", s.cluster.ID, err)
		}
	}
	// The API server's own endpoint, as its endpoint reconciler writes it
	// (the harness runs with that reconciler off): kubernetes.default is
	// cluster-local for istiod, and it does not speak mesh mTLS.
	if _, err := testenv.CreateEndpointSlice(ctx, cs, metav1.NamespaceDefault, "kubernetes", "kubernetes",
		[]testenv.EndpointPort{{Name: "https", Port: 6443}},
		[]testenv.Endpoint{{IP: s.podIP(2), Ready: true}}); err != nil {
		return fmt.Errorf("cluster %s: %w", s.cluster.ID, err)
	}
	return s.createGateway(ctx, cs)
}

func (w workload) create(ctx context.Context, cs kubernetes.Interface, node string) error {
	if w.svc != nil {
		if _, err := testenv.CreateService(ctx, cs, *w.svc); err != nil {
			return err
		}
	}
	if _, err := testenv.CreatePod(ctx, cs, testenv.Pod{
		Namespace: w.namespace, Name: w.pod, Labels: w.podLabels(), Node: node,
		ServiceAccount: w.sa, IP: w.ip, Ports: w.ports, Ready: true,
	}); err != nil {
		return err
	}
	if w.svc == nil {
		return nil
	}
	var ports []testenv.EndpointPort
	for _, p := range w.svc.Ports {
		ports = append(ports, testenv.EndpointPort{Name: p.Name, Port: p.TargetPort.IntVal})
	}
	_, err := testenv.CreateEndpointSlice(ctx, cs, w.namespace, w.svc.Name, w.pod, ports,
		[]testenv.Endpoint{{IP: w.ip, Ready: true, Node: node, Pod: w.pod, Hostname: w.hostname}})
	return err
}

// createGateway writes the east-west gateway as
// samples/multicluster/gen-eastwest-gateway.sh installs it, with a cloud's
// LoadBalancer address.
func (s *site) createGateway(ctx context.Context, cs kubernetes.Interface) error {
	ports := []corev1.ServicePort{
		{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021)},
		{Name: "tls", Port: gatewayPort, TargetPort: intstr.FromInt32(gatewayPort)},
		{Name: "tls-istiod", Port: 15012, TargetPort: intstr.FromInt32(15012)},
		{Name: "tls-webhook", Port: 15017, TargetPort: intstr.FromInt32(15017)},
	}
	if _, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: systemNamespace, Name: eastWestName, Labels: s.gatewayLabels(),
		Selector: map[string]string{"app": eastWestName, "istio": "eastwestgateway"},
		Type:     corev1.ServiceTypeLoadBalancer, Ports: ports,
	}); err != nil {
		return err
	}
	if _, err := testenv.SetLoadBalancerIngress(ctx, cs, systemNamespace, eastWestName, s.gatewayIP.String()); err != nil {
		return err
	}
	if _, err := testenv.CreatePod(ctx, cs, testenv.Pod{
		Namespace: systemNamespace, Name: s.gatewayPod(), Labels: s.gatewayLabels(), Node: s.node(),
		ServiceAccount: "istio-eastwestgateway-service-account", IP: s.podIP(30),
		Ports: []corev1.ContainerPort{{Name: "tls", ContainerPort: gatewayPort}}, Ready: true,
	}); err != nil {
		return err
	}
	var eps []testenv.EndpointPort
	for _, p := range ports {
		eps = append(eps, testenv.EndpointPort{Name: p.Name, Port: p.Port})
	}
	_, err := testenv.CreateEndpointSlice(ctx, cs, systemNamespace, eastWestName, eastWestName+"-1", eps,
		[]testenv.Endpoint{{IP: s.podIP(30), Ready: true, Node: s.node(), Pod: s.gatewayPod()}})
	return err
}

// istioObjects are Istio's own resources of the mesh, the same in every
// cluster: the cross-network Gateway of samples/multicluster/expose-services.yaml
// and the PeerAuthentications of the cases.
const istioObjects = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: permissive}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: sample}
spec:
  selector: {matchLabels: {app: legacy}}
  mtls: {mode: DISABLE}
`

// applyIstioObjects creates istioObjects in the cluster.
func applyIstioObjects(ctx context.Context, c *testenv.Cluster) error {
	return applyYAML(ctx, c, istioObjects)
}

func splitYAML(s string) []string {
	var out []string
	for doc := range strings.SplitSeq(s, "\n---\n") {
		if strings.TrimSpace(doc) != "" {
			out = append(out, doc)
		}
	}
	return out
}

// remoteSecret is the Secret through which cluster1's control planes read
// cluster2, in the format `istioctl create-remote-secret` writes.
func remoteSecret(remote *testenv.Cluster) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   systemNamespace,
			Name:        "istio-remote-secret-" + remote.ID,
			Labels:      map[string]string{"istio/multiCluster": "true"},
			Annotations: map[string]string{"networking.istio.io/cluster": remote.ID},
		},
		Data: map[string][]byte{remote.ID: remote.Kubeconfig()},
	}
}

// parityWorld is what the parity tests start: two kube-apiservers holding
// the world of this file (with Istio's CRDs and objects), cluster1 reading
// cluster2 through a remote secret, and the causeway binary, built
// meanwhile.
type parityWorld struct {
	bins        testenv.IstioBinaries
	table       *xp.Table
	env         *testenv.Env
	sites       []*site
	causewayBin string
	kubeconfig  string // cluster1's
	meshFlag    string // causeway serve's flag for a mesh config file
}

// startParityWorld starts the world within ctx. prepare, when set, runs on
// cluster1 before its remote secret is made.
func startParityWorld(ctx context.Context, t *testing.T, prepare func(context.Context, *testenv.Cluster) error) *parityWorld {
	t.Helper()
	w := &parityWorld{bins: testenv.RequireIstio(t)}
	testenv.RequireBinaries(t, false)
	w.table = loadTable(t)

	built := make(chan struct{})
	var buildErr error
	go func() {
		defer close(built)
		w.causewayBin, buildErr = testkit.BuildCauseway()
	}()

	w.env = testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	w.sites = []*site{
		{n: 1, cluster: w.env.Clusters[0], network: "network1", gatewayIP: netip.MustParseAddr("172.18.0.10")},
		{n: 2, cluster: w.env.Clusters[1], network: "network2", gatewayIP: netip.MustParseAddr("172.18.0.20")},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(w.sites))
	for i, s := range w.sites {
		wg.Go(func() {
			if _, err := s.cluster.InstallCRDs(ctx, w.bins.CRDs); err != nil {
				errs[i] = err
				return
			}
			if err := s.write(ctx); err != nil {
				errs[i] = err
				return
			}
			errs[i] = applyIstioObjects(ctx, s.cluster)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	primary := w.sites[0].cluster
	if prepare != nil {
		if err := prepare(ctx, primary); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := primary.Client().CoreV1().Secrets(systemNamespace).Create(ctx, remoteSecret(w.sites[1].cluster), metav1.CreateOptions{}); err != nil {
		t.Fatalf("remote secret of cluster2: %v", err)
	}
	<-built
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	w.kubeconfig = primary.WriteKubeconfig(t)
	w.meshFlag = meshConfigFlag(t, w.causewayBin)
	return w
}
