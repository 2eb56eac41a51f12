package e2e

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/testenv"
)

// The sample's objects, as Istio's samples/helloworld and samples/sleep
// with injection write them, and a kubelet and the EndpointSlice controller
// would report them.
const (
	sampleNamespace = "sample"
	helloworldPort  = 5000
	helloworldSA    = "helloworld"
	sleepSA         = "sleep"
)

// createMeshNamespaces creates istio-system labeled with the cluster's
// network (the home lab's `kubectl label namespace istio-system
// topology.istio.io/network=network1`) and the sample namespace with its
// service accounts.
func createMeshNamespaces(ctx context.Context, cs kubernetes.Interface, network string) error {
	if _, err := testenv.CreateNamespace(ctx, cs, systemNamespace, map[string]string{labelNetwork: network}); err != nil {
		return err
	}
	if _, err := testenv.CreateNamespace(ctx, cs, sampleNamespace, map[string]string{"istio-injection": "enabled"}); err != nil {
		return err
	}
	for _, sa := range []string{helloworldSA, sleepSA} {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sampleNamespace, Name: sa}}
		if _, err := cs.CoreV1().ServiceAccounts(sampleNamespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create service account %s/%s: %w", sampleNamespace, sa, err)
		}
	}
	return nil
}

// helloworldService creates Service helloworld (port 5000, http), as in
// every cluster of the home lab, and returns the cluster IP the apiserver gave
// it (what the cluster's DNS answers for helloworld.sample).
func helloworldService(ctx context.Context, cs kubernetes.Interface) (netip.Addr, error) {
	svc, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: sampleNamespace,
		Name:      "helloworld",
		Labels:    map[string]string{"app": "helloworld", "service": "helloworld"},
		Selector:  map[string]string{"app": "helloworld"},
		Ports:     []corev1.ServicePort{{Name: "http", Port: helloworldPort, TargetPort: intstr.FromInt32(helloworldPort)}},
	})
	if err != nil {
		return netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("the cluster IP of %s/helloworld: %w", sampleNamespace, err)
	}
	return ip, nil
}

// helloworldPod creates a Running, Ready, injected pod helloworld-VERSION
// with its EndpointSlice.
func helloworldPod(ctx context.Context, cs kubernetes.Interface, version, podIP, node string) error {
	name := "helloworld-" + version
	_, err := testenv.CreatePod(ctx, cs, testenv.Pod{
		Namespace: sampleNamespace,
		Name:      name,
		Labels: map[string]string{
			"app":                                 "helloworld",
			"version":                             version,
			labelTLSMode:                          "istio",
			"service.istio.io/canonical-name":     "helloworld",
			"service.istio.io/canonical-revision": version,
		},
		Node:           node,
		ServiceAccount: helloworldSA,
		IP:             podIP,
		Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: helloworldPort}},
		Ready:          true,
	})
	if err != nil {
		return err
	}
	_, err = testenv.CreateEndpointSlice(ctx, cs, sampleNamespace, "helloworld", "helloworld-"+version,
		[]testenv.EndpointPort{{Name: "http", Port: helloworldPort}},
		[]testenv.Endpoint{{IP: podIP, Ready: true, Node: node, Pod: name}})
	return err
}

// eastWestGateway describes Istio's east-west gateway of one cluster: its
// Service (as samples/multicluster/gen-eastwest-gateway.sh makes it) and
// its one pod.
type eastWestGateway struct {
	Network string
	// Type is LoadBalancer (with LoadBalancerIP as its ingress) or
	// NodePort (with NodePort for port tls 15443).
	Type           corev1.ServiceType
	LoadBalancerIP string
	NodePort       int32
	PodName        string
	PodIP          string
	// Node runs the pod; a NodePort gateway is reached on its address.
	Node string
}

// create writes the gateway's Service (and load-balancer status), pod and
// EndpointSlice.
func (g eastWestGateway) create(ctx context.Context, cs kubernetes.Interface) error {
	labels := map[string]string{"app": eastWestName, "istio": "eastwestgateway", labelNetwork: g.Network}
	ports := []corev1.ServicePort{
		{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021)},
		{Name: "tls", Port: gatewayPort, TargetPort: intstr.FromInt32(gatewayPort), NodePort: g.NodePort},
		{Name: "tls-istiod", Port: 15012, TargetPort: intstr.FromInt32(15012)},
		{Name: "tls-webhook", Port: 15017, TargetPort: intstr.FromInt32(15017)},
	}
	if _, err := testenv.CreateService(ctx, cs, testenv.Service{
		Namespace: systemNamespace,
		Name:      eastWestName,
		Labels:    labels,
		Selector:  map[string]string{"app": eastWestName, "istio": "eastwestgateway"},
		Type:      g.Type,
		Ports:     ports,
	}); err != nil {
		return err
	}
	if g.LoadBalancerIP != "" {
		if _, err := testenv.SetLoadBalancerIngress(ctx, cs, systemNamespace, eastWestName, g.LoadBalancerIP); err != nil {
			return err
		}
	}
	if _, err := testenv.CreatePod(ctx, cs, testenv.Pod{
		Namespace:      systemNamespace,
		Name:           g.PodName,
		Labels:         labels,
		Node:           g.Node,
		ServiceAccount: "istio-eastwestgateway-service-account",
		IP:             g.PodIP,
		Ports:          []corev1.ContainerPort{{Name: "tls", ContainerPort: gatewayPort}},
		Ready:          true,
	}); err != nil {
		return err
	}
	_, err := testenv.CreateEndpointSlice(ctx, cs, systemNamespace, eastWestName, eastWestName+"-1",
		[]testenv.EndpointPort{
			{Name: "status-port", Port: 15021},
			{Name: "tls", Port: gatewayPort},
			{Name: "tls-istiod", Port: 15012},
			{Name: "tls-webhook", Port: 15017},
		},
		[]testenv.Endpoint{{IP: g.PodIP, Ready: true, Node: g.Node, Pod: g.PodName}})
	return err
}
