package bench

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func svc(ns, name string, port int32, labels map[string]string, lbIPs ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
	}
	for _, ip := range lbIPs {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

type sliceEP struct {
	ip    string
	pod   string
	ready *bool
}

func slice(ns, svcName string, port int32, eps ...sliceEP) *discoveryv1.EndpointSlice {
	name := "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svcName + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		Ports:      []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: e.pod}
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

func TestExpectedViews(t *testing.T) {
	no := false
	gw1 := svc(systemNamespace, "gw", 15443, map[string]string{labelNetwork: "n1"}, "198.51.100.1")
	gw2 := svc(systemNamespace, "gw", 15443, map[string]string{labelNetwork: "n2"}, "198.51.100.2")
	gw2b := svc(systemNamespace, "gw", 15443, map[string]string{labelNetwork: "n2", labelGatewayPort: "16443"}, "198.51.100.2", "198.51.100.3")
	const web = "outbound|80||web.app.svc.cluster.local"
	const gw = "outbound|15443||gw.istio-system.svc.cluster.local"
	tests := []struct {
		name string
		objs []clusterObjects
		want views
	}{
		{
			name: "two networks, one gateway each: local direct, remote behind the gateway",
			objs: []clusterObjects{
				{ID: "c1", Network: "n1", Services: []*corev1.Service{svc("app", "web", 80, nil), gw1},
					Slices:   []*discoveryv1.EndpointSlice{slice("app", "web", 8080, sliceEP{ip: "10.1.0.1", pod: "p1"}, sliceEP{ip: "10.1.0.2", pod: "p2", ready: &no})},
					MTLSPods: map[string]bool{"app/p1": true, "app/p2": true}},
				{ID: "c2", Network: "n2", Services: []*corev1.Service{svc("app", "web", 80, nil), gw2},
					Slices: []*discoveryv1.EndpointSlice{slice("app", "web", 8080,
						sliceEP{ip: "10.2.0.1", pod: "q1"}, sliceEP{ip: "10.2.0.2", pod: "q2"}, sliceEP{ip: "10.2.0.3", pod: "plain"})},
					MTLSPods: map[string]bool{"app/q1": true, "app/q2": true}},
			},
			want: views{
				"n1": {web: "10.1.0.1:8080*1,198.51.100.2:15443*2", gw: ""},
				"n2": {web: "10.2.0.1:8080*1,10.2.0.2:8080*1,10.2.0.3:8080*1,198.51.100.1:15443*1", gw: ""},
			},
		},
		{
			// Istio's own example: 3 endpoints behind two gateways give each
			// 3, with scale 2; a local endpoint weighs 2.
			name: "two gateways: scale 2",
			objs: []clusterObjects{
				{ID: "c1", Network: "n1", Services: []*corev1.Service{svc("app", "web", 80, nil), gw1},
					Slices:   []*discoveryv1.EndpointSlice{slice("app", "web", 8080, sliceEP{ip: "10.1.0.1", pod: "p1"})},
					MTLSPods: map[string]bool{"app/p1": true}},
				{ID: "c2", Network: "n2", Services: []*corev1.Service{svc("app", "web", 80, nil), gw2b},
					Slices: []*discoveryv1.EndpointSlice{slice("app", "web", 8080,
						sliceEP{ip: "10.2.0.1", pod: "q1"}, sliceEP{ip: "10.2.0.2", pod: "q2"}, sliceEP{ip: "10.2.0.3", pod: "q3"})},
					MTLSPods: map[string]bool{"app/q1": true, "app/q2": true, "app/q3": true}},
			},
			want: views{
				"n1": {web: "10.1.0.1:8080*2,198.51.100.2:16443*3,198.51.100.3:16443*3", gw: ""},
				"n2": {web: "10.2.0.1:8080*2,10.2.0.2:8080*2,10.2.0.3:8080*2,198.51.100.1:15443*2", gw: ""},
			},
		},
		{
			name: "a network without gateways is left out of the other's view",
			objs: []clusterObjects{
				{ID: "c1", Network: "n1", Services: []*corev1.Service{svc("app", "web", 80, nil)},
					Slices:   []*discoveryv1.EndpointSlice{slice("app", "web", 8080, sliceEP{ip: "10.1.0.1", pod: "p1"})},
					MTLSPods: map[string]bool{"app/p1": true}},
				{ID: "c2", Network: "n2", Services: []*corev1.Service{svc("app", "web", 80, nil)},
					Slices:   []*discoveryv1.EndpointSlice{slice("app", "web", 8080, sliceEP{ip: "10.2.0.1", pod: "q1"})},
					MTLSPods: map[string]bool{"app/q1": true}},
			},
			want: views{"n1": {web: "10.1.0.1:8080*1"}, "n2": {web: "10.2.0.1:8080*1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, expectedViews(tt.objs)); diff != "" {
				t.Errorf("expectedViews (-want +got):\n%s", diff)
			}
		})
	}
}

func TestViewDiff(t *testing.T) {
	got := viewDiff(map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]string{"a": "1", "b": "x", "d": "4"})
	want := []string{`b: got "x", want "2"`, `c: missing (want "3")`, `d: not expected (got "4")`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("viewDiff (-want +got):\n%s", diff)
	}
}
