package kubeconv

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/model"
)

func gatewayService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "istio-system", Name: "istio-eastwestgateway",
			Labels: map[string]string{model.LabelNetwork: "network2", model.LabelGatewayPort: "15443"},
			Annotations: map[string]string{
				model.AnnotationNodeSelect: `{"kubernetes.io/os": "linux"}`,
			},
		},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeNodePort,
			ClusterIP: "10.97.0.20",
			Ports: []corev1.ServicePort{
				{Name: "status-port", Port: 15021, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15021), NodePort: 31021},
				{Name: "tls", Port: 15443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15443), NodePort: 31443},
			},
		},
	}
}

func TestService(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*corev1.Service)
		want   *model.Service
	}{
		{
			name: "nodeport gateway",
			want: &model.Service{
				Cluster: "c2", Namespace: "istio-system", Name: "istio-eastwestgateway",
				Type: model.ServiceTypeNodePort, ClusterIP: "10.97.0.20",
				Ports: []model.ServicePort{
					{Name: "status-port", Port: 15021, Protocol: "TCP", TargetPort: 15021, NodePort: 31021},
					{Name: "tls", Port: 15443, Protocol: "TCP", TargetPort: 15443, NodePort: 31443},
				},
				Network: "network2", GatewayPort: 15443,
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			},
		},
		{
			name: "load balancer with ingress IPs, hostnames and external IPs",
			modify: func(s *corev1.Service) {
				s.Labels = map[string]string{model.LabelNetwork: "network1"}
				s.Annotations = nil
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.Ports = s.Spec.Ports[1:]
				s.Spec.ExternalIPs = []string{"192.168.1.250"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{
					{IP: "192.168.1.240"}, {Hostname: "gw.example.com"}, {IP: "2001:db8::1", Hostname: "gw6.example.com"},
				}
			},
			want: &model.Service{
				Cluster: "c2", Namespace: "istio-system", Name: "istio-eastwestgateway",
				Type: model.ServiceTypeLoadBalancer, ClusterIP: "10.97.0.20",
				Ports:                 []model.ServicePort{{Name: "tls", Port: 15443, Protocol: "TCP", TargetPort: 15443, NodePort: 31443}},
				ExternalIPs:           []string{"192.168.1.250"},
				LoadBalancerIPs:       []string{"192.168.1.240", "2001:db8::1"},
				LoadBalancerHostnames: []string{"gw.example.com", "gw6.example.com"},
				Network:               "network1",
			},
		},
		{
			name: "plain service: default type, named, numeric-string and unset target ports, headless",
			modify: func(s *corev1.Service) {
				s.Namespace, s.Name = "sample", "helloworld"
				s.Labels, s.Annotations = nil, nil
				s.Spec.Type = ""
				s.Spec.ClusterIP = corev1.ClusterIPNone
				s.Spec.Ports = []corev1.ServicePort{
					{Name: "http", Port: 5000, TargetPort: intstr.FromString("web")},
					{Name: "grpc", Port: 5001, TargetPort: intstr.FromString("5002")},
					{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolUDP},
				}
			},
			want: &model.Service{
				Cluster: "c2", Namespace: "sample", Name: "helloworld", Type: model.ServiceTypeClusterIP,
				Ports: []model.ServicePort{
					{Name: "http", Port: 5000, TargetPortName: "web"},
					{Name: "grpc", Port: 5001, TargetPort: 5002},
					{Name: "metrics", Port: 9090, Protocol: "UDP"},
				},
			},
		},
		{
			name: "empty node selector selects every node",
			modify: func(s *corev1.Service) {
				s.Annotations[model.AnnotationNodeSelect] = `{}`
				delete(s.Labels, model.LabelGatewayPort)
			},
			want: &model.Service{
				Cluster: "c2", Namespace: "istio-system", Name: "istio-eastwestgateway",
				Type: model.ServiceTypeNodePort, ClusterIP: "10.97.0.20",
				Ports: []model.ServicePort{
					{Name: "status-port", Port: 15021, Protocol: "TCP", TargetPort: 15021, NodePort: 31021},
					{Name: "tls", Port: 15443, Protocol: "TCP", TargetPort: 15443, NodePort: 31443},
				},
				Network: "network2", NodeSelector: map[string]string{},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := gatewayService()
			if tc.modify != nil {
				tc.modify(s)
			}
			got, err := Service("c2", s)
			if err != nil {
				t.Fatalf("Service: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Service (-want +got):\n%s", diff)
			}
		})
	}
}

// A bad gateway label or annotation does not drop the Service (it did,
// taking the gateway and its network's reachability with it): the value is
// ignored, as Istio does, and said in Ignored.
func TestServiceIgnoresBadGatewayAnnotations(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*corev1.Service)
		want   []string // substrings of the one Ignored entry
	}{
		{"gateway port not a number", func(s *corev1.Service) { s.Labels[model.LabelGatewayPort] = "tls" },
			[]string{model.LabelGatewayPort, `"tls"`, "1-65535"}},
		{"gateway port zero", func(s *corev1.Service) { s.Labels[model.LabelGatewayPort] = "0" },
			[]string{model.LabelGatewayPort}},
		{"gateway port too big", func(s *corev1.Service) { s.Labels[model.LabelGatewayPort] = "70000" },
			[]string{`"70000"`}},
		{"node selector bad JSON", func(s *corev1.Service) { s.Annotations[model.AnnotationNodeSelect] = `{kubernetes.io/os: linux}` },
			[]string{model.AnnotationNodeSelect, "JSON map"}},
		{"node selector not a map", func(s *corev1.Service) { s.Annotations[model.AnnotationNodeSelect] = `["linux"]` },
			[]string{model.AnnotationNodeSelect}},
		{"node selector null", func(s *corev1.Service) { s.Annotations[model.AnnotationNodeSelect] = `null` },
			[]string{model.AnnotationNodeSelect, "not a JSON object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := gatewayService()
			tc.modify(s)
			got, err := Service("c2", s)
			if err != nil {
				t.Fatalf("Service: %v, want the Service kept", err)
			}
			if len(got.Ignored) != 1 {
				t.Fatalf("Ignored = %q, want one entry", got.Ignored)
			}
			for _, w := range tc.want {
				if !strings.Contains(got.Ignored[0], w) {
					t.Errorf("Ignored %q does not contain %q", got.Ignored[0], w)
				}
			}
			if strings.HasPrefix(tc.name, "gateway port") && got.GatewayPort != 0 {
				t.Errorf("GatewayPort = %d, want 0 (the default)", got.GatewayPort)
			}
			if strings.HasPrefix(tc.name, "node selector") && got.NodeSelector != nil {
				t.Errorf("NodeSelector = %v, want nil (no selector)", got.NodeSelector)
			}
			if len(got.Ports) != 2 || got.Network != "network2" {
				t.Errorf("the rest of the Service is lost: %+v", got)
			}
		})
	}
	s := gatewayService()
	s.Labels[model.LabelGatewayPort] = "\x1b[31m" + strings.Repeat("9", 100)
	got, err := Service("c2", s)
	if err != nil || len(got.Ignored) != 1 || strings.ContainsRune(got.Ignored[0], 0x1b) || len(got.Ignored[0]) > 300 {
		t.Errorf("Ignored = %q, %v: want the value quoted and cut", got.Ignored, err)
	}
}

func TestServiceErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*corev1.Service)
		want   []string // substrings of the error
	}{
		{"port zero", func(s *corev1.Service) { s.Spec.Ports[1].Port = 0 },
			[]string{"c2/istio-system/istio-eastwestgateway", `spec.ports[1] ("tls")`, "port 0"}},
		{"node port negative", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = -1 },
			[]string{"spec.ports[0]", "nodePort -1"}},
		{"target port out of range", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(70000) },
			[]string{"spec.ports[0]", "targetPort 70000"}},
		{"target port numeric string zero", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("0") },
			[]string{"spec.ports[0]", "targetPort 0"}},
		{"bad cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.300" },
			[]string{"spec.clusterIP", `"10.0.0.300"`}},
		{"bad external IP", func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"gw.example.com"} },
			[]string{"spec.externalIPs", `"gw.example.com"`}},
		{"bad ingress IP", func(s *corev1.Service) {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3"}}
		}, []string{"status.loadBalancer.ingress[0].ip", `"1.2.3"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := gatewayService()
			tc.modify(s)
			got, err := Service("c2", s)
			if err == nil {
				t.Fatalf("Service = %+v, want an error", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Service("c2", nil); err == nil {
		t.Error("Service(nil): no error")
	}
}

func helloSlice() *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "sample", Name: "helloworld-abcde",
			Labels: map[string]string{discoveryv1.LabelServiceName: "helloworld"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: new("http"), Port: new(int32(5000)), Protocol: new(corev1.ProtocolTCP)},
		},
		Endpoints: []discoveryv1.Endpoint{
			{
				Addresses:  []string{"10.20.1.5"},
				Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
				NodeName:   new("node-a"),
				Zone:       new("zone-2"),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "sample", Name: "helloworld-v2-1"},
			},
			{
				Addresses:  []string{"10.20.2.6"},
				Conditions: discoveryv1.EndpointConditions{Ready: new(false)},
			},
			{Addresses: []string{"10.20.3.7"}}, // ready unset: ready
		},
	}
}

func TestEndpointSlice(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*discoveryv1.EndpointSlice)
		want   *model.EndpointSlice
	}{
		{
			name: "ready, not ready and unset conditions",
			want: &model.EndpointSlice{
				Cluster: "c2", Namespace: "sample", Name: "helloworld-abcde", ServiceName: "helloworld",
				Ports: []model.EndpointPort{{Name: "http", Port: 5000, Protocol: "TCP"}},
				Endpoints: []model.SliceEndpoint{
					{Addresses: []string{"10.20.1.5"}, Ready: true, NodeName: "node-a", Zone: "zone-2", Pod: "helloworld-v2-1"},
					{Addresses: []string{"10.20.2.6"}},
					{Addresses: []string{"10.20.3.7"}, Ready: true},
				},
			},
		},
		{
			name: "unnamed and unnumbered ports, non-pod target, IPv6",
			modify: func(es *discoveryv1.EndpointSlice) {
				es.AddressType = discoveryv1.AddressTypeIPv6
				es.Ports = []discoveryv1.EndpointPort{{Port: new(int32(80))}, {Name: new("all")}}
				es.Endpoints = []discoveryv1.Endpoint{{
					Addresses: []string{"fd00::5"},
					TargetRef: &corev1.ObjectReference{Kind: "Node", Name: "node-a"},
				}, {
					Addresses: []string{"fd00::6"},
					TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "elsewhere", Name: "p"},
				}}
			},
			want: &model.EndpointSlice{
				Cluster: "c2", Namespace: "sample", Name: "helloworld-abcde", ServiceName: "helloworld",
				Ports: []model.EndpointPort{{Port: 80}},
				Endpoints: []model.SliceEndpoint{
					{Addresses: []string{"fd00::5"}, Ready: true},
					{Addresses: []string{"fd00::6"}, Ready: true},
				},
			},
		},
		{
			name: "no ports, no endpoints",
			modify: func(es *discoveryv1.EndpointSlice) {
				es.Ports, es.Endpoints = nil, nil
			},
			want: &model.EndpointSlice{Cluster: "c2", Namespace: "sample", Name: "helloworld-abcde", ServiceName: "helloworld"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es := helloSlice()
			if tc.modify != nil {
				tc.modify(es)
			}
			got, err := EndpointSlice("c2", es)
			if err != nil {
				t.Fatalf("EndpointSlice: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("EndpointSlice (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpointSliceErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*discoveryv1.EndpointSlice)
		is     error
		want   []string
	}{
		{"no service label", func(es *discoveryv1.EndpointSlice) { es.Labels = nil },
			ErrNoServiceName, []string{"c2/sample/helloworld-abcde", discoveryv1.LabelServiceName}},
		{"FQDN", func(es *discoveryv1.EndpointSlice) { es.AddressType = discoveryv1.AddressTypeFQDN },
			ErrFQDNSlice, []string{"c2/sample/helloworld-abcde", "IPv4 or IPv6"}},
		{"unknown address type", func(es *discoveryv1.EndpointSlice) { es.AddressType = "IPX" },
			nil, []string{"c2/sample/helloworld-abcde", `"IPX"`}},
		{"port out of range", func(es *discoveryv1.EndpointSlice) { es.Ports[0].Port = new(int32(0)) },
			nil, []string{"ports[0]", "port 0"}},
		{"address not an IP", func(es *discoveryv1.EndpointSlice) { es.Endpoints[1].Addresses = []string{"helloworld"} },
			nil, []string{"endpoints[1]", `"helloworld"`}},
		{"IPv6 address in IPv4 slice", func(es *discoveryv1.EndpointSlice) { es.Endpoints[2].Addresses = []string{"fd00::1"} },
			nil, []string{"endpoints[2]", "addressType IPv4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es := helloSlice()
			tc.modify(es)
			got, err := EndpointSlice("c2", es)
			if err == nil {
				t.Fatalf("EndpointSlice = %+v, want an error", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := EndpointSlice("c2", nil); err == nil {
		t.Error("EndpointSlice(nil): no error")
	}
}

func TestPod(t *testing.T) {
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: "sample", Name: "helloworld-v2-1",
				Labels: map[string]string{model.LabelNetwork: "network2", model.LabelTLSMode: "istio", "app": "helloworld"},
			},
			Spec: corev1.PodSpec{ServiceAccountName: "helloworld", NodeName: "node-a"},
			Status: corev1.PodStatus{
				PodIP:  "10.20.1.5",
				PodIPs: []corev1.PodIP{{IP: "10.20.1.5"}, {IP: "fd00::5"}},
			},
		}
	}
	tests := []struct {
		name   string
		modify func(*corev1.Pod)
		want   *model.Pod
	}{
		{"dual stack", nil, &model.Pod{
			Cluster: "c2", Namespace: "sample", Name: "helloworld-v2-1", IPs: []string{"10.20.1.5", "fd00::5"},
			Network: "network2", TLSMode: "istio", ServiceAccount: "helloworld", NodeName: "node-a",
			Labels: map[string]string{model.LabelNetwork: "network2", model.LabelTLSMode: "istio", "app": "helloworld"},
		}},
		{"podIP only", func(p *corev1.Pod) { p.Status.PodIPs = nil }, &model.Pod{
			Cluster: "c2", Namespace: "sample", Name: "helloworld-v2-1", IPs: []string{"10.20.1.5"},
			Network: "network2", TLSMode: "istio", ServiceAccount: "helloworld", NodeName: "node-a",
			Labels: map[string]string{model.LabelNetwork: "network2", model.LabelTLSMode: "istio", "app": "helloworld"},
		}},
		{"pending, no labels", func(p *corev1.Pod) {
			p.Labels = nil
			p.Spec = corev1.PodSpec{}
			p.Status = corev1.PodStatus{}
		}, &model.Pod{Cluster: "c2", Namespace: "sample", Name: "helloworld-v2-1"}},
		{"unparsable IP left out", func(p *corev1.Pod) { p.Status.PodIPs[1].IP = "bogus" }, &model.Pod{
			Cluster: "c2", Namespace: "sample", Name: "helloworld-v2-1", IPs: []string{"10.20.1.5"},
			Network: "network2", TLSMode: "istio", ServiceAccount: "helloworld", NodeName: "node-a",
			Labels: map[string]string{model.LabelNetwork: "network2", model.LabelTLSMode: "istio", "app": "helloworld"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			if tc.modify != nil {
				tc.modify(p)
			}
			if diff := cmp.Diff(tc.want, Pod("c2", p)); diff != "" {
				t.Errorf("Pod (-want +got):\n%s", diff)
			}
		})
	}
	if Pod("c2", nil) != nil {
		t.Error("Pod(nil) != nil")
	}
}

func TestNode(t *testing.T) {
	labels := map[string]string{model.LabelRegion: "home", model.LabelZone: "zone-2", "kubernetes.io/os": "linux"}
	tests := []struct {
		name  string
		addrs []corev1.NodeAddress
		want  *model.Node
	}{
		{"internal and external", []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "node-a"},
			{Type: corev1.NodeInternalIP, Address: "192.168.2.21"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.21"},
			{Type: corev1.NodeInternalIP, Address: "fd00::21"},
		}, &model.Node{
			Cluster: "c2", Name: "node-a", Labels: labels,
			ExternalIPs: []string{"203.0.113.21"}, InternalIPs: []string{"192.168.2.21", "fd00::21"},
		}},
		{"internal only", []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.2.21"}},
			&model.Node{Cluster: "c2", Name: "node-a", Labels: labels, InternalIPs: []string{"192.168.2.21"}}},
		{"no IPs", []corev1.NodeAddress{{Type: corev1.NodeInternalDNS, Address: "node-a.lan"}},
			&model.Node{Cluster: "c2", Name: "node-a", Labels: labels}},
		{"bad IP left out", []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "x"}, {Type: corev1.NodeInternalIP, Address: "192.168.2.21"}},
			&model.Node{Cluster: "c2", Name: "node-a", Labels: labels, InternalIPs: []string{"192.168.2.21"}, KubeletVersion: "v1.33.2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: labels},
				Status:     corev1.NodeStatus{Addresses: tc.addrs},
			}
			if tc.name == "bad IP left out" {
				n.Status.NodeInfo.KubeletVersion = "v1.33.2"
			}
			got := Node("c2", n)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Node (-want +got):\n%s", diff)
			}
			// The two lists share one array; appending to one must not
			// overwrite the other.
			if len(got.ExternalIPs) > 0 && len(got.InternalIPs) > 0 {
				_ = append(got.ExternalIPs, "overwrite")
				if got.InternalIPs[0] == "overwrite" {
					t.Error("ExternalIPs and InternalIPs overlap")
				}
			}
		})
	}
	if Node("c2", nil) != nil {
		t.Error("Node(nil) != nil")
	}
}

func TestNamespace(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   *model.Namespace
	}{
		{"labeled", map[string]string{model.LabelNetwork: "network1"}, &model.Namespace{Cluster: "c1", Name: "istio-system", Network: "network1"}},
		{"unlabeled", nil, &model.Namespace{Cluster: "c1", Name: "istio-system"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Namespace("c1", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: tc.labels}})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Namespace (-want +got):\n%s", diff)
			}
		})
	}
	if Namespace("c1", nil) != nil {
		t.Error("Namespace(nil) != nil")
	}
}

// The converters run for every informer event: keep their allocations to the
// result itself.
func TestAllocations(t *testing.T) {
	es := helloSlice()
	if n := testing.AllocsPerRun(100, func() { _, _ = EndpointSlice("c2", es) }); n > 3 {
		t.Errorf("EndpointSlice: %v allocations, want at most 3 (slice, ports, endpoints)", n)
	}
	svc := gatewayService()
	delete(svc.Annotations, model.AnnotationNodeSelect)
	if n := testing.AllocsPerRun(100, func() { _, _ = Service("c2", svc) }); n > 2 {
		t.Errorf("Service: %v allocations, want at most 2 (service, ports)", n)
	}
}

func BenchmarkEndpointSlice(b *testing.B) {
	es := helloSlice()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EndpointSlice("c2", es); err != nil {
			b.Fatal(err)
		}
	}
}
