package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

const (
	testNS = "istio-system"
	// gatewayIP is cluster1's gateway load-balancer address, the
	// discovery address of cluster2's proxies.
	gatewayIP = "192.0.2.10"
	// gatewayPod runs cluster2's NodePort gateway on nodeName.
	gatewayPod = "istio-eastwestgateway-7d9f8-abcde"
	nodeName   = "c2-node-a"
	nodeIP     = "203.0.113.21"
)

// seedMesh is the home lab, installed with Causeway's manifests
// on two real API servers (and EndpointSlice controllers): cluster1 the
// primary of network1 with a LoadBalancer gateway exposing the control
// plane, cluster2 the remote of network2 with a NodePort gateway whose pod
// runs on one node, one root, cluster1's remote secret for cluster2.
type seedMesh struct {
	env    *testenv.Env
	c1, c2 *testenv.Cluster
	root   []byte
	rootK  []byte
	// v1 and v2 are the values cluster1's primary and cluster2's remote
	// were generated with.
	v1, v2 install.Values
}

// webhookHost is the name cluster2's API server calls cluster1's
// gateway by for injection.
const webhookHost = "eastwest.cluster1.example"

func startSeedMesh(t *testing.T) *seedMesh {
	t.Helper()
	env := testenv.Start(t, testenv.Options{Clusters: 2, ControllerManager: true})
	m := &seedMesh{env: env, c1: env.Cluster("cluster1"), c2: env.Cluster("cluster2")}
	ctx := t.Context()

	// One root, the injection webhooks' caBundle.
	var err error
	m.root, m.rootK, err = pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1 := install.Values{ClusterID: "cluster1", Network: "network1", MeshID: "mesh1", Image: "causeway:test", CABundle: string(m.root), CustomHosts: []string{webhookHost}}
	gw1 := c1
	gw1.Gateway.ExposeControlPlane = true
	c2 := install.Values{ClusterID: "cluster2", Network: "network2", MeshID: "mesh1", Image: "causeway:test", RemotePilotAddress: gatewayIP,
		WebhookHost: webhookHost, CABundle: string(m.root)}
	m.v1, m.v2 = c1, c2
	gw2 := c2
	gw2.Gateway.ServiceType = corev1.ServiceTypeNodePort
	m.apply(ctx, t, m.c1, install.ProfilePrimary, c1)
	m.apply(ctx, t, m.c1, install.ProfileEastWestGateway, gw1)
	m.apply(ctx, t, m.c2, install.ProfileRemote, c2)
	m.apply(ctx, t, m.c2, install.ProfileEastWestGateway, gw2)

	// What a cloud controller and kubelets would do.
	if _, err := testenv.SetLoadBalancerIngress(ctx, m.c1.Client(), testNS, install.GatewayName, gatewayIP); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreateNode(ctx, m.c2.Client(), nodeName, nil, nodeIP, "10.2.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, m.c2.Client(), testenv.Pod{
		Namespace: testNS, Name: gatewayPod, Node: nodeName, IP: "10.20.2.10", Ready: true,
		Labels: map[string]string{"app": install.GatewayName, "istio": "eastwestgateway", install.LabelNetwork: "network2"},
		Ports:  []corev1.ContainerPort{{Name: "tls", ContainerPort: 15443}, {Name: "status-port", ContainerPort: 15021}},
	}); err != nil {
		t.Fatal(err)
	}

	// cluster1's intermediate plugged in as cacerts; in cluster2 the
	// root the primary publishes.
	m.putCACerts(ctx, t, m.c1, m.root, m.rootK)
	rootCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: install.RootCertConfigMap, Namespace: testNS}, Data: map[string]string{install.RootCertKey: string(m.root)}}
	if _, err := m.c2.Client().CoreV1().ConfigMaps(testNS).Create(ctx, rootCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// cluster1's control plane reads cluster2.
	m.putRemoteSecret(ctx, t, "istio-remote-secret-cluster2", "cluster2", m.c2.Kubeconfig())
	return m
}

func (m *seedMesh) apply(ctx context.Context, t *testing.T, c *testenv.Cluster, p install.Profile, v install.Values) {
	t.Helper()
	objs, err := install.Generate(p, v)
	if err != nil {
		t.Fatal(err)
	}
	data, err := install.Render(objs, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := install.Apply(ctx, c.RESTConfig(), data, install.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (m *seedMesh) putCACerts(ctx context.Context, t *testing.T, c *testenv.Cluster, root, rootKey []byte) {
	t.Helper()
	b, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: root, RootKey: rootKey, Cluster: c.ID})
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: testNS}, Data: b.Data()}
	if _, err := c.Client().CoreV1().Secrets(testNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (m *seedMesh) putRemoteSecret(ctx context.Context, t *testing.T, name, key string, kubeconfig []byte) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: map[string]string{LabelMultiCluster: "true"}},
		Data:       map[string][]byte{key: kubeconfig},
	}
	if _, err := m.c1.Client().CoreV1().Secrets(testNS).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (m *seedMesh) config() Config {
	return Config{
		Clusters: []Cluster{
			{Name: m.c1.ID, Config: m.c1.RESTConfig()},
			{Name: m.c2.ID, Config: m.c2.RESTConfig()},
		},
		Timeout: 3 * time.Second,
	}
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func table(r *Report) string {
	var b strings.Builder
	_ = r.WriteTable(&b)
	return b.String()
}

// want is a result a planted problem must produce.
type want struct {
	status  Status
	cluster string
	check   string
	message string
}

func (w want) find(r *Report) bool {
	return slices.ContainsFunc(r.Results, func(res Result) bool {
		return res.Status == w.status && res.Cluster == w.cluster && res.Check == w.check && strings.Contains(res.Message, w.message)
	})
}

// runUntil runs the check until the wanted results appear (controllers
// update EndpointSlices asynchronously) and returns the report that has them.
func runUntil(t *testing.T, cfg Config, ws ...want) *Report {
	t.Helper()
	var r *Report
	testkit.Eventually(t, 30*time.Second, "the wanted check results", func() string {
		r = run(t, cfg)
		if missing := slices.DeleteFunc(slices.Clone(ws), func(w want) bool { return w.find(r) }); len(missing) > 0 {
			return fmt.Sprintf("results lack %+v:\n%s", missing, table(r))
		}
		return ""
	})
	return r
}

func allOK(t *testing.T, cfg Config) *Report {
	t.Helper()
	var r *Report
	testkit.Eventually(t, 30*time.Second, "the fixed mesh does not pass", func() string {
		r = run(t, cfg)
		if r.Summary.Warn != 0 || r.Summary.Fail != 0 {
			return table(r)
		}
		return ""
	})
	return r
}

// ensureNamespace creates namespace name, or sets its labels if it exists.
func ensureNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, labels map[string]any) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	patchLabels(ctx, t, cs, "", name, labels)
}

// injectedGateway is a gateway Deployment as Istio's gateway chart makes
// it: it relies on the injector for its proxy (template gateway, image
// auto).
func injectedGateway(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name, "istio": "ingressgateway", "sidecar.istio.io/inject": "true"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"inject.istio.io/templates": "gateway"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "auto"}}},
			},
		},
	}
}

func patchLabels(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, labels map[string]any) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	var err error
	if ns == "" {
		_, err = cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	} else {
		_, err = cs.CoreV1().Services(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckHomeLabMesh installs the home lab's mesh, checks that everything is
// ok, then plants each problem the check looks for, one at a time, and
// checks that it is found (and says what to do), and that all is ok again
// once it is undone.
func TestCheckHomeLabMesh(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	m := startSeedMesh(t)
	cfg := m.config()
	r := allOK(t, cfg)
	t.Logf("the fixed mesh:\n%s", table(r))
	// Every check speaks for every cluster, except remote-secret, which
	// has nothing to say about cluster2 (no control plane there).
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Check+"/"+res.Cluster)
	}
	wantChecks := []string{
		"api/cluster1", "api/cluster2", "clock/cluster1", "clock/cluster2", "network/cluster1", "network/cluster2",
		"root-ca/cluster1", "root-ca/cluster2", "gateway/cluster1", "gateway/cluster2", "remote-secret/cluster1",
		"serving-cert/cluster1", "serving-cert/cluster2", "injection/cluster1", "injection/cluster2", "webhook/cluster1", "webhook/cluster2",
		"hpa/cluster1", "hpa/cluster2",
	}
	if diff := cmp.Diff(wantChecks, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}

	cs1, cs2 := m.c1.Client(), m.c2.Client()
	tests := []struct {
		name string
		// plant makes the problem and returns the config to check with
		// and how to undo it.
		plant func(ctx context.Context, t *testing.T) (Config, func(context.Context))
		want  []want
	}{
		{
			name: "clusters with different roots",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				other, otherKey, err := pki.NewRoot(pki.RootOptions{CommonName: "Other Root CA"})
				if err != nil {
					t.Fatal(err)
				}
				m.putCACerts(ctx, t, m.c2, other, otherKey)
				return cfg, func(ctx context.Context) {
					_ = cs2.CoreV1().Secrets(testNS).Delete(ctx, "cacerts", metav1.DeleteOptions{})
				}
			},
			want: []want{
				{Fail, "cluster2", CheckRootCA, `not to cluster1's root "CN=Root CA,O=Istio"`},
				{OK, "cluster1", CheckRootCA, "cacerts chains to root"},
			},
		},
		{
			name: "missing cacerts",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				if err := cs1.CoreV1().Secrets(testNS).Delete(ctx, "cacerts", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) { m.putCACerts(ctx, t, m.c1, m.root, m.rootK) }
			},
			want: []want{{Warn, "cluster1", CheckRootCA, "no cacerts Secret"}},
		},
		{
			name: "missing network label",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				patchLabels(ctx, t, cs2, "", testNS, map[string]any{install.LabelNetwork: nil})
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs2, "", testNS, map[string]any{install.LabelNetwork: "network2"})
				}
			},
			want: []want{{Fail, "cluster2", CheckNetwork, "has no topology.istio.io/network label while other clusters have one"}},
		},
		{
			name: "clusters disagree on the mesh id",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				patchLabels(ctx, t, cs2, "", testNS, map[string]any{install.LabelMeshID: "mesh2"})
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs2, "", testNS, map[string]any{install.LabelMeshID: "mesh1"})
				}
			},
			want: []want{{Warn, "cluster2", CheckNetwork, "clusters disagree on the mesh id"}},
		},
		{
			name: "gateway without address",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				if _, err := testenv.SetLoadBalancerIngress(ctx, cs1, testNS, install.GatewayName); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					if _, err := testenv.SetLoadBalancerIngress(ctx, cs1, testNS, install.GatewayName, gatewayIP); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: []want{
				{Fail, "cluster1", CheckGateway, "LoadBalancer without an address"},
				{Warn, "cluster2", CheckServingCert, "istiod-remote points at 192.0.2.10, which is no gateway address"},
			},
		},
		{
			name: "NodePort gateway without a ready gateway pod",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				if _, err := testenv.SetPodReady(ctx, cs2, testNS, gatewayPod, false); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					if _, err := testenv.SetPodReady(ctx, cs2, testNS, gatewayPod, true); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: []want{{Fail, "cluster2", CheckGateway, "no ready gateway pod runs on a ready node"}},
		},
		{
			name: "a network without gateway",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				patchLabels(ctx, t, cs2, testNS, install.GatewayName, map[string]any{install.LabelNetwork: "network3"})
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs2, testNS, install.GatewayName, map[string]any{install.LabelNetwork: "network2"})
				}
			},
			want: []want{
				{Fail, "cluster2", CheckGateway, "network network2 has no east-west gateway"},
				{Warn, "cluster2", CheckGateway, "labeled network network3 in a cluster of network network2"},
			},
		},
		{
			name: "malformed remote secret",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				m.putRemoteSecret(ctx, t, "istio-remote-secret-bad", "bad", []byte("this: [is not a kubeconfig"))
				return cfg, func(ctx context.Context) {
					_ = cs1.CoreV1().Secrets(testNS).Delete(ctx, "istio-remote-secret-bad", metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckRemoteSecret, "secret istio-system/istio-remote-secret-bad key bad is not a usable kubeconfig"}},
		},
		{
			// A remote secret's exec plugin must never run on the
			// operator's machine (issue 14, finding 1).
			name: "remote secret with an exec plugin",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				marker := filepath.Join(t.TempDir(), "pwned")
				kc := strings.Replace(string(m.c2.Kubeconfig()), "token: "+m.c2.AdminToken,
					"exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'touch "+marker+"'], interactiveMode: Never}", 1)
				if kc == string(m.c2.Kubeconfig()) {
					t.Fatal("the kubeconfig holds no token line to replace")
				}
				m.putRemoteSecret(ctx, t, "istio-remote-secret-exec", "exec", []byte(kc))
				return cfg, func(ctx context.Context) {
					_ = cs1.CoreV1().Secrets(testNS).Delete(ctx, "istio-remote-secret-exec", metav1.DeleteOptions{})
					if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("the exec plugin of a remote secret ran (marker %s: %v)", marker, err)
					}
				}
			},
			want: []want{{Fail, "cluster1", CheckRemoteSecret, "authenticates with an exec plugin (/bin/sh), which is never run"}},
		},
		{
			name: "unreachable remote secret server",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				kc := strings.Replace(string(m.c2.Kubeconfig()), m.c2.Host, "https://127.0.0.1:1", 1)
				m.putRemoteSecret(ctx, t, "istio-remote-secret-gone", "gone", []byte(kc))
				return cfg, func(ctx context.Context) {
					_ = cs1.CoreV1().Secrets(testNS).Delete(ctx, "istio-remote-secret-gone", metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckRemoteSecret, "cluster gone at https://127.0.0.1:1 is unreachable from this machine"}},
		},
		{
			name: "remote secret with a revoked token",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				kc := strings.Replace(string(m.c2.Kubeconfig()), m.c2.AdminToken, "revoked", 1)
				m.putRemoteSecret(ctx, t, "istio-remote-secret-revoked", "revoked", []byte(kc))
				return cfg, func(ctx context.Context) {
					_ = cs1.CoreV1().Secrets(testNS).Delete(ctx, "istio-remote-secret-revoked", metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckRemoteSecret, "refuses its credentials"}},
		},
		{
			name: "discovery address the certificate does not cover",
			plant: func(context.Context, *testing.T) (Config, func(context.Context)) {
				c := cfg
				c.DiscoveryAddresses = []string{"istiod-1-11-4.istio-system.svc:15012", "istiod.istio-system.svc"}
				return c, func(context.Context) {}
			},
			want: []want{
				{Fail, "cluster1", CheckServingCert, "istiod's serving certificate does not cover discovery address istiod-1-11-4.istio-system.svc"},
				{OK, "cluster1", CheckServingCert, "istiod's serving certificate covers discovery address istiod.istio-system.svc"},
			},
		},
		{
			name: "revisioned Service the certificate does not cover (the home lab's ISTIOD_CUSTOM_HOST trouble)",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: "istiod-1-11-4", Namespace: testNS},
					Spec: corev1.ServiceSpec{
						Selector: map[string]string{"app": "istiod", "istio.io/rev": "default"},
						Ports:    []corev1.ServicePort{{Name: "https-dns", Port: 15012}},
					},
				}
				if _, err := cs1.CoreV1().Services(testNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					_ = cs1.CoreV1().Services(testNS).Delete(ctx, "istiod-1-11-4", metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckServingCert, "does not cover istiod-1-11-4.istio-system.svc, the name of a Service in front of it"}},
		},
		{
			name: "the primary's gateway does not expose the control plane",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				patch := []byte(`{"spec":{"ports":[{"name":"status-port","port":15021,"targetPort":15021},{"name":"tls","port":15443,"targetPort":15443}]}}`)
				if _, err := cs1.CoreV1().Services(testNS).Patch(ctx, install.GatewayName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					gw := install.Values{ClusterID: "cluster1", Network: "network1", MeshID: "mesh1", Image: "causeway:test"}
					gw.Gateway.ExposeControlPlane = true
					m.apply(ctx, t, m.c1, install.ProfileEastWestGateway, gw)
				}
			},
			want: []want{{Fail, "cluster2", CheckServingCert, "which has no port 15012"}},
		},
		{
			name: "istio-injection=disabled on the system namespace",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				patchLabels(ctx, t, cs1, "", testNS, map[string]any{"istio-injection": "disabled"})
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs1, "", testNS, map[string]any{"istio-injection": nil})
				}
			},
			want: []want{{Warn, "cluster1", CheckInjection, "istio-injection=disabled"}},
		},
		{
			name: "a namespace labeled istio-injection=enabled without a webhook",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				ensureNamespace(ctx, t, cs2, "sample", map[string]any{"istio-injection": "enabled"})
				if err := cs2.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, install.WebhookConfigName, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs2, "", "sample", map[string]any{"istio-injection": nil})
					m.apply(ctx, t, m.c2, install.ProfileRemote, m.v2)
				}
			},
			want: []want{{Fail, "cluster2", CheckWebhook, "namespace sample is labeled istio-injection=enabled but no injection webhook serves it"}},
		},
		{
			name: "a revision label with no matching webhook",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				ensureNamespace(ctx, t, cs1, "canary-apps", map[string]any{"istio.io/rev": "canary"})
				return cfg, func(ctx context.Context) {
					patchLabels(ctx, t, cs1, "", "canary-apps", map[string]any{"istio.io/rev": nil})
				}
			},
			want: []want{{Fail, "cluster1", CheckWebhook, "namespace canary-apps is labeled istio.io/rev=canary but no injection webhook serves revision canary (revisions with a webhook here: default)"}},
		},
		{
			name: "pods labeled with a revision that has no webhook",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				d := injectedGateway("default", "canary-app")
				d.Spec.Template.Labels = map[string]string{"app": "canary-app", "istio.io/rev": "canary"}
				d.Spec.Template.Annotations = nil
				if _, err := cs1.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					_ = cs1.AppsV1().Deployments("default").Delete(ctx, d.Name, metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckWebhook, "Deployment default/canary-app labels its pods istio.io/rev=canary but no injection webhook serves them (revisions with a webhook here: default)"}},
		},
		{
			name: "istio-injection=disabled on a namespace holding a gateway that expects injection",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				ensureNamespace(ctx, t, cs1, "istio-ingress", map[string]any{"istio-injection": "disabled"})
				d := injectedGateway("istio-ingress", "istio-ingressgateway")
				if _, err := cs1.AppsV1().Deployments("istio-ingress").Create(ctx, d, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					_ = cs1.AppsV1().Deployments("istio-ingress").Delete(ctx, d.Name, metav1.DeleteOptions{})
				}
			},
			want: []want{{Fail, "cluster1", CheckInjection, "Deployment istio-ingress/istio-ingressgateway expects injection (inject.istio.io/templates=gateway) but its namespace is labeled istio-injection=disabled"}},
		},
		{
			name: "a webhook whose caBundle is another root",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				other, _, err := pki.NewRoot(pki.RootOptions{CommonName: "Other Root CA"})
				if err != nil {
					t.Fatal(err)
				}
				v := m.v1
				v.CABundle = string(other)
				m.apply(ctx, t, m.c1, install.ProfilePrimary, v)
				return cfg, func(ctx context.Context) { m.apply(ctx, t, m.c1, install.ProfilePrimary, m.v1) }
			},
			want: []want{{Fail, "cluster1", CheckWebhook, `injection webhook istio-sidecar-injector (rev.namespace.sidecar-injector.istio.io) trusts "CN=Other Root CA,O=Istio", not the mesh root "CN=Root CA,O=Istio" of cacerts root-cert.pem`}},
		},
		{
			name: "a remote webhook whose host the serving certificate does not name",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				v := m.v2
				v.WebhookHost = "gw.elsewhere.example"
				m.apply(ctx, t, m.c2, install.ProfileRemote, v)
				return cfg, func(ctx context.Context) { m.apply(ctx, t, m.c2, install.ProfileRemote, m.v2) }
			},
			want: []want{{Fail, "cluster2", CheckWebhook, "injection webhook istio-sidecar-injector calls https://gw.elsewhere.example:15017/inject/cluster/cluster2/net/network2, but no control plane's serving certificate (cluster1/istiod) names gw.elsewhere.example"}},
		},
		{
			name: "a webhook without caBundle",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				v := m.v2
				v.CABundle = ""
				m.apply(ctx, t, m.c2, install.ProfileRemote, v)
				return cfg, func(ctx context.Context) { m.apply(ctx, t, m.c2, install.ProfileRemote, m.v2) }
			},
			want: []want{{Fail, "cluster2", CheckWebhook, "injection webhook istio-sidecar-injector (rev.namespace.sidecar-injector.istio.io) has no caBundle"}},
		},
		{
			name: "a leftover HPA",
			plant: func(ctx context.Context, t *testing.T) (Config, func(context.Context)) {
				hpa := &autoscalingv2.HorizontalPodAutoscaler{
					ObjectMeta: metav1.ObjectMeta{Name: "istiod-1-11-4", Namespace: testNS},
					Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
						ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "istiod"},
						MinReplicas:    new(int32(1)),
						MaxReplicas:    5,
					},
				}
				if _, err := cs1.AutoscalingV2().HorizontalPodAutoscalers(testNS).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				return cfg, func(ctx context.Context) {
					_ = cs1.AutoscalingV2().HorizontalPodAutoscalers(testNS).Delete(ctx, "istiod-1-11-4", metav1.DeleteOptions{})
				}
			},
			want: []want{{Warn, "cluster1", CheckHPA, "scales Deployment istiod between 1 and 5 replicas"}},
		},
		{
			name: "clock skew over 30s",
			plant: func(context.Context, *testing.T) (Config, func(context.Context)) {
				c := cfg
				c.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
				return c, func(context.Context) {}
			},
			want: []want{
				{Warn, "cluster1", CheckClock, "API server clock is 2m0s behind this machine's"},
				{Warn, "cluster2", CheckClock, "behind"},
			},
		},
		{
			name: "clock skew over 5m",
			plant: func(context.Context, *testing.T) (Config, func(context.Context)) {
				c := cfg
				c.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
				return c, func(context.Context) {}
			},
			want: []want{{Fail, "cluster1", CheckClock, "10m0s ahead of this machine's (more than 5m0s)"}},
		},
		{
			name: "an API server that does not answer",
			plant: func(context.Context, *testing.T) (Config, func(context.Context)) {
				c := cfg
				c.Clusters = append(slices.Clone(cfg.Clusters), Cluster{Name: "cluster3", Config: &rest.Config{Host: "https://127.0.0.1:1"}})
				return c, func(context.Context) {}
			},
			want: []want{{Fail, "cluster3", CheckAPI, "API server https://127.0.0.1:1 does not answer"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			c, undo := tt.plant(ctx, t)
			t.Cleanup(func() { undo(context.WithoutCancel(ctx)) })
			r := runUntil(t, c, tt.want...)
			if planted := slices.ContainsFunc(tt.want, func(w want) bool { return w.status == Fail }); r.Failed() != planted {
				t.Errorf("report failed: %v, want %v:\n%s", r.Failed(), planted, table(r))
			}
			for _, res := range r.Results {
				if res.Status != OK && res.Fix == "" {
					t.Errorf("%s %s %s has no fix: %s", res.Status, res.Cluster, res.Check, res.Message)
				}
			}
			t.Logf("%s:\n%s", tt.name, table(r))
		})
	}

	// Every problem undone: all ok again.
	r = allOK(t, cfg)
	if len(r.Results) == 0 {
		t.Fatal("no results")
	}
}
