package testenv

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEndpointSliceObject(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	labels := map[string]string{
		discoveryv1.LabelServiceName: "web",
		discoveryv1.LabelManagedBy:   ManagedByController,
	}
	tests := []struct {
		name      string
		ports     []EndpointPort
		endpoints []Endpoint
		want      *discoveryv1.EndpointSlice
		wantErr   bool
	}{
		{
			name:  "IPv4, ready endpoint with node, zone and pod",
			ports: []EndpointPort{{Name: "http", Port: 8080, AppProtocol: "http"}, {Name: "dns", Port: 53, Protocol: udp}},
			endpoints: []Endpoint{
				{IP: "10.0.0.1", Ready: true, Node: "n1", Zone: "z1", Pod: "web-0"},
			},
			want: &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-1", Labels: labels},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports: []discoveryv1.EndpointPort{
					{Name: new("http"), Port: new(int32(8080)), Protocol: &tcp, AppProtocol: new("http")},
					{Name: new("dns"), Port: new(int32(53)), Protocol: &udp},
				},
				Endpoints: []discoveryv1.Endpoint{{
					Addresses:  []string{"10.0.0.1"},
					Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
					NodeName:   new("n1"),
					Zone:       new("z1"),
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-0"},
				}},
			},
		},
		{
			name: "IPv6; not ready; terminating but serving",
			endpoints: []Endpoint{
				{IP: "fd00::1"},
				{IP: "fd00::2", Ready: true, Terminating: true, Hostname: "h2"},
			},
			want: &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-1", Labels: labels},
				AddressType: discoveryv1.AddressTypeIPv6,
				Ports:       []discoveryv1.EndpointPort{},
				Endpoints: []discoveryv1.Endpoint{
					{
						Addresses:  []string{"fd00::1"},
						Conditions: discoveryv1.EndpointConditions{Ready: new(false), Serving: new(false), Terminating: new(false)},
					},
					{
						Addresses:  []string{"fd00::2"},
						Conditions: discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)},
						Hostname:   new("h2"),
					},
				},
			},
		},
		{
			name: "no endpoints is an empty IPv4 slice",
			want: &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "web-1", Labels: labels},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{},
				Endpoints:   []discoveryv1.Endpoint{},
			},
		},
		{name: "mixed families", endpoints: []Endpoint{{IP: "10.0.0.1"}, {IP: "fd00::1"}}, wantErr: true},
		{name: "not an IP", endpoints: []Endpoint{{IP: "web.example.com"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := endpointSliceObject("ns", "web", "web-1", tt.ports, tt.endpoints)
			if (err != nil) != tt.wantErr {
				t.Fatalf("endpointSliceObject: error %v, want error %t", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("endpointSliceObject (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodStatus(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	conds := func(ready corev1.ConditionStatus) []corev1.PodCondition {
		return []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
		}
	}
	tests := []struct {
		name string
		pod  Pod
		want corev1.PodStatus
	}{
		{
			name: "ready, dual stack, host IP",
			pod:  Pod{IP: "10.0.0.1", ExtraIPs: []string{"fd00::1"}, HostIP: "192.168.0.1", Ready: true},
			want: corev1.PodStatus{
				Phase:      corev1.PodRunning,
				Conditions: conds(corev1.ConditionTrue),
				HostIP:     "192.168.0.1",
				HostIPs:    []corev1.HostIP{{IP: "192.168.0.1"}},
				PodIP:      "10.0.0.1",
				PodIPs:     []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}},
				StartTime:  &now,
			},
		},
		{
			name: "not ready, no IP yet",
			pod:  Pod{},
			want: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: conds(corev1.ConditionFalse), StartTime: &now},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, podStatus(tt.pod, now)); diff != "" {
				t.Errorf("podStatus (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetPodCondition(t *testing.T) {
	before := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(before.Add(time.Hour))
	st := corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: before},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: before},
	}}
	// Same status keeps its transition time; a change takes the new one;
	// a missing type is appended.
	setPodCondition(&st, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
	setPodCondition(&st, corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: now})
	setPodCondition(&st, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now})
	want := []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: before},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, LastTransitionTime: now},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	if diff := cmp.Diff(want, st.Conditions); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func TestNodeStatusAddresses(t *testing.T) {
	tests := []struct {
		name, external, internal string
		want                     []corev1.NodeAddress
	}{
		{
			name: "both", external: "203.0.113.1", internal: "192.168.0.1",
			want: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
				{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
				{Type: corev1.NodeHostName, Address: "n1"},
			},
		},
		{
			name: "internal only", internal: "192.168.0.1",
			want: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
				{Type: corev1.NodeHostName, Address: "n1"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := nodeStatus("n1", tt.external, tt.internal, metav1.Now())
			if diff := cmp.Diff(tt.want, st.Addresses); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if len(st.Conditions) != 1 || st.Conditions[0].Type != corev1.NodeReady || st.Conditions[0].Status != corev1.ConditionTrue {
				t.Errorf("conditions = %v, want one Ready=True", st.Conditions)
			}
		})
	}
}

func TestLoadBalancerIngress(t *testing.T) {
	got := loadBalancerIngress([]string{"198.51.100.1", "2001:db8::1", "gw.example.com"})
	want := []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}, {IP: "2001:db8::1"}, {Hostname: "gw.example.com"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loadBalancerIngress (-want +got):\n%s", diff)
	}
}
