package debug

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/kubeconv"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// A gateway Service with a bad gatewayPort label and a bad nodeSelector
// annotation was dropped whole in live mode, and its network lost its
// gateway. Now it is kept with the defaults (port 15443, no selector), and
// /debug/networks and /metrics say what was ignored.
func TestIgnoredGatewayAnnotations(t *testing.T) {
	s := model.NewStore(model.Config{})
	s.UpsertNamespace(&model.Namespace{Cluster: "c1", Name: "istio-system", Network: "net1"})
	gw, err := kubeconv.Service("c1", &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "eastwest",
			Labels:      map[string]string{model.LabelNetwork: "net1", model.LabelGatewayPort: "tls"},
			Annotations: map[string]string{model.AnnotationNodeSelect: "os=linux"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.2",
			Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, Protocol: corev1.ProtocolTCP}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
	})
	if err != nil {
		t.Fatalf("kubeconv.Service: %v (a bad annotation must not drop the Service)", err)
	}
	s.UpsertService(gw)
	snap := s.Snapshot()
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(func() *model.Snapshot { return snap }, testStatuses)); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Snapshot: func() *model.Snapshot { return snap }, Clusters: testStatuses,
		Ready: func() (bool, string) { return true, "" }, Gatherer: reg, Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{snap: snap, srv: srv, reg: reg}

	_, body := f.get(t, "/debug/networks")
	var rep model.NetworksReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	var gws []model.Gateway
	for _, n := range rep.Networks {
		if n.Name == "net1" {
			gws = n.Gateways
		}
	}
	if len(gws) != 1 || gws[0].Address != "192.0.2.1" || gws[0].Port != model.DefaultGatewayPort {
		t.Errorf("net1's gateways = %+v, want 192.0.2.1:%d", gws, model.DefaultGatewayPort)
	}
	for _, want := range []string{model.LabelGatewayPort + `="tls"`, model.AnnotationNodeSelect + `="os=linux"`} {
		found := false
		for _, w := range rep.Warnings {
			found = found || (strings.Contains(w, "c1/istio-system/eastwest") && strings.Contains(w, want) && strings.Contains(w, "ignored"))
		}
		if !found {
			t.Errorf("/debug/networks warnings lack one naming the Service and %s: %q", want, rep.Warnings)
		}
	}
	if _, body := f.get(t, "/metrics"); !strings.Contains(body, "causeway_gateway_annotations_ignored 2\n") {
		t.Errorf("/metrics lacks causeway_gateway_annotations_ignored 2:\n%s", body)
	}
}
