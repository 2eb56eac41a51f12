package kube

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
)

func TestStrip(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	owners := []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d"}}
	ready := true
	host, node, zone := "web-1", "n1", "z1"
	tests := []struct {
		name string
		in   any
		want any
	}{{
		name: "pod keeps its labels, service account, node and IPs",
		in: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "app", Name: "web-1", ResourceVersion: "7", ManagedFields: managed, OwnerReferences: owners,
				Labels:      map[string]string{"app": "web", model.LabelNetwork: "n1", model.LabelTLSMode: "istio", "pod-template-hash": "5d"},
				Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			},
			Spec: corev1.PodSpec{
				NodeName: "n1", ServiceAccountName: "web",
				Containers: []corev1.Container{{Name: "app", Image: "app:1"}},
				Volumes:    []corev1.Volume{{Name: "token"}},
			},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "app"}},
			},
		},
		want: &slimPod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-1", ResourceVersion: "7",
				Labels: map[string]string{"app": "web", model.LabelNetwork: "n1", model.LabelTLSMode: "istio", "pod-template-hash": "5d"}},
			NodeName: "n1", ServiceAccountName: "web",
			PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
		},
	}, {
		name: "node keeps every label, its addresses and its kubelet version",
		in: &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", ManagedFields: managed, Labels: map[string]string{"a": "b", model.LabelZone: "z1"},
				Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
			Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"},
			Status: corev1.NodeStatus{
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady}},
				Images:     []corev1.ContainerImage{{Names: []string{"x"}}},
				NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.33.1", OSImage: "Ubuntu", MachineID: "m"},
			},
		},
		want: &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"a": "b", model.LabelZone: "z1"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}},
				NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.33.1"}},
		},
	}, {
		name: "service keeps gateway labels, node selector annotation, spec and load balancer",
		in: &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "gw", ManagedFields: managed,
				Labels:      map[string]string{"app": "gw", model.LabelNetwork: "n1", model.LabelGatewayPort: "15443"},
				Annotations: map[string]string{model.AnnotationNodeSelect: `{"a":"b"}`, "other": "x"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "gw"}, ClusterIP: "10.96.0.1",
				Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}},
				Conditions: []metav1.Condition{{Type: "x"}}},
		},
		want: &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "gw",
				Labels:      map[string]string{model.LabelNetwork: "n1", model.LabelGatewayPort: "15443"},
				Annotations: map[string]string{model.AnnotationNodeSelect: `{"a":"b"}`}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.1",
				Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
		},
	}, {
		name: "endpointslice keeps its service label, ports and endpoints without hints",
		in: &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-x", ManagedFields: managed, OwnerReferences: owners,
				Labels: map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				Hostname: &host, NodeName: &node, Zone: &zone,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "app", Name: "web-1", UID: "u1", ResourceVersion: "9"},
				Hints:     &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z1"}}},
			}},
		},
		want: &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "app", Name: "web-x", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				NodeName: &node, Zone: &zone,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "app", Name: "web-1"},
			}},
		},
	}, {
		name: "namespace keeps only its network label",
		in: &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{model.LabelNetwork: "n1", "kubernetes.io/metadata.name": "istio-system"}},
			Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		},
		want: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{model.LabelNetwork: "n1"}}},
	}, {
		name: "other types pass unchanged",
		in:   &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", ManagedFields: managed}},
		want: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", ManagedFields: managed}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := strip(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("strip (-want +got)\n%s", d)
			}
		})
	}
}

func TestChanged(t *testing.T) {
	// Pods as the informer holds them: stripped.
	pod := func(rv string, labels map[string]string, ip, sa, node string) any {
		obj, err := strip(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv, Labels: labels},
			Spec:   corev1.PodSpec{ServiceAccountName: sa, NodeName: node},
			Status: corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, Phase: corev1.PodRunning}})
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	p := func(rv string, labels map[string]string, ip string) any { return pod(rv, labels, ip, "web", "n1") }
	n := func(rv string, labels map[string]string, ip string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv, Labels: labels},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	}
	svc := func(rv, ip string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}}}}
	}
	mtls := map[string]string{model.LabelTLSMode: "istio"}
	tests := []struct {
		name     string
		old, new any
		want     bool
	}{
		{"resync", p("1", mtls, "10.0.0.1"), p("1", mtls, "10.0.0.1"), false},
		{"pod status noise", p("1", mtls, "10.0.0.1"), p("2", mtls, "10.0.0.1"), false},
		{"pod label", p("1", nil, "10.0.0.1"), p("2", mtls, "10.0.0.1"), true},
		{"pod label a workload selector may match", p("1", mtls, "10.0.0.1"), p("2", map[string]string{model.LabelTLSMode: "istio", "app": "web"}, "10.0.0.1"), true},
		{"pod IP", p("1", mtls, "10.0.0.1"), p("2", mtls, "10.0.0.2"), true},
		{"pod without resource versions compares content", p("", mtls, "10.0.0.1"), p("", nil, "10.0.0.1"), true},
		{"pod service account", p("1", mtls, "10.0.0.1"), pod("2", mtls, "10.0.0.1", "other", "n1"), true},
		{"pod node", p("1", mtls, "10.0.0.1"), pod("2", mtls, "10.0.0.1", "web", "n2"), true},
		{"node heartbeat", n("1", nil, "192.168.0.1"), n("2", nil, "192.168.0.1"), false},
		{"node label", n("1", nil, "192.168.0.1"), n("2", mtls, "192.168.0.1"), true},
		{"node address", n("1", nil, "192.168.0.1"), n("2", nil, "192.168.0.2"), true},
		{"node kubelet upgrade", n("1", nil, "192.168.0.1"), func() *corev1.Node {
			u := n("2", nil, "192.168.0.1")
			u.Status.NodeInfo.KubeletVersion = "v1.33.0"
			return u
		}(), true},
		{"service status same", svc("1", "1.1.1.1"), svc("2", "1.1.1.1"), false},
		{"service load balancer", svc("1", "1.1.1.1"), svc("2", "2.2.2.2"), true},
		{"slice always", &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}},
			&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "2"}}, true},
		{"namespace other label", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "2"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := changed(tt.old, tt.new); got != tt.want {
				t.Errorf("changed() = %t, want %t", got, tt.want)
			}
		})
	}
}

// TestSlimPod checks that a slimPod gives kubeconv what the Pod it came from
// gives, and that its deep copy shares nothing.
func TestSlimPod(t *testing.T) {
	in := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web-1", ResourceVersion: "7",
			Labels: map[string]string{model.LabelNetwork: "n1", model.LabelTLSMode: "istio", "app": "web"}},
		Spec:   corev1.PodSpec{NodeName: "n1", ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}},
	}
	want := kubeconv.Pod("c1", in.DeepCopy())
	obj, err := strip(in.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := obj.(*slimPod)
	if !ok {
		t.Fatalf("strip of a Pod gave a %T", obj)
	}
	if d := cmp.Diff(want, kubeconv.Pod("c1", sp.pod())); d != "" {
		t.Errorf("kubeconv.Pod of the slim pod (-want +got)\n%s", d)
	}
	cp, ok := sp.DeepCopyObject().(*slimPod)
	if !ok {
		t.Fatalf("DeepCopyObject gave a %T", sp.DeepCopyObject())
	}
	if d := cmp.Diff(sp, cp); d != "" {
		t.Errorf("deep copy (-orig +copy)\n%s", d)
	}
	cp.PodIPs[0].IP = "10.9.9.9"
	if sp.PodIPs[0].IP != "10.0.0.1" {
		t.Error("the deep copy shares IPs with the original")
	}
	// Without the labels, kubeconv sees none.
	bare := in.DeepCopy()
	bare.Labels = nil
	obj, err = strip(bare.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(kubeconv.Pod("c1", bare), kubeconv.Pod("c1", obj.(*slimPod).pod())); d != "" {
		t.Errorf("kubeconv.Pod of an unlabeled slim pod (-want +got)\n%s", d)
	}
	if got := unsafe.Sizeof(slimPod{}); got > unsafe.Sizeof(corev1.Pod{})/3 {
		t.Errorf("a slimPod is %d bytes, a Pod %d: not worth it", got, unsafe.Sizeof(corev1.Pod{}))
	}
}
