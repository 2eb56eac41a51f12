package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestCovers(t *testing.T) {
	sans := []string{"istiod.istio-system.svc", "*.mesh.example.com"}
	tests := []struct {
		host string
		want bool
	}{
		{"istiod.istio-system.svc", true},
		{"ISTIOD.istio-system.svc.", true},
		{"istiod-1-11-4.istio-system.svc", false},
		{"cp.mesh.example.com", true},
		{"a.cp.mesh.example.com", false},
		{"mesh.example.com", false},
	}
	for _, tt := range tests {
		if got := covers(sans, tt.host); got != tt.want {
			t.Errorf("covers(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestServingNames(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Args: []string{"serve", "--custom-host=a.example.com", "--custom-host", "b.example.com", "--custom-host"},
		Env:  []corev1.EnvVar{{Name: "ISTIOD_CUSTOM_HOST", Value: "istiod-1-11-4.mesh.svc, a.example.com"}},
	}}}}}}
	want := []string{
		"istiod.mesh.svc", "istiod-remote.mesh.svc", "istio-pilot.mesh.svc",
		"a.example.com", "b.example.com", "istiod-1-11-4.mesh.svc",
	}
	if diff := cmp.Diff(want, servingNames(d, "mesh")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"istiod.istio-system.svc:15012": "istiod.istio-system.svc",
		"istiod.istio-system.svc":       "istiod.istio-system.svc",
		"192.0.2.1:15012":               "192.0.2.1",
		"[2001:db8::1]:15012":           "2001:db8::1",
		"2001:db8::1":                   "2001:db8::1",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func gatewaySvc(typ corev1.ServiceType, labels map[string]string, ports ...int32) corev1.Service {
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "gw", Namespace: "istio-system", Labels: labels},
		Spec:       corev1.ServiceSpec{Type: typ},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Port: p, NodePort: 30000 + p%1000})
	}
	return svc
}

func labelNS(network string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}
	if network != "" {
		ns.Labels = map[string]string{"topology.istio.io/network": network}
	}
	return ns
}

// TestRulesOnSnapshots covers what the real-cluster test does not plant.
func TestRulesOnSnapshots(t *testing.T) {
	net1 := map[string]string{"topology.istio.io/network": "n1"}
	lbHost := gatewaySvc(corev1.ServiceTypeLoadBalancer, net1, 15443)
	lbHost.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "gw.example.com"}}
	ext := gatewaySvc(corev1.ServiceTypeClusterIP, net1, 15443)
	ext.Spec.ExternalIPs = []string{"198.51.100.7"}
	badPort := gatewaySvc(corev1.ServiceTypeLoadBalancer, map[string]string{"topology.istio.io/network": "n1", "networking.istio.io/gatewayPort": "x"}, 15443)
	noPort := gatewaySvc(corev1.ServiceTypeLoadBalancer, map[string]string{"topology.istio.io/network": "n1", "networking.istio.io/gatewayPort": "443"}, 15443)

	tests := []struct {
		name  string
		cfg   Config
		snaps []*snapshot
		want  []Result
	}{
		{
			name: "one unlabeled cluster: one network, no gateway needed, warned",
			snaps: []*snapshot{{name: "c1", version: "v1.37.2", host: "https://c1", ns: labelNS(""),
				caSecret: &corev1.Secret{}}},
			want: []Result{
				{OK, "c1", CheckAPI, "Kubernetes v1.37.2 at https://c1", ""},
				{OK, "c1", CheckClock, "API server clock is within 1s of this machine's", ""},
				{Warn, "c1", CheckNetwork, "namespace istio-system has no topology.istio.io/network label: all clusters are taken as one network, right only if their pods reach each other directly", "kubectl --context c1 label namespace istio-system topology.istio.io/network=NETWORK"},
				{Warn, "c1", CheckRootCA, "no cacerts Secret: the control plane signs with its own self-signed root (istio-ca-secret), which no other cluster trusts", "causeway certs intermediate --root certs --cluster c1 --apply --context c1 (the control plane picks it up without a restart; workloads as they renew)"},
				{OK, "c1", CheckInjection, "namespace istio-system does not disable injection", ""},
				{OK, "c1", CheckWebhook, "no injection webhook, and no namespace asks for injection", ""},
				{OK, "c1", CheckHPA, "no HorizontalPodAutoscaler scales the control plane or gateway", ""},
			},
		},
		{
			name: "gateway addresses: a load balancer's host name, externalIPs, a bad or missing port",
			snaps: []*snapshot{{name: "c1", ns: labelNS("n1"), skew: 31 * time.Second, gateways: []gatewayInfo{
				{svc: lbHost}, {svc: ext}, {svc: badPort}, {svc: noPort},
			}, hpasErr: errors.New("forbidden")}},
			cfg: Config{DiscoveryAddresses: []string{"192.0.2.1:15012", "istiod.istio-system.svc"}},
			want: []Result{
				{OK, "c1", CheckAPI, "Kubernetes  at ", ""},
				{Warn, "c1", CheckClock, "API server clock is 31s ahead of this machine's (more than 30s)", "certificates and tokens are checked against the clock: sync the clocks with NTP (chrony, systemd-timesyncd) on the API server's hosts and on this machine"},
				{OK, "c1", CheckNetwork, "network n1", ""},
				{Warn, "c1", CheckRootCA, "no cacerts Secret: the control plane will make its own self-signed root, which no other cluster trusts", "causeway certs intermediate --root certs --cluster c1 --apply --context c1 (the control plane picks it up without a restart; workloads as they renew)"},
				{OK, "c1", CheckGateway, "gateway istio-system/gw of n1: LoadBalancer gw.example.com port 15443", ""},
				{OK, "c1", CheckGateway, "gateway istio-system/gw of n1: externalIPs 198.51.100.7 port 15443", ""},
				{Fail, "c1", CheckGateway, `gateway istio-system/gw of n1: label networking.istio.io/gatewayPort="x" is not a port`, "set the label to the Service port other networks dial, or remove it for 15443"},
				{Fail, "c1", CheckGateway, "gateway istio-system/gw of n1 has no port 443", "add the port or set networking.istio.io/gatewayPort to the port it has"},
				{Warn, "-", CheckServingCert, "discovery address 192.0.2.1:15012 is an IP: proxies check the certificate against the name they dial, and control plane certificates carry DNS names", "give proxies a DNS name (istiod-remote.NAMESPACE.svc in remote clusters) and check that name"},
				{Warn, "-", CheckServingCert, "discovery address istiod.istio-system.svc: no control plane (Deployment labeled app=istiod in istio-system) among the clusters checked", "include the primary cluster in the check"},
				{OK, "c1", CheckInjection, "namespace istio-system does not disable injection", ""},
				{OK, "c1", CheckWebhook, "no injection webhook, and no namespace asks for injection", ""},
				{Warn, "c1", CheckHPA, "cannot list HorizontalPodAutoscalers of istio-system: forbidden", "the check needs list on horizontalpodautoscalers"},
			},
		},
		{
			name: "an unreachable cluster takes no part; a missing namespace",
			snaps: []*snapshot{
				{name: "c1", host: "https://c1", apiErr: errors.New("connection refused")},
				{name: "c2", secretsErr: errors.New("forbidden")},
			},
			want: []Result{
				{Fail, "c1", CheckAPI, "API server https://c1 does not answer: connection refused", "check the kubeconfig, the network path and the credentials: kubectl --context c1 version"},
				{OK, "c2", CheckAPI, "Kubernetes  at ", ""},
				{OK, "c2", CheckClock, "API server clock is within 1s of this machine's", ""},
				{Fail, "c2", CheckNetwork, "namespace istio-system does not exist", "causeway manifest generate --profile primary --cluster-id c2 --network NETWORK --only Namespace | kubectl --context c2 apply -f -"},
				{Fail, "c2", CheckRootCA, "cannot read secrets of istio-system: forbidden", "the check needs get and list on secrets of the system namespace"},
				{OK, "c2", CheckWebhook, "no injection webhook, and no namespace asks for injection", ""},
				{OK, "c2", CheckHPA, "no HorizontalPodAutoscaler scales the control plane or gateway", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.SystemNamespace = "istio-system"
			cfg.Now = time.Now
			got := evaluate(cfg, tt.snaps)
			order := map[string]int{}
			for i, s := range tt.snaps {
				order[s.name] = i
			}
			sortResults(got, order)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReportOutput(t *testing.T) {
	r := &Report{
		Results: []Result{
			{OK, "cluster1", CheckAPI, "Kubernetes v1.37.2 at https://c1", ""},
			{Warn, "cluster2", CheckInjection, "labeled istio-injection=disabled", "kubectl label namespace istio-system istio-injection-"},
		},
		Summary: Summary{OK: 1, Warn: 1},
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	want := `STATUS  CLUSTER   CHECK      MESSAGE
ok      cluster1  api        Kubernetes v1.37.2 at https://c1
warn    cluster2  injection  labeled istio-injection=disabled
                             -> kubectl label namespace istio-system istio-injection-
1 ok, 1 warn, 0 fail
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"results":[{"status":"ok","cluster":"cluster1","check":"api","message":"Kubernetes v1.37.2 at https://c1"},` +
		`{"status":"warn","cluster":"cluster2","check":"injection","message":"labeled istio-injection=disabled","fix":"kubectl label namespace istio-system istio-injection-"}],` +
		`"summary":{"ok":1,"warn":1,"fail":0}}`
	if string(data) != wantJSON {
		t.Errorf("JSON:\n%s\nwant:\n%s", data, wantJSON)
	}
	if r.Failed() {
		t.Error("Failed() with no failure")
	}
}

func TestRunConfigErrors(t *testing.T) {
	rc := &rest.Config{Host: "https://127.0.0.1:1"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no clusters", Config{}, "no cluster to check"},
		{"no config", Config{Clusters: []Cluster{{Name: "a"}}}, `cluster "a" has no client configuration`},
		{"twice", Config{Clusters: []Cluster{{Name: "a", Config: rc}, {Name: "a", Config: rc}}}, `cluster "a" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
