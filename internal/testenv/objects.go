package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// ManagedByController is the endpointslice.kubernetes.io/managed-by value of
// the slices CreateEndpointSlice writes: the EndpointSlice controller's own,
// so readers treat them exactly as the controller's. (A running controller
// would also reconcile them; write slices by hand only for Services without
// a selector or without Options.ControllerManager.)
const ManagedByController = "endpointslice-controller.k8s.io"

// podImage is the image of the one container of a Pod; nothing pulls it.
const podImage = "registry.invalid/causeway-testenv:latest"

// CreateNamespace creates a Namespace with labels.
func CreateNamespace(ctx context.Context, cs kubernetes.Interface, name string, labels map[string]string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	created, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	return created, nil
}

// CreateNode creates a Node and sets the status a kubelet reports: its
// addresses (InternalIP, ExternalIP, each only when not empty, and
// Hostname) and a Ready condition.
func CreateNode(ctx context.Context, cs kubernetes.Interface, name string, labels map[string]string, externalIP, internalIP string) (*corev1.Node, error) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	created.Status = nodeStatus(name, externalIP, internalIP, metav1.Now())
	updated, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of node %s: %w", name, err)
	}
	return updated, nil
}

func nodeStatus(name, externalIP, internalIP string, now metav1.Time) corev1.NodeStatus {
	var addrs []corev1.NodeAddress
	if internalIP != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: internalIP})
	}
	if externalIP != "" {
		addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: externalIP})
	}
	addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return corev1.NodeStatus{
		Addresses: addrs,
		Conditions: []corev1.NodeCondition{{
			Type:               corev1.NodeReady,
			Status:             corev1.ConditionTrue,
			Reason:             "KubeletReady",
			LastHeartbeatTime:  now,
			LastTransitionTime: now,
		}},
	}
}

// Pod is what CreatePod writes: a Pod as a scheduler bound it and a kubelet
// reported it.
type Pod struct {
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Node is spec.nodeName. The EndpointSlice controller leaves out Pods
	// whose Node does not exist, so create the Node first.
	Node string
	// ServiceAccount is spec.serviceAccountName; it need not exist.
	ServiceAccount string
	// IP is status.podIP (and the first of status.podIPs); ExtraIPs follow
	// it in status.podIPs (dual stack).
	IP       string
	ExtraIPs []string
	// HostIP is status.hostIP, when not empty.
	HostIP string
	// Ports are the container ports (named ports resolve Services'
	// targetPort names).
	Ports []corev1.ContainerPort
	// Ready sets the Ready and ContainersReady conditions.
	Ready bool
}

// CreatePod creates the Pod p describes and then sets its status as a
// kubelet would: phase Running, its IPs and conditions.
func CreatePod(ctx context.Context, cs kubernetes.Interface, p Pod) (*corev1.Pod, error) {
	created, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, podObject(p), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	created.Status = podStatus(p, metav1.Now())
	updated, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set status of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return updated, nil
}

func podObject(p Pod) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   p.Namespace,
			Name:        p.Name,
			Labels:      p.Labels,
			Annotations: p.Annotations,
		},
		Spec: corev1.PodSpec{
			NodeName:           p.Node,
			ServiceAccountName: p.ServiceAccount,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: podImage,
				Ports: p.Ports,
			}},
		},
	}
}

func podStatus(p Pod, now metav1.Time) corev1.PodStatus {
	st := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    p.HostIP,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	st.Conditions = append(st.Conditions, readiness(p.Ready, now)...)
	if p.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: p.HostIP}}
	}
	if p.IP != "" {
		st.PodIP = p.IP
		st.PodIPs = []corev1.PodIP{{IP: p.IP}}
		for _, ip := range p.ExtraIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	return st
}

func readiness(ready bool, now metav1.Time) []corev1.PodCondition {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return []corev1.PodCondition{
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
	}
}

// SetPodReady sets the Ready and ContainersReady conditions of a Pod, as a
// kubelet does when its readiness probe changes.
func SetPodReady(ctx context.Context, cs kubernetes.Interface, namespace, name string, ready bool) (*corev1.Pod, error) {
	var updated *corev1.Pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		for _, c := range readiness(ready, now) {
			setPodCondition(&pod.Status, c)
		}
		updated, err = cs.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set readiness of pod %s/%s: %w", namespace, name, err)
	}
	return updated, nil
}

// setPodCondition replaces the condition of c's type, keeping its transition
// time when the status does not change, or appends c.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type != c.Type {
			continue
		}
		if st.Conditions[i].Status == c.Status {
			c.LastTransitionTime = st.Conditions[i].LastTransitionTime
		}
		st.Conditions[i] = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

// Service is what CreateService writes.
type Service struct {
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	// Selector selects the Pods behind the Service; without one no
	// controller writes EndpointSlices for it.
	Selector map[string]string
	// Type is ClusterIP when empty.
	Type corev1.ServiceType
	// Headless sets clusterIP None.
	Headless    bool
	Ports       []corev1.ServicePort
	ExternalIPs []string
}

// CreateService creates the Service s describes; the apiserver allocates its
// cluster IP (and node ports) from the cluster's ranges.
func CreateService(ctx context.Context, cs kubernetes.Interface, s Service) (*corev1.Service, error) {
	created, err := cs.CoreV1().Services(s.Namespace).Create(ctx, serviceObject(s), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create service %s/%s: %w", s.Namespace, s.Name, err)
	}
	return created, nil
}

func serviceObject(s Service) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   s.Namespace,
			Name:        s.Name,
			Labels:      s.Labels,
			Annotations: s.Annotations,
		},
		Spec: corev1.ServiceSpec{
			Type:        s.Type,
			Selector:    s.Selector,
			Ports:       s.Ports,
			ExternalIPs: s.ExternalIPs,
		},
	}
	if s.Headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return svc
}

// SetLoadBalancerIngress sets status.loadBalancer.ingress of a Service, as a
// cloud controller does: each address that parses as an IP becomes an ip
// entry, any other a hostname entry.
func SetLoadBalancerIngress(ctx context.Context, cs kubernetes.Interface, namespace, name string, addrs ...string) (*corev1.Service, error) {
	var updated *corev1.Service
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		svc.Status.LoadBalancer.Ingress = loadBalancerIngress(addrs)
		updated, err = cs.CoreV1().Services(namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set load-balancer ingress of service %s/%s: %w", namespace, name, err)
	}
	return updated, nil
}

func loadBalancerIngress(addrs []string) []corev1.LoadBalancerIngress {
	ingress := make([]corev1.LoadBalancerIngress, 0, len(addrs))
	for _, a := range addrs {
		if _, err := netip.ParseAddr(a); err == nil {
			ingress = append(ingress, corev1.LoadBalancerIngress{IP: a})
		} else {
			ingress = append(ingress, corev1.LoadBalancerIngress{Hostname: a})
		}
	}
	return ingress
}

// EndpointPort is one port of an EndpointSlice. Protocol defaults to TCP.
type EndpointPort struct {
	Name        string
	Port        int32
	Protocol    corev1.Protocol
	AppProtocol string
}

// Endpoint is one endpoint of an EndpointSlice.
type Endpoint struct {
	IP string
	// Ready is the readiness of the Pod behind the endpoint. A Terminating
	// endpoint is not ready but still serving when Ready is set, as the
	// EndpointSlice controller writes it.
	Ready       bool
	Terminating bool
	Node        string
	Zone        string
	Hostname    string
	// Pod, when set, names the Pod (in the slice's namespace) of the
	// endpoint's targetRef.
	Pod string
}

// CreateEndpointSlice creates an EndpointSlice of Service svcName, labeled
// as the EndpointSlice controller labels its own (kubernetes.io/service-name
// and endpointslice.kubernetes.io/managed-by, see [ManagedByController]).
// The address type follows the endpoints' IPs (IPv4 when there are none);
// mixing families is an error.
func CreateEndpointSlice(ctx context.Context, cs kubernetes.Interface, namespace, svcName, sliceName string, ports []EndpointPort, endpoints []Endpoint) (*discoveryv1.EndpointSlice, error) {
	slice, err := endpointSliceObject(namespace, svcName, sliceName, ports, endpoints)
	if err != nil {
		return nil, err
	}
	created, err := cs.DiscoveryV1().EndpointSlices(namespace).Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create endpointslice %s/%s: %w", namespace, sliceName, err)
	}
	return created, nil
}

func endpointSliceObject(namespace, svcName, sliceName string, ports []EndpointPort, endpoints []Endpoint) (*discoveryv1.EndpointSlice, error) {
	addrType, err := addressType(endpoints)
	if err != nil {
		return nil, fmt.Errorf("endpointslice %s/%s: %w", namespace, sliceName, err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      sliceName,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svcName,
				discoveryv1.LabelManagedBy:   ManagedByController,
			},
		},
		AddressType: addrType,
		Ports:       make([]discoveryv1.EndpointPort, 0, len(ports)),
		Endpoints:   make([]discoveryv1.Endpoint, 0, len(endpoints)),
	}
	for _, p := range ports {
		ep := discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol}
		if p.Protocol == "" {
			tcp := corev1.ProtocolTCP
			ep.Protocol = &tcp
		}
		if p.AppProtocol != "" {
			ep.AppProtocol = &p.AppProtocol
		}
		slice.Ports = append(slice.Ports, ep)
	}
	for _, e := range endpoints {
		ready := e.Ready && !e.Terminating
		ep := discoveryv1.Endpoint{
			Addresses: []string{e.IP},
			Conditions: discoveryv1.EndpointConditions{
				Ready:       &ready,
				Serving:     &e.Ready,
				Terminating: &e.Terminating,
			},
		}
		if e.Node != "" {
			ep.NodeName = &e.Node
		}
		if e.Zone != "" {
			ep.Zone = &e.Zone
		}
		if e.Hostname != "" {
			ep.Hostname = &e.Hostname
		}
		if e.Pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: e.Pod}
		}
		slice.Endpoints = append(slice.Endpoints, ep)
	}
	return slice, nil
}

func addressType(endpoints []Endpoint) (discoveryv1.AddressType, error) {
	var v4, v6 bool
	for _, e := range endpoints {
		addr, err := netip.ParseAddr(e.IP)
		if err != nil {
			return "", fmt.Errorf("endpoint address %q is not an IP: %w", e.IP, err)
		}
		if addr.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	switch {
	case v4 && v6:
		return "", errors.New("endpoints mix IPv4 and IPv6 addresses; an EndpointSlice holds one family, write one slice per family")
	case v6:
		return discoveryv1.AddressTypeIPv6, nil
	default:
		return discoveryv1.AddressTypeIPv4, nil
	}
}
