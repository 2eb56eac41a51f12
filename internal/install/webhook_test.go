package install

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestWebhookConfiguration(t *testing.T) {
	root := testRoot()
	tests := []struct {
		name    string
		profile Profile
		values  Values
		// want: name of the configuration, the client every webhook
		// calls, and the revision its selectors name.
		wantName   string
		wantClient admissionregistrationv1.WebhookClientConfig
		wantRev    string
		wantHooks  int
	}{
		{
			name: "primary: the control plane's Service", profile: ProfilePrimary,
			values:   Values{ClusterID: "c1", Image: testImage, CABundle: root},
			wantName: "istio-sidecar-injector",
			wantClient: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Name: "istiod", Namespace: "istio-system", Path: new("/inject"), Port: new(int32(443))},
				CABundle: []byte(root),
			},
			wantRev: "default", wantHooks: 4,
		},
		{
			name: "primary revision: the revision's Service and selectors", profile: ProfilePrimary,
			values:   Values{ClusterID: "c1", Image: testImage, Revision: "1-11-4", Namespace: "mesh"},
			wantName: "istio-sidecar-injector-1-11-4",
			wantClient: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "istiod-1-11-4", Namespace: "mesh", Path: new("/inject"), Port: new(int32(443))},
			},
			wantRev: "1-11-4", wantHooks: 2,
		},
		{
			name: "remote: the primary's gateway on 15017", profile: ProfileRemote,
			values:   Values{ClusterID: "cluster2", Network: "network2", RemotePilotAddress: "192.0.2.10", WebhookHost: "eastwest.cluster1.example", CABundle: root},
			wantName: "istio-sidecar-injector",
			wantClient: admissionregistrationv1.WebhookClientConfig{
				URL:      new("https://eastwest.cluster1.example:15017/inject/cluster/cluster2/net/network2"),
				CABundle: []byte(root),
			},
			wantRev: "default", wantHooks: 4,
		},
		{
			name: "remote by name: the pilot address is the host", profile: ProfileRemote,
			values:   Values{ClusterID: "cluster2", Network: "network2", RemotePilotAddress: "gw.example.com:15012", Revision: "canary"},
			wantName: "istio-sidecar-injector-canary",
			wantClient: admissionregistrationv1.WebhookClientConfig{
				URL: new("https://gw.example.com:15017/inject/cluster/cluster2/net/network2"),
			},
			wantRev: "canary", wantHooks: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Generate(tt.profile, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			wc := find[*admissionregistrationv1.MutatingWebhookConfiguration](t, objs, "MutatingWebhookConfiguration", tt.wantName)
			if got := wc.Labels[LabelRevision]; got != tt.wantRev {
				t.Errorf("label istio.io/rev %q, want %q", got, tt.wantRev)
			}
			if len(wc.Webhooks) != tt.wantHooks {
				t.Errorf("%d webhooks, want %d", len(wc.Webhooks), tt.wantHooks)
			}
			for _, h := range wc.Webhooks {
				if diff := cmp.Diff(tt.wantClient, h.ClientConfig); diff != "" {
					t.Errorf("%s: client (-want +got):\n%s", h.Name, diff)
				}
			}
			if rn := wc.Webhooks[0]; rn.Name != "rev.namespace.sidecar-injector.istio.io" ||
				rn.NamespaceSelector.MatchExpressions[0].Values[0] != tt.wantRev {
				t.Errorf("first webhook %s selects namespaces %+v, want istio.io/rev=%s", rn.Name, rn.NamespaceSelector, tt.wantRev)
			}
		})
	}
}

// TestControlPlaneServesWebhook: the Service the webhook names forwards
// 443 to the port the Deployment serves the webhook on.
func TestControlPlaneServesWebhook(t *testing.T) {
	objs, err := Generate(ProfilePrimary, Values{ClusterID: "c1", Image: testImage, Revision: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"istiod", "istiod-r1"} {
		svc := find[*corev1.Service](t, objs, "Service", name)
		i := indexOfPort(svc.Spec.Ports, "https-webhook")
		if i < 0 || svc.Spec.Ports[i].Port != 443 || svc.Spec.Ports[i].TargetPort.IntValue() != 15017 {
			t.Errorf("Service %s ports %+v: want https-webhook 443 -> 15017", name, svc.Spec.Ports)
		}
	}
	d := find[*appsv1.Deployment](t, objs, "Deployment", "istiod-r1")
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--webhook-addr=:15017") || !containsPort(c.Ports, "https-webhook", 15017) {
		t.Errorf("control plane args %v ports %+v: want --webhook-addr=:15017 and port https-webhook 15017", c.Args, c.Ports)
	}
}

func indexOfPort(ports []corev1.ServicePort, name string) int {
	for i, p := range ports {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func containsPort(ports []corev1.ContainerPort, name string, port int32) bool {
	for _, p := range ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}

func TestIstioGateway(t *testing.T) {
	tests := []struct {
		name      string
		values    Values
		wantPorts []string // Service: name/port
		wantCPort []string // container port names
		wantXDS   string
	}{
		{
			name: "primary exposing the control plane",
			values: Values{ClusterID: "cluster1", Network: "network1", MeshID: "mesh1", Image: testImage,
				Gateway: GatewayValues{ImageKind: GatewayImageIstio, ExposeControlPlane: true}},
			wantPorts: []string{"tls/15443", "tls-istiod/15012", "tls-webhook/15017"},
			wantCPort: []string{"status-port", "tls", "tls-istiod", "tls-webhook", "http-envoy-prom"},
			wantXDS:   "istiod.istio-system.svc:15012",
		},
		{
			name: "remote cluster through istiod-remote",
			values: Values{ClusterID: "cluster2", Network: "network2", Image: testImage, RemotePilotAddress: "192.0.2.10",
				Gateway: GatewayValues{ImageKind: GatewayImageIstio, ServiceType: corev1.ServiceTypeNodePort}},
			wantPorts: []string{"tls/15443"},
			wantCPort: []string{"status-port", "tls", "http-envoy-prom"},
			wantXDS:   "istiod-remote.istio-system.svc:15012",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Generate(ProfileEastWestGateway, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			svc := find[*corev1.Service](t, objs, "Service", GatewayName)
			var ports []string
			for _, p := range svc.Spec.Ports {
				ports = append(ports, p.Name+"/"+itoa(p.Port))
			}
			if diff := cmp.Diff(tt.wantPorts, ports); diff != "" {
				t.Errorf("Service ports (-want +got):\n%s", diff)
			}
			d := find[*appsv1.Deployment](t, objs, "Deployment", GatewayName)
			pod := d.Spec.Template
			if pod.Labels["istio"] != "eastwestgateway" || pod.Labels[LabelNetwork] != tt.values.Network || pod.Labels["sidecar.istio.io/inject"] != "false" {
				t.Errorf("pod labels %v: want istio=eastwestgateway, the network, and no injection", pod.Labels)
			}
			if u := pod.Spec.SecurityContext.RunAsUser; u == nil || *u != 1337 {
				t.Errorf("pod runs as %v, want 1337", u)
			}
			c := pod.Spec.Containers[0]
			if c.Name != "istio-proxy" || c.Image != "docker.io/istio/proxyv2:1.31.4" || !cmp.Equal(c.Args[:2], []string{"proxy", "router"}) {
				t.Errorf("container %s %s %v: want istio-proxy, proxyv2, proxy router", c.Name, c.Image, c.Args)
			}
			var cports []string
			for _, p := range c.Ports {
				cports = append(cports, p.Name)
			}
			if diff := cmp.Diff(tt.wantCPort, cports); diff != "" {
				t.Errorf("container ports (-want +got):\n%s", diff)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			for k, want := range map[string]string{
				"ISTIO_META_ROUTER_MODE":            "sni-dnat",
				"ISTIO_META_NETWORK":                tt.values.Network,
				"ISTIO_META_REQUESTED_NETWORK_VIEW": tt.values.Network,
				"ISTIO_META_CLUSTER_ID":             tt.values.ClusterID,
				"CA_ADDR":                           tt.wantXDS,
				"PROXY_CONFIG":                      `{"discoveryAddress":"` + tt.wantXDS + `"}`,
				"JWT_POLICY":                        "third-party-jwt",
			} {
				if env[k] != want {
					t.Errorf("env %s=%q, want %q", k, env[k], want)
				}
			}
			if _, ok := env["GOMEMLIMIT"]; ok {
				t.Error("GOMEMLIMIT set for pilot-agent, whose memory limit Envoy shares")
			}
			var token, root bool
			for _, vol := range pod.Spec.Volumes {
				if p := vol.Projected; p != nil && p.Sources[0].ServiceAccountToken.Audience == "istio-ca" {
					token = true
				}
				if cm := vol.ConfigMap; cm != nil && cm.Name == "istio-ca-root-cert" {
					root = true
				}
			}
			if !token || !root {
				t.Errorf("volumes %+v: want the istio-ca token and istio-ca-root-cert", pod.Spec.Volumes)
			}
		})
	}
}
