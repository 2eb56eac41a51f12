package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
)

// What the harness writes into each cluster.
const (
	benchNamespace = "bench"
	// meshLabel marks the namespaces the discovery selectors select, when
	// Config.DiscoverySelectors is on.
	meshLabel   = "causeway.io/bench-mesh"
	nodeName    = "bench-node"
	gatewayName = "istio-eastwestgateway"
	servicePort = 80
	targetPort  = 8080
	portName    = "http"
	// fillQPS is the client-side rate limit of the writers: high enough
	// that the apiserver, not client-go, is the bottleneck.
	fillQPS = 100_000
)

// serviceName is the name of service i.
func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// serviceHost is the host of service i.
func serviceHost(i int) string { return serviceName(i) + "." + benchNamespace + ".svc." + domain }

// benchCluster is one cluster the harness filled, and the harness's own
// record of its EndpointSlices (the churn starts from them).
type benchCluster struct {
	index   int // 1-based
	id      string
	network string
	gateway string // the gateway's LoadBalancer IP
	tc      *testenv.Cluster
	cs      kubernetes.Interface // the writers' client: high QPS, protobuf

	services []*corev1.Service // the bench Services and the gateway
	mtlsPods map[string]bool

	mu     sync.Mutex
	slices []*discoveryv1.EndpointSlice // by service index, as last written
	busy   []bool                       // a change of slice i is in flight
	next   int                          // counter of new endpoint addresses
}

// podIP is the address of pod k (0-based) of cluster c (1-based):
// 10.(16c).0.0/16.
func podIP(c, k int) string {
	return netip.AddrFrom4([4]byte{10, byte(16 * c), byte(k >> 8), byte(k)}).String()
}

// movedIP is the n-th new address of a churned endpoint of cluster c:
// 10.(16c+1+n/65536).x.y, never a pod's or an earlier change's.
func movedIP(c, n int) string {
	return netip.AddrFrom4([4]byte{10, byte(16*c + 1 + n>>16), byte(n >> 8), byte(n)}).String()
}

// gatewayIP is the LoadBalancer address of cluster c's east-west gateway.
func gatewayIP(c int) string {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(c)}).String()
}

// newBenchCluster wraps a started cluster; index is 1-based.
func newBenchCluster(tc *testenv.Cluster, index int) (*benchCluster, error) {
	cfg := tc.RESTConfig()
	cfg.QPS, cfg.Burst = fillQPS, fillQPS
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.UserAgent = "causeway-bench"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client of cluster %s: %w", tc.ID, err)
	}
	return &benchCluster{
		index:    index,
		id:       tc.ID,
		network:  "network" + strconv.Itoa(index),
		gateway:  gatewayIP(index),
		tc:       tc,
		cs:       cs,
		mtlsPods: map[string]bool{},
	}, nil
}

// fillCounters count a cluster's writes for the progress line.
type fillCounters struct {
	done  atomic.Int64
	total int64
}

// fill writes the cluster's namespaces, node and gateway, then S Services
// with E Pods and one EndpointSlice each, with w parallel writers.
//
// With selectors, the namespaces of the mesh are labeled meshLabel, and
// unselected more namespaces, unlabeled, get S Services with E Pods and an
// EndpointSlice each too: objects the server must neither serve nor cache.
func (bc *benchCluster) fill(ctx context.Context, s, e, w int, selectors bool, unselected int, cnt *fillCounters) error {
	var meshLabels map[string]string
	if selectors {
		meshLabels = map[string]string{meshLabel: "true"}
		if err := bc.labelDefaultNamespace(ctx); err != nil {
			return err
		}
	}
	gw, err := bc.writeBase(ctx, meshLabels, unselected)
	if err != nil {
		return err
	}
	cnt.done.Add(6)
	services, mtls, err := bc.writeServices(ctx, s, e, w, unselected, cnt)
	if err != nil {
		return err
	}
	// The apiserver's own Service is part of the mesh too.
	kube, err := bc.cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("fill cluster %s: %w", bc.id, err)
	}
	services = append(services, gw, kube)
	bc.services = services
	for _, pods := range mtls {
		for _, p := range pods {
			bc.mtlsPods[benchNamespace+"/"+p] = true
		}
	}
	return nil
}

// labelDefaultNamespace labels the namespace default meshLabel, so that the
// discovery selectors select it.
func (bc *benchCluster) labelDefaultNamespace(ctx context.Context) error {
	cs := bc.cs
	def, err := cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("fill cluster %s: %w", bc.id, err)
	}
	if def.Labels == nil {
		def.Labels = map[string]string{}
	}
	def.Labels[meshLabel] = "true"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, def, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("fill cluster %s: label namespace default: %w", bc.id, err)
	}
	return nil
}

// writeBase writes the cluster's namespaces (the mesh's labeled
// meshLabels, and unselected unlabeled ones), its node and its east-west
// gateway Service with a load balancer address, and returns the gateway.
func (bc *benchCluster) writeBase(ctx context.Context, meshLabels map[string]string, unselected int) (*corev1.Service, error) {
	cs := bc.cs
	sysLabels := map[string]string{labelNetwork: bc.network}
	maps.Copy(sysLabels, meshLabels)
	if _, err := testenv.CreateNamespace(ctx, cs, systemNamespace, sysLabels); err != nil {
		return nil, err
	}
	if _, err := testenv.CreateNamespace(ctx, cs, benchNamespace, meshLabels); err != nil {
		return nil, err
	}
	for k := range unselected {
		if _, err := testenv.CreateNamespace(ctx, cs, unselectedNamespace(k), nil); err != nil {
			return nil, err
		}
	}
	if _, err := testenv.CreateNode(ctx, cs, nodeName, nil, "", netip.AddrFrom4([4]byte{192, 168, byte(bc.index), 1}).String()); err != nil {
		return nil, err
	}
	_, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: systemNamespace, Name: gatewayName, Type: corev1.ServiceTypeLoadBalancer,
		Labels: map[string]string{labelNetwork: bc.network, "istio": "eastwestgateway"},
		Ports:  []corev1.ServicePort{{Name: "tls", Port: defaultGwPort, TargetPort: intstr.FromInt32(defaultGwPort)}},
	})
	if err != nil {
		return nil, err
	}
	return testenv.SetLoadBalancerIngress(ctx, cs, systemNamespace, gatewayName, bc.gateway)
}

// writeServices writes S Services with E Pods and an EndpointSlice each in
// the mesh's namespace, and as many in each unselected namespace, with w
// parallel writers. It keeps the mesh's slices in bc and returns its
// Services and, per Service, its mTLS pods.
func (bc *benchCluster) writeServices(ctx context.Context, s, e, w, unselected int, cnt *fillCounters) ([]*corev1.Service, [][]string, error) {
	cs := bc.cs
	services := make([]*corev1.Service, s)
	bc.slices = make([]*discoveryv1.EndpointSlice, s)
	bc.busy = make([]bool, s)
	mtls := make([][]string, s)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	errs := make([]error, w)
	var wg sync.WaitGroup
	for k := range w {
		wg.Go(func() {
			for j := range jobs {
				ns, i := benchNamespace, j
				if j >= s {
					ns, i = unselectedNamespace(j/s-1), j%s
				}
				svc, slice, pods, err := writeService(ctx, cs, ns, bc.index, i, e, cnt)
				if err != nil {
					errs[k] = err
					cancel()
					return
				}
				if j < s {
					services[i], bc.slices[i], mtls[i] = svc, slice, pods
				}
			}
		})
	}
feed:
	for i := range s * (1 + unselected) {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("fill cluster %s: %w", bc.id, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("fill cluster %s: %w", bc.id, err)
	}
	return services, mtls, nil
}

// writeService writes Service i of cluster c, its e Running and Ready Pods
// (tlsMode istio) and its EndpointSlice, as a kubelet and the EndpointSlice
// controller would; it returns what it wrote.
func writeService(ctx context.Context, cs kubernetes.Interface, ns string, c, i, e int, cnt *fillCounters) (*corev1.Service, *discoveryv1.EndpointSlice, []string, error) {
	name := serviceName(i)
	svc, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: ns, Name: name,
		Selector: map[string]string{"app": name},
		Ports:    []corev1.ServicePort{{Name: portName, Port: servicePort, TargetPort: intstr.FromInt32(targetPort)}},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	cnt.done.Add(1)
	eps := make([]testenv.Endpoint, e)
	pods := make([]string, e)
	for j := range e {
		pod := fmt.Sprintf("%s-%03d", name, j)
		ip := podIP(c, i*e+j)
		_, err := testenv.CreatePod(ctx, cs, testenv.Pod{
			Namespace: ns, Name: pod, Node: nodeName, ServiceAccount: name,
			Labels: map[string]string{"app": name, labelTLSMode: tlsModeIstio},
			IP:     ip, HostIP: netip.AddrFrom4([4]byte{192, 168, byte(c), 1}).String(),
			Ports: []corev1.ContainerPort{{Name: portName, ContainerPort: targetPort}},
			Ready: true,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		cnt.done.Add(2) // create and status
		eps[j] = testenv.Endpoint{IP: ip, Ready: true, Node: nodeName, Pod: pod}
		pods[j] = pod
	}
	slice, err := testenv.CreateEndpointSlice(ctx, cs, ns, name, name+"-1",
		[]testenv.EndpointPort{{Name: portName, Port: targetPort}}, eps)
	if err != nil {
		return nil, nil, nil, err
	}
	cnt.done.Add(1)
	return svc, slice, pods, nil
}

// unselectedNamespace is the name of the k-th (0-based) unselected
// namespace.
func unselectedNamespace(k int) string { return fmt.Sprintf("unselected-%02d", k) }

// objectsPerCluster is how many writes fill makes in one cluster.
func objectsPerCluster(s, e, unselected int) int64 {
	return 6 + int64(unselected) + int64(1+unselected)*int64(s)*(2+2*int64(e))
}

// progress prints a line of the counters every interval until ctx is done,
// then a last one.
func progress(ctx context.Context, w io.Writer, what string, begin time.Time, cnts []*fillCounters) {
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	line := func(end string) {
		var done, total int64
		fmt.Fprintf(w, "\r%s:", what)
		for i, c := range cnts {
			d := c.done.Load()
			done += d
			total += c.total
			fmt.Fprintf(w, " cluster%d %d/%d", i+1, d, c.total)
		}
		el := time.Since(begin).Seconds()
		fmt.Fprintf(w, " writes (%.0f/s, %.0fs)%s", float64(done)/max(el, 1e-3), el, end)
	}
	for {
		select {
		case <-ctx.Done():
			line("\n")
			return
		case <-ticker.C:
			line("")
		}
	}
}

// joinRemote makes cluster remote's remote Secret (a token for a read-only
// ServiceAccount, as `causeway remote-secret create --token-ttl` does) and
// applies it to the config cluster.
func joinRemote(ctx context.Context, config, remote *benchCluster) error {
	rs, err := clusters.CreateRemoteSecret(ctx, clusters.RemoteSecretConfig{
		Client:    remote.tc.Client(),
		ClusterID: model.ClusterID(remote.id),
		Server:    remote.tc.Host,
		CAData:    remote.tc.CAPEM,
		Namespace: systemNamespace,
		TokenTTL:  24 * time.Hour,
	})
	if err != nil {
		return err
	}
	if _, err := config.cs.CoreV1().Secrets(systemNamespace).Create(ctx, rs.Secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("apply the remote secret of %s to %s: %w", remote.id, config.id, err)
	}
	return nil
}

// objects returns the harness's own record of the cluster's objects.
func (bc *benchCluster) objects() clusterObjects {
	bc.mu.Lock()
	slices := append([]*discoveryv1.EndpointSlice(nil), bc.slices...)
	bc.mu.Unlock()
	return clusterObjects{ID: bc.id, Network: bc.network, Services: bc.services, Slices: slices, MTLSPods: bc.mtlsPods}
}

// listObjects reads the cluster's objects back from its apiserver: the
// network label, every Service and EndpointSlice, and the mTLS Pods; with
// selectors, only those of the namespaces labeled meshLabel.
func (bc *benchCluster) listObjects(ctx context.Context, selectors bool) (clusterObjects, error) {
	out := clusterObjects{ID: bc.id, MTLSPods: map[string]bool{}}
	inMesh := func(string) bool { return true }
	if selectors {
		nss, err := bc.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: meshLabel + "=true"})
		if err != nil {
			return out, fmt.Errorf("cluster %s: list namespaces: %w", bc.id, err)
		}
		mesh := map[string]bool{}
		for i := range nss.Items {
			mesh[nss.Items[i].Name] = true
		}
		inMesh = func(ns string) bool { return mesh[ns] }
	}
	ns, err := bc.cs.CoreV1().Namespaces().Get(ctx, systemNamespace, metav1.GetOptions{})
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", bc.id, err)
	}
	out.Network = ns.Labels[labelNetwork]
	svcs, err := bc.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fmt.Errorf("cluster %s: list services: %w", bc.id, err)
	}
	for i := range svcs.Items {
		if !inMesh(svcs.Items[i].Namespace) {
			continue
		}
		out.Services = append(out.Services, &svcs.Items[i])
	}
	sl, err := bc.cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fmt.Errorf("cluster %s: list endpointslices: %w", bc.id, err)
	}
	for i := range sl.Items {
		if !inMesh(sl.Items[i].Namespace) {
			continue
		}
		out.Slices = append(out.Slices, &sl.Items[i])
	}
	pods, err := bc.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: labelTLSMode + "=" + tlsModeIstio})
	if err != nil {
		return out, fmt.Errorf("cluster %s: list pods: %w", bc.id, err)
	}
	for i := range pods.Items {
		if !inMesh(pods.Items[i].Namespace) {
			continue
		}
		out.MTLSPods[pods.Items[i].Namespace+"/"+pods.Items[i].Name] = true
	}
	return out, nil
}
