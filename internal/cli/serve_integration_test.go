package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// runCauseway runs the command tree with args; stdout and stderr apart.
func runCauseway(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	root := NewRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func check[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// populate writes what a real cluster would hold: the system namespace
// labeled with network, an east-west gateway (LoadBalancer at lbIP, or
// NodePort with its pod on node-a when lbIP is empty), and
// sample/helloworld with one mTLS pod at appIP.
func populate(t *testing.T, cs kubernetes.Interface, n int, network, lbIP, appIP string) {
	t.Helper()
	ctx := t.Context()
	check(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: network}))(t)
	check(testenv.CreateNamespace(ctx, cs, "sample", nil))(t)
	check(testenv.CreateNode(ctx, cs, "node-a", map[string]string{model.LabelRegion: "region" + fmt.Sprint(n), model.LabelZone: "zone-a"},
		fmt.Sprintf("203.0.113.%d1", n), fmt.Sprintf("192.168.%d.1", n)))(t)
	gw := testenv.Service{Namespace: "istio-system", Name: "istio-eastwestgateway", Labels: map[string]string{model.LabelNetwork: network},
		Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, TargetPort: intstr.FromInt32(15443)}}, Type: corev1.ServiceTypeNodePort}
	if lbIP != "" {
		gw.Type = corev1.ServiceTypeLoadBalancer
	}
	check(testenv.CreateService(ctx, cs, gw))(t)
	if lbIP != "" {
		check(testenv.SetLoadBalancerIngress(ctx, cs, "istio-system", "istio-eastwestgateway", lbIP))(t)
	} else {
		check(testenv.CreateEndpointSlice(ctx, cs, "istio-system", "istio-eastwestgateway", "istio-eastwestgateway-1",
			[]testenv.EndpointPort{{Name: "tls", Port: 15443}},
			[]testenv.Endpoint{{IP: fmt.Sprintf("10.%d.0.100", n), Ready: true, Node: "node-a", Pod: "istio-eastwestgateway-0"}}))(t)
	}
	check(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld",
		Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
	check(testenv.CreatePod(ctx, cs, testenv.Pod{Namespace: "sample", Name: "helloworld-v1-0", Node: "node-a", ServiceAccount: "helloworld",
		Labels: map[string]string{model.LabelTLSMode: "istio", "app": "helloworld"}, IP: appIP, Ready: true}))(t)
	check(testenv.CreateEndpointSlice(ctx, cs, "sample", "helloworld", "helloworld-1",
		[]testenv.EndpointPort{{Name: "http", Port: 5000}},
		[]testenv.Endpoint{{IP: appIP, Ready: true, Node: "node-a", Pod: "helloworld-v1-0"}}))(t)
}

func httpBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b := check(io.ReadAll(resp.Body))(t)
	return resp.StatusCode, string(b)
}

// TestServeWalkthrough is the README's walkthrough, run for real: two
// clusters on two networks, `remote-secret create` for the second applied
// to the first, `serve`, `status` and /debug/endpoints from each network.
// Run with -v to see every command's output.
func TestServeWalkthrough(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	populate(t, c1.Client(), 1, "network1", "198.51.100.1", "10.1.0.5")
	populate(t, c2.Client(), 2, "network2", "", "10.2.0.5")
	kc1, kc2 := c1.WriteKubeconfig(t), c2.WriteKubeconfig(t)
	ctx := t.Context()

	// 1. The remote secret of cluster2, applied to cluster1.
	yamlOut, stderr, err := runCauseway(ctx, "remote-secret", "create", "--kubeconfig", kc2, "--name", "cluster2", "--token-ttl", "24h")
	if err != nil {
		t.Fatalf("remote-secret create: %v\n%s", err, stderr)
	}
	t.Logf("$ causeway remote-secret create --kubeconfig cluster2.kubeconfig --name cluster2 --token-ttl 24h\n%s%s", stderr, yamlOut)
	var secret corev1.Secret
	if err := yaml.UnmarshalStrict([]byte(yamlOut), &secret); err != nil {
		t.Fatalf("remote-secret create printed no Secret: %v", err)
	}
	check(c1.Client().CoreV1().Secrets("istio-system").Create(ctx, &secret, metav1.CreateOptions{}))(t)
	// Again: idempotent.
	if _, stderr, err := runCauseway(ctx, "remote-secret", "create", "--kubeconfig", kc2, "--name", "cluster2", "--token-ttl", "24h"); err != nil {
		t.Fatalf("remote-secret create, second run: %v\n%s", err, stderr)
	}

	// 2. serve.
	addr := testkit.FreeAddr(t)
	serveCtx, stop := context.WithCancel(ctx)
	serveErr := make(chan error, 1)
	go func() {
		_, _, err := runCauseway(serveCtx, "serve", "--drain-duration=0", "--kubeconfig", kc1, "--cluster-id", "cluster1", "--debug-addr", addr, "--probe-interval", "500ms")
		serveErr <- err
	}()
	t.Cleanup(func() {
		stop()
		if err := <-serveErr; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	testkit.Eventually(t, 30*time.Second, "serve did not become ready", func() string {
		if code, body := httpBody(t, base+"/ready"); code != http.StatusOK {
			return fmt.Sprintf("/ready says %d: %s", code, body)
		}
		return ""
	})
	// The first snapshot is published a debounce after ready.
	var view map[string]model.View
	testkit.Eventually(t, 10*time.Second, "views not complete", func() string {
		view = map[string]model.View{}
		for _, n := range []string{"network1", "network2"} {
			code, body := httpBody(t, base+"/debug/endpoints?host=helloworld.sample.svc.cluster.local&port=5000&network="+n)
			var v model.View
			if code != 200 || json.Unmarshal([]byte(body), &v) != nil || len(v.Endpoints) != 2 {
				return fmt.Sprintf("%+v", view)
			}
			view[n] = v
			if testing.Verbose() {
				t.Logf("$ curl '%s/debug/endpoints?host=helloworld.sample.svc.cluster.local&port=5000&network=%s'\n%s", "localhost:15014", n, body)
			}
		}
		return ""
	})
	nodePort := check(c2.Client().CoreV1().Services("istio-system").Get(ctx, "istio-eastwestgateway", metav1.GetOptions{}))(t).Spec.Ports[0].NodePort
	wantGW := map[string]string{
		"network1": fmt.Sprintf("203.0.113.21:%d", nodePort), // cluster2's NodePort gateway, on node-a's external IP
		"network2": "198.51.100.1:15443",                     // cluster1's LoadBalancer gateway
	}
	wantLocal := map[string]string{"network1": "10.1.0.5:5000", "network2": "10.2.0.5:5000"}
	for n, v := range view {
		var local, gw string
		for _, e := range v.Endpoints {
			a := fmt.Sprintf("%s:%d", e.Address, e.Port)
			if e.Gateway {
				gw = a
			} else {
				local = a
			}
		}
		if local != wantLocal[n] || gw != wantGW[n] {
			t.Errorf("view of %s: local %s, gateway %s; want %s and %s", n, local, gw, wantLocal[n], wantGW[n])
		}
	}

	// 3. status.
	out, stderr, err := runCauseway(ctx, "status", "--debug-addr", addr)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	t.Logf("$ causeway status --debug-addr localhost:15014\n%s", out)
	testkit.ContainsAll(t, "status", out, "cluster1  live   network1", "cluster2  live   network2", "secret istio-system/istio-remote-secret-cluster2")
	out, _, err = runCauseway(ctx, "status", "--debug-addr", addr, "-o", "json")
	if err != nil || !json.Valid([]byte(out)) {
		t.Errorf("status -o json: %v\n%s", err, out)
	}
	out, _, err = runCauseway(ctx, "status", "--debug-addr", addr, "-o", "yaml")
	if err != nil || !strings.Contains(out, "clusters:") {
		t.Errorf("status -o yaml: %v\n%s", err, out)
	}
	if _, _, err := runCauseway(ctx, "status", "--debug-addr", addr, "-o", "wide"); err == nil || !strings.Contains(err.Error(), "want table, json or yaml") {
		t.Errorf("status -o wide: %v", err)
	}
	if code, body := httpBody(t, base+"/debug/endpoints?host=helloworld.sample.svc.cluster.local"); code != 400 {
		t.Errorf("/debug/endpoints without port: %d %s", code, body)
	} else if testing.Verbose() {
		t.Logf("$ curl -i 'localhost:15014/debug/endpoints?host=helloworld.sample.svc.cluster.local'\nHTTP %d\n%s", code, body)
	}
	if code, body := httpBody(t, base+"/debug/clusters"); code != 200 || !strings.Contains(body, `"state": "live"`) {
		t.Errorf("/debug/clusters: %d %s", code, body)
	} else if testing.Verbose() {
		t.Logf("$ curl localhost:15014/debug/clusters\n%s", body)
	}
	code, metrics := httpBody(t, base+"/metrics")
	var ours []string
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, "causeway_") {
			ours = append(ours, strings.TrimSpace(line))
		}
	}
	if code != 200 || !slices.Contains(ours, `causeway_endpoints{cluster="cluster2",network="network2"} 2`) {
		t.Errorf("/metrics: %d\n%s", code, strings.Join(ours, "\n"))
	} else if testing.Verbose() {
		t.Logf("$ curl -s localhost:15014/metrics | grep ^causeway_\n%s", strings.Join(ours, "\n"))
	}
	stop()
	if err := <-serveErr; err != nil {
		t.Fatalf("serve: %v", err)
	}
	serveErr <- nil
}

func TestServeFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--cluster-id is required"},
		{[]string{"serve", "--cluster-id", "c1", "--stale-cluster-policy", "drop"}, "want keep or drop-after=DURATION"},
		{[]string{"serve", "--cluster-id", "c1", "--no-gateway-endpoints", "maybe"}, "want drop or direct"},
		{[]string{"serve", "--cluster-id", "c1", "--nodeport-gateways", "all"}, "want endpoints or selector"},
		{[]string{"serve", "--cluster-id", "c1", "--mesh-networks", "a", "--mesh-networks-configmap", "b"}, "use one"},
		{[]string{"serve", "--cluster-id", "c1", "--kubeconfig", "/nonexistent/kubeconfig"}, "--kubeconfig /nonexistent/kubeconfig"},
		{[]string{"remote-secret", "create"}, "--name is required"},
		{[]string{"remote-secret", "create", "--name", "c2", "--kubeconfig", "/nonexistent/kubeconfig"}, "--kubeconfig /nonexistent/kubeconfig"},
		{[]string{"status", "--debug-addr", "127.0.0.1:1"}, "is `causeway serve` running"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runCauseway(t.Context(), tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
