package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshcheck "github.com/causeway-mesh/causeway/internal/check"
	"github.com/causeway-mesh/causeway/internal/install"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

func TestCheckFlagErrors(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	writeFile(t, kc, []byte(`apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://127.0.0.1:1"}}
- {name: b, cluster: {server: "https://127.0.0.1:2"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: a, context: {cluster: a, user: u}}
- {name: b, context: {cluster: b, user: u}}
current-context: a
`))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad output", []string{"--kubeconfig", kc, "-o", "wide"}, `-o "wide": want table, json or yaml`},
		{"unpaired", []string{"--kubeconfig", kc, "--kubeconfig", kc, "--context", "a", "--context", "b", "--context", "a"},
			"2 --kubeconfig and 3 --context"},
		{"missing kubeconfig", []string{"--kubeconfig", filepath.Join(dir, "none")}, "kubeconfig " + filepath.Join(dir, "none")},
		{"unknown context", []string{"--kubeconfig", kc, "--context", "c"}, `context "c" does not exist`},
		{"same cluster twice", []string{"--kubeconfig", kc, "--context", "a", "--context", "a"}, "cluster a is given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := causeway(t, append([]string{"check"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}

	// Two contexts of one file: both are checked (and neither answers).
	out, err := causeway(t, "check", "--kubeconfig", kc, "--context", "a", "--context", "b", "--timeout", "2s")
	if err == nil || err.Error() != "2 of 2 checks failed" {
		t.Errorf("error %v", err)
	}
	testkit.ContainsAll(t, "output", out, "fail    a        api    API server https://127.0.0.1:1 does not answer", "fail    b        api    API server https://127.0.0.1:2 does not answer", "0 ok, 0 warn, 2 fail")
}

// transcript records commands and their output for the README.
type transcript struct{ strings.Builder }

func (tr *transcript) add(cmd, out string) {
	fmt.Fprintf(&tr.Builder, "$ %s\n%s\n", cmd, out)
}

// TestInstallWalkthrough installs the home lab's two clusters the way the
// README says, every step a causeway command, against two real API
// servers: the system namespaces, one root and cluster1's intermediate as
// cacerts, cluster1's control plane and LoadBalancer gateway exposing it,
// cluster2 as a remote pointed at that gateway with a NodePort gateway,
// cluster2's remote secret in cluster1, and a check that passes. Where the
// README pipes into `kubectl apply -f -`, the test applies the same output
// server-side (install.Apply). What kubelets and controllers would add (a
// load balancer's address, a node, the gateway pod) is written by hand.
func TestInstallWalkthrough(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	env := testenv.Start(t, testenv.Options{Clusters: 2, ControllerManager: true})
	ctx := t.Context()
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	dir := t.TempDir()
	kc1, kc2 := filepath.Join(dir, "cluster1.kubeconfig"), filepath.Join(dir, "cluster2.kubeconfig")
	writeFile(t, kc1, c1.Kubeconfig())
	writeFile(t, kc2, c2.Kubeconfig())
	names := strings.NewReplacer(dir+"/", "")
	var tr transcript
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := causewayStdout(t, "", args...)
		if err != nil {
			t.Fatalf("causeway %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		tr.add(names.Replace("causeway "+strings.Join(args, " ")), names.Replace(stderr+out))
		return out
	}
	apply := func(c *testenv.Cluster, manifest string) {
		t.Helper()
		applied, err := install.Apply(ctx, c.RESTConfig(), []byte(manifest), install.ApplyOptions{})
		if err != nil {
			t.Fatalf("apply to %s: %v", c.ID, err)
		}
		tr.add("(applied to "+c.ID+")", strings.Join(applied, "\n"))
	}
	cp1 := []string{"--cluster-id", "cluster1", "--network", "network1", "--mesh-id", "mesh1"}
	cp2 := []string{"--cluster-id", "cluster2", "--network", "network2", "--mesh-id", "mesh1"}

	// 0. The system namespaces, labeled with their networks (every
	// profile makes the same Namespace).
	apply(c1, run(append([]string{"manifest", "generate", "--profile", "primary", "--only", "Namespace"}, cp1...)...))
	apply(c2, run(append([]string{"manifest", "generate", "--profile", "primary", "--only", "Namespace"}, cp2...)...))

	// 1. Certificates: one root, cluster1's intermediate as cacerts.
	certs := filepath.Join(dir, "certs")
	run("certs", "root", "--out", certs)
	run("certs", "intermediate", "--root", certs, "--cluster", "cluster1", "--apply", "--kubeconfig", kc1)

	// 2. Control plane of cluster1, checked with a server-side dry run
	// first, then applied.
	// The injection webhook trusts the mesh root; cluster2's API server
	// calls it through cluster1's gateway by name.
	rootCert := filepath.Join(certs, "root-cert.pem")
	const webhookHost = "eastwest.cluster1.example"
	primary := run(append([]string{"manifest", "generate", "--profile", "primary", "--ca-bundle", rootCert, "--custom-host", webhookHost}, cp1...)...)
	if _, err := install.Apply(ctx, c1.RESTConfig(), []byte(primary), install.ApplyOptions{DryRun: true}); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	apply(c1, primary)

	// 3. cluster1's gateway, exposing the control plane; its address.
	apply(c1, run(append([]string{"manifest", "generate", "--profile", "eastwest-gateway", "--expose-control-plane"}, cp1...)...))
	if _, err := testenv.SetLoadBalancerIngress(ctx, c1.Client(), "istio-system", install.GatewayName, "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	run("check", "--kubeconfig", kc1)

	// cluster2: the remote pointed at that address, and its NodePort
	// gateway; what would run it: a node and the gateway's pod.
	apply(c2, run(append([]string{"manifest", "generate", "--profile", "remote", "--remote-pilot-address", "192.0.2.10",
		"--webhook-host", webhookHost, "--ca-bundle", rootCert}, cp2...)...))
	apply(c2, run(append([]string{"manifest", "generate", "--profile", "eastwest-gateway", "--remote-pilot-address", "192.0.2.10", "--gateway-service-type", "NodePort"}, cp2...)...))
	if _, err := testenv.CreateNode(ctx, c2.Client(), "c2-node-a", nil, "203.0.113.21", "10.2.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c2.Client(), testenv.Pod{
		Namespace: "istio-system", Name: "istio-eastwestgateway-5b9c8d6f47-m4ntw", Node: "c2-node-a", IP: "10.20.2.10", Ready: true,
		Labels: map[string]string{"app": install.GatewayName, "istio": "eastwestgateway", install.LabelNetwork: "network2"},
		Ports:  []corev1.ContainerPort{{Name: "tls", ContainerPort: 15443}, {Name: "status-port", ContainerPort: 15021}},
	}); err != nil {
		t.Fatal(err)
	}

	// 4. The remote secret: cluster1's control plane reads cluster2.
	apply(c1, run("remote-secret", "create", "--kubeconfig", kc2, "--name", "cluster2", "--token-ttl", "24h"))
	// What cluster1's control plane then does (no control plane runs
	// here): publish the mesh root in cluster2, which check compares the
	// webhook's caBundle with.
	root, err := os.ReadFile(rootCert)
	if err != nil {
		t.Fatal(err)
	}
	rootCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: install.RootCertConfigMap, Namespace: "istio-system"}, Data: map[string]string{install.RootCertKey: string(root)}}
	if _, err := c2.Client().CoreV1().ConfigMaps("istio-system").Create(ctx, rootCM, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// 5. Verify: everything ok (the EndpointSlice controller may take a
	// moment to see the gateway pod).
	args := []string{"check", "--kubeconfig", kc1, "--kubeconfig", kc2, "--discovery-address", "istiod-remote.istio-system.svc:15012"}
	testkit.Eventually(t, 30*time.Second, "check does not pass", func() string {
		out, _, err := causewayStdout(t, "", args...)
		if err != nil || !strings.Contains(out, " 0 warn, 0 fail") {
			return fmt.Sprintf("%v\n%s", err, out)
		}
		tr.add(names.Replace("causeway "+strings.Join(args, " ")), names.Replace(out))
		return ""
	})
	out := run(append(args, "-o", "json")...)
	var report meshcheck.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	if report.Failed() || report.Summary.Warn != 0 || report.Summary.OK != len(report.Results) {
		t.Errorf("json report: %+v", report.Summary)
	}

	// A problem: cluster2's gateway pod goes away; check fails, exit 1.
	if err := c2.Client().CoreV1().Pods("istio-system").Delete(ctx, "istio-eastwestgateway-5b9c8d6f47-m4ntw", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "check still passes", func() string {
		out, _, err := causewayStdout(t, "", args...)
		if err == nil {
			return out
		}
		if err.Error() != "1 of 20 checks failed" || !strings.Contains(out, "no ready gateway pod") {
			t.Errorf("failing check: %v\n%s", err, out)
		}
		tr.add(names.Replace("causeway "+strings.Join(args, " ")), names.Replace(out)+"causeway: "+err.Error()+"\n")
		return ""
	})

	// The home lab's comparison: primary vs remote manifests of cluster2.
	p, r := filepath.Join(dir, "primary.yaml"), filepath.Join(dir, "remote.yaml")
	writeFile(t, p, []byte(run(append([]string{"manifest", "generate", "--profile", "primary"}, cp2...)...)))
	writeFile(t, r, []byte(run(append([]string{"manifest", "generate", "--profile", "remote", "--remote-pilot-address", "192.168.1.1", "--webhook-host", webhookHost}, cp2...)...)))
	diff, _, err := causewayStdout(t, "", "manifest", "diff", p, r)
	if err == nil {
		t.Error("diff of different manifests succeeded")
	}
	tr.add(names.Replace("causeway manifest diff "+p+" "+r), names.Replace(diff)+"causeway: "+err.Error()+"\n")

	if path := os.Getenv("CAUSEWAY_WALKTHROUGH_OUT"); path != "" {
		writeFile(t, path, []byte(tr.String()))
	}
	t.Logf("transcript:\n%s", tr.String())
}
