package testenv

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// fixture is what writeFixture puts in cluster number n (1-based) and what
// readFixture reads back through informers; the values differ per cluster
// so that a cluster seeing another's objects fails the comparison.
type fixture struct {
	NamespaceLabels map[string]string
	OnlyHere        []string // namespaces named only-*
	NodeAddresses   []corev1.NodeAddress
	NodeReady       corev1.ConditionStatus
	PodNode         string
	PodIPs          []string
	PodPhase        corev1.PodPhase
	PodReady        corev1.ConditionStatus
	ServicePorts    []string
	ClusterIPInCIDR bool
	SliceLabels     map[string]string
	SliceEndpoints  []string
	GatewayIngress  []corev1.LoadBalancerIngress
}

func wantFixture(c *Cluster, n int) fixture {
	return fixture{
		NamespaceLabels: map[string]string{
			"kubernetes.io/metadata.name": "app",
			"topology.istio.io/network":   "net-" + c.ID,
		},
		OnlyHere: []string{"only-" + c.ID},
		NodeAddresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.168.%d.10", n)},
			{Type: corev1.NodeExternalIP, Address: fmt.Sprintf("203.0.113.%d", n)},
			{Type: corev1.NodeHostName, Address: "node-" + c.ID},
		},
		NodeReady:       corev1.ConditionTrue,
		PodNode:         "node-" + c.ID,
		PodIPs:          []string{fmt.Sprintf("10.%d.0.5", n)},
		PodPhase:        corev1.PodRunning,
		PodReady:        corev1.ConditionTrue,
		ServicePorts:    []string{"http/80->8080"},
		ClusterIPInCIDR: true,
		SliceLabels: map[string]string{
			discoveryv1.LabelServiceName: "web",
			discoveryv1.LabelManagedBy:   ManagedByController,
		},
		SliceEndpoints: []string{fmt.Sprintf("10.%d.0.5 ready=true node=node-%s pod=web-0", n, c.ID)},
		GatewayIngress: []corev1.LoadBalancerIngress{
			// The apiserver defaults ipMode of IP entries to VIP.
			{IP: fmt.Sprintf("198.51.100.%d", n), IPMode: new(corev1.LoadBalancerIPModeVIP)},
			{Hostname: "gw." + c.ID + ".example.com"},
		},
	}
}

func writeFixture(ctx context.Context, t *testing.T, c *Cluster, n int) {
	t.Helper()
	cs := c.Client()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("cluster %s: %v", c.ID, err)
		}
	}
	must(CreateNamespace(ctx, cs, "app", map[string]string{"topology.istio.io/network": "net-" + c.ID}))
	must(CreateNamespace(ctx, cs, "only-"+c.ID, nil))
	must(CreateNode(ctx, cs, "node-"+c.ID, map[string]string{"topology.kubernetes.io/zone": "zone-" + c.ID},
		fmt.Sprintf("203.0.113.%d", n), fmt.Sprintf("192.168.%d.10", n)))
	must(CreatePod(ctx, cs, Pod{
		Namespace:      "app",
		Name:           "web-0",
		Labels:         map[string]string{"app": "web"},
		Node:           "node-" + c.ID,
		ServiceAccount: "workload",
		IP:             fmt.Sprintf("10.%d.0.5", n),
		HostIP:         fmt.Sprintf("192.168.%d.10", n),
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Ready:          true,
	}))
	must(CreateService(ctx, cs, Service{
		Namespace: "app",
		Name:      "web",
		Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}))
	must(CreateEndpointSlice(ctx, cs, "app", "web", "web-abc",
		[]EndpointPort{{Name: "http", Port: 8080}},
		[]Endpoint{{IP: fmt.Sprintf("10.%d.0.5", n), Ready: true, Node: "node-" + c.ID, Pod: "web-0"}}))
	must(CreateService(ctx, cs, Service{
		Namespace: "app",
		Name:      "eastwest",
		Labels:    map[string]string{"topology.istio.io/network": "net-" + c.ID},
		Type:      corev1.ServiceTypeLoadBalancer,
		Ports:     []corev1.ServicePort{{Name: "tls", Port: 15443}},
	}))
	must(SetLoadBalancerIngress(ctx, cs, "app", "eastwest", fmt.Sprintf("198.51.100.%d", n), "gw."+c.ID+".example.com"))
}

// readFixture reads the fixture back through shared informers, as the
// discovery code will.
func readFixture(ctx context.Context, t *testing.T, c *Cluster) fixture {
	t.Helper()
	factory := informers.NewSharedInformerFactory(c.Client(), 0)
	nsLister := factory.Core().V1().Namespaces().Lister()
	nodeLister := factory.Core().V1().Nodes().Lister()
	podLister := factory.Core().V1().Pods().Lister()
	svcLister := factory.Core().V1().Services().Lister()
	sliceLister := factory.Discovery().V1().EndpointSlices().Lister()
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("cluster %s: informer of %v did not sync", c.ID, typ)
		}
	}

	var got fixture
	ns, err := nsLister.Get("app")
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	got.NamespaceLabels = ns.Labels
	all, err := nsLister.List(labels.Everything())
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	for _, ns := range all {
		if strings.HasPrefix(ns.Name, "only-") {
			got.OnlyHere = append(got.OnlyHere, ns.Name)
		}
	}
	slices.Sort(got.OnlyHere)

	node, err := nodeLister.Get("node-" + c.ID)
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	got.NodeAddresses = node.Status.Addresses
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			got.NodeReady = cond.Status
		}
	}

	pod, err := podLister.Pods("app").Get("web-0")
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	got.PodNode = pod.Spec.NodeName
	for _, ip := range pod.Status.PodIPs {
		got.PodIPs = append(got.PodIPs, ip.IP)
	}
	got.PodPhase = pod.Status.Phase
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady {
			got.PodReady = cond.Status
		}
	}

	svc, err := svcLister.Services("app").Get("web")
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	for _, p := range svc.Spec.Ports {
		got.ServicePorts = append(got.ServicePorts, fmt.Sprintf("%s/%d->%s", p.Name, p.Port, p.TargetPort.String()))
	}
	if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
		got.ClusterIPInCIDR = c.ServiceCIDR.Contains(ip)
	}

	sl, err := sliceLister.EndpointSlices("app").Get("web-abc")
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	got.SliceLabels = sl.Labels
	got.SliceEndpoints = summarizeEndpoints(sl)

	gw, err := svcLister.Services("app").Get("eastwest")
	if err != nil {
		t.Fatalf("cluster %s: %v", c.ID, err)
	}
	got.GatewayIngress = gw.Status.LoadBalancer.Ingress
	return got
}

func summarizeEndpoints(sl *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, e := range sl.Endpoints {
		s := fmt.Sprintf("%s ready=%t", strings.Join(e.Addresses, ","), e.Conditions.Ready != nil && *e.Conditions.Ready)
		if e.NodeName != nil {
			s += " node=" + *e.NodeName
		}
		if e.TargetRef != nil {
			s += " pod=" + e.TargetRef.Name
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestTwoClusters(t *testing.T) {
	t.Parallel()
	env := Start(t, Options{Clusters: 2})
	t.Logf("start of 2 clusters took %v", env.StartupTime)
	ctx := t.Context()

	if a, b := env.Clusters[0].ServiceCIDR, env.Clusters[1].ServiceCIDR; a.Overlaps(b) {
		t.Errorf("service CIDRs %v and %v of the two clusters overlap", a, b)
	}
	for i, c := range env.Clusters {
		writeFixture(ctx, t, c, i+1)
	}
	for i, c := range env.Clusters {
		if diff := cmp.Diff(wantFixture(c, i+1), readFixture(ctx, t, c)); diff != "" {
			t.Errorf("cluster %s read back through informers (-want +got):\n%s", c.ID, diff)
		}
	}

	t.Run("kubeconfig", func(t *testing.T) {
		for _, c := range env.Clusters {
			fromBytes, err := clientcmd.RESTConfigFromKubeConfig(c.Kubeconfig())
			if err != nil {
				t.Fatalf("cluster %s: load Kubeconfig(): %v", c.ID, err)
			}
			fromFile, err := clientcmd.BuildConfigFromFlags("", c.WriteKubeconfig(t))
			if err != nil {
				t.Fatalf("cluster %s: load WriteKubeconfig(): %v", c.ID, err)
			}
			for _, cfg := range []*rest.Config{fromBytes, fromFile} {
				cs, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					t.Fatalf("cluster %s: %v", c.ID, err)
				}
				if _, err := cs.CoreV1().Namespaces().Get(ctx, "only-"+c.ID, metav1.GetOptions{}); err != nil {
					t.Errorf("cluster %s: a fresh client from the kubeconfig cannot read the cluster's namespace: %v", c.ID, err)
				}
			}
			raw, err := clientcmd.Load(c.Kubeconfig())
			if err != nil {
				t.Fatalf("cluster %s: %v", c.ID, err)
			}
			if raw.CurrentContext != c.ID || raw.Clusters[c.ID] == nil || raw.AuthInfos[c.ID] == nil {
				t.Errorf("cluster %s: kubeconfig names are not the cluster ID: context %q, clusters %v", c.ID, raw.CurrentContext, raw.Clusters)
			}
		}

		// The CA is verified: cluster 1's kubeconfig aimed at cluster 2 fails.
		cfg, err := clientcmd.RESTConfigFromKubeConfig(env.Clusters[0].Kubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Host = env.Clusters[1].Host
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if uaErr := (x509.UnknownAuthorityError{}); !errors.As(err, &uaErr) {
			t.Errorf("cluster %s's CA against cluster %s: got error %v, want an unknown-authority error", env.Clusters[0].ID, env.Clusters[1].ID, err)
		}
	})

	t.Run("service account tokens", func(t *testing.T) {
		tokens := make([]string, len(env.Clusters))
		for i, c := range env.Clusters {
			cs := c.Client()
			if _, err := cs.CoreV1().ServiceAccounts("app").Create(ctx, &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Name: "workload"},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatalf("cluster %s: %v", c.ID, err)
			}
			pod, err := cs.CoreV1().Pods("app").Get(ctx, "web-0", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("cluster %s: %v", c.ID, err)
			}
			tr, err := cs.CoreV1().ServiceAccounts("app").CreateToken(ctx, "workload", &authnv1.TokenRequest{
				Spec: authnv1.TokenRequestSpec{
					Audiences:         []string{"istio-ca"},
					ExpirationSeconds: new(int64(600)),
					BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("cluster %s: TokenRequest: %v", c.ID, err)
			}
			tokens[i] = tr.Status.Token
		}
		type review struct {
			Authenticated bool
			Username      string
			PodName       []string
		}
		tests := []struct {
			name       string
			token      int // index of the cluster that issued the token
			reviewedBy int
			want       review
		}{
			{name: "own token of cluster 1", token: 0, reviewedBy: 0, want: review{true, "system:serviceaccount:app:workload", []string{"web-0"}}},
			{name: "own token of cluster 2", token: 1, reviewedBy: 1, want: review{true, "system:serviceaccount:app:workload", []string{"web-0"}}},
			{name: "cluster 1 token at cluster 2", token: 0, reviewedBy: 1},
			{name: "cluster 2 token at cluster 1", token: 1, reviewedBy: 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := env.Clusters[tt.reviewedBy]
				res, err := c.Client().AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
					Spec: authnv1.TokenReviewSpec{Token: tokens[tt.token], Audiences: []string{"istio-ca"}},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("TokenReview at cluster %s: %v", c.ID, err)
				}
				got := review{Authenticated: res.Status.Authenticated, Username: res.Status.User.Username}
				if pods, ok := res.Status.User.Extra["authentication.kubernetes.io/pod-name"]; ok {
					got.PodName = pods
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("TokenReview at cluster %s (-want +got):\n%s", c.ID, diff)
				}
			})
		}
	})
}

func TestControllerManagerEndpointSlices(t *testing.T) {
	t.Parallel()
	env := Start(t, Options{ClusterIDs: []string{"east"}, ControllerManager: true})
	t.Logf("start of 1 cluster with controller-manager took %v", env.StartupTime)
	ctx := t.Context()
	cs := env.Clusters[0].Client()

	if _, err := CreateNamespace(ctx, cs, "shop", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateNode(ctx, cs, "node-1", nil, "", "192.168.0.10"); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateService(ctx, cs, Service{
		Namespace: "shop",
		Name:      "echo",
		Selector:  map[string]string{"app": "echo"},
		Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := CreatePod(ctx, cs, Pod{
		Namespace: "shop",
		Name:      "echo-1",
		Labels:    map[string]string{"app": "echo"},
		Node:      "node-1",
		IP:        "10.30.0.7",
		Ports:     []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Ready:     true,
	}); err != nil {
		t.Fatal(err)
	}
	// A Pod the selector does not match stays out.
	if _, err := CreatePod(ctx, cs, Pod{
		Namespace: "shop", Name: "other", Labels: map[string]string{"app": "other"},
		Node: "node-1", IP: "10.30.0.8", Ready: true,
	}); err != nil {
		t.Fatal(err)
	}

	waitForControllerSlices(ctx, t, cs, "shop", "echo", []string{
		"ports [http/8080] endpoints [10.30.0.7 ready=true node=node-1 pod=echo-1]",
	})
	if _, err := SetPodReady(ctx, cs, "shop", "echo-1", false); err != nil {
		t.Fatal(err)
	}
	waitForControllerSlices(ctx, t, cs, "shop", "echo", []string{
		"ports [http/8080] endpoints [10.30.0.7 ready=false node=node-1 pod=echo-1]",
	})
}

// waitForControllerSlices polls the EndpointSlices the controller wrote for
// a Service until their summary is want, or fails after a deadline.
func waitForControllerSlices(ctx context.Context, t *testing.T, cs kubernetes.Interface, namespace, service string, want []string) {
	t.Helper()
	const timeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	selector := labels.Set{
		discoveryv1.LabelServiceName: service,
		discoveryv1.LabelManagedBy:   ManagedByController,
	}.String()
	var diff string
	for {
		list, err := cs.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err == nil {
			var got []string
			for i := range list.Items {
				sl := &list.Items[i]
				var ports []string
				for _, p := range sl.Ports {
					ports = append(ports, *p.Name+"/"+strconv.Itoa(int(*p.Port)))
				}
				got = append(got, fmt.Sprintf("ports %v endpoints %v", ports, summarizeEndpoints(sl)))
			}
			slices.Sort(got)
			if diff = cmp.Diff(want, got); diff == "" {
				return
			}
		} else {
			diff = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("EndpointSlices of %s/%s after %v (-want +got):\n%s", namespace, service, timeout, diff)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRetriesOnTakenPort hands etcd and the apiserver a port another process
// holds, as happens when packages pick ports in parallel, and expects the
// harness to start them again on fresh ports.
func TestRetriesOnTakenPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	taken := l.Addr().(*net.TCPAddr).Port

	var mu sync.Mutex
	picks := map[int]int{} // how many ports asked -> times asked
	pick := func(n int) ([]int, error) {
		ports, err := testkit.FreePorts(n)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if picks[n] == 0 {
			ports[0] = taken // etcd's client port (n=2), the apiserver's port (n=1)
		}
		picks[n]++
		return ports, nil
	}
	env := start(t, Options{}, pick)

	mu.Lock()
	got := map[int]int{2: picks[2], 1: picks[1]}
	mu.Unlock()
	if diff := cmp.Diff(map[int]int{2: 2, 1: 2}, got); diff != "" {
		t.Errorf("port picks per size (-want +got):\n%s", diff)
	}
	if _, err := env.Clusters[0].Client().CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("cluster started on the second attempt does not answer: %v", err)
	}
}
