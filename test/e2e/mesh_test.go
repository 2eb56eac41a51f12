package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// Istio's names and conventions the setup writes (docs/design.md, "Contracts").
const (
	systemNamespace   = "istio-system"
	labelNetwork      = "topology.istio.io/network"
	labelTLSMode      = "security.istio.io/tlsMode"
	rootConfigMap     = "istio-ca-root-cert"
	rootCertKey       = "root-cert.pem"
	eastWestName      = "istio-eastwestgateway"
	gatewayPort       = 15443
	trustDomain       = "cluster.local"
	caAudience        = "istio-ca"
	helloworldCluster = "outbound|5000||helloworld.sample.svc.cluster.local"
)

// causewayCLI runs one causeway command to its end (certs, remote-secret)
// and returns its stdout; a failure fails the test with its output. The
// command and its stderr are logged; stdout is the caller's to log (a
// remote secret holds a token).
func causewayCLI(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("causeway %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("$ causeway %s\n%s", strings.Join(args, " "), stderr.String())
	return stdout.Bytes()
}

// makeCACerts makes one root in dir and, per cluster, an intermediate
// plugged into the cluster as its cacerts Secret, as the home lab does with
// Istio's Makefile and kubectl. It returns the root's path.
func makeCACerts(t *testing.T, bin, dir string, clusters map[*testenv.Cluster]string) string {
	t.Helper()
	t.Logf("%s", causewayCLI(t, bin, "certs", "root", "--out", dir))
	for c, kubeconfig := range clusters {
		t.Logf("%s", causewayCLI(t, bin, "certs", "intermediate", "--root", dir, "--cluster", c.ID, "--apply", "--kubeconfig", kubeconfig))
	}
	return filepath.Join(dir, rootCertKey)
}

// applyRemoteSecret makes the remote secret of cluster remote (with
// `causeway remote-secret create`, a short-lived TokenRequest token since no
// token controller runs here) and applies it to cluster primary, as
// `| kubectl apply -f -` would.
func applyRemoteSecret(t *testing.T, bin string, remote *testenv.Cluster, remoteKubeconfig string, primary *testenv.Cluster) {
	t.Helper()
	out := causewayCLI(t, bin, "remote-secret", "create", "--kubeconfig", remoteKubeconfig, "--name", remote.ID, "--token-ttl", "1h")
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(out, &s); err != nil {
		t.Fatalf("the remote secret of %s is not a Secret: %v\n%s", remote.ID, err, out)
	}
	if s.Kind != "Secret" || s.Namespace == "" {
		t.Fatalf("the remote secret of %s: kind %q namespace %q, want a Secret with its namespace\n%s", remote.ID, s.Kind, s.Namespace, out)
	}
	if _, err := primary.Client().CoreV1().Secrets(s.Namespace).Create(t.Context(), &s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("apply the remote secret of %s to %s: %v", remote.ID, primary.ID, err)
	}
}

// controlPlane is a running `causeway serve` and its loopback addresses.
type controlPlane struct {
	proc   *proc
	xds    string
	xdsTLS string
	debug  string
}

// startServe starts `causeway serve` for cluster id on free loopback
// ports and waits for its /ready; a port taken in the meantime is retried.
func startServe(t *testing.T, ps *procs, bin, id, kubeconfig string, extra ...string) *controlPlane {
	t.Helper()
	var last error
	for range 3 {
		ports, err := testkit.FreePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		cp := &controlPlane{
			xds:    "127.0.0.1:" + strconv.Itoa(ports[0]),
			xdsTLS: "127.0.0.1:" + strconv.Itoa(ports[1]),
			debug:  "127.0.0.1:" + strconv.Itoa(ports[2]),
		}
		args := append([]string{bin, "serve", "--drain-duration=0",
			"--cluster-id", id,
			"--kubeconfig", kubeconfig,
			"--xds-addr", cp.xds,
			"--xds-tls-addr", cp.xdsTLS,
			"--webhook-addr", "",
			"--debug-addr", cp.debug,
			"--cluster-sync-timeout", "20s",
		}, extra...)
		cp.proc = ps.mustStart("serve-"+id, nil, args...)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		last = waitUntil(ctx, cp.proc, "causeway serve "+id+" /ready", func(ctx context.Context) error {
			return testkit.HTTPOK(ctx, http.DefaultClient, "http://"+cp.debug+"/ready")
		})
		cancel()
		if last == nil {
			return cp
		}
		cp.proc.stop()
		if !strings.Contains(last.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(last)
	return nil
}

// gatewaySpec is one `causeway gateway` inside a network namespace.
type gatewaySpec struct {
	Name      string
	Network   string
	ClusterID string
	// XDS is the control plane's ADS as seen from the namespace: its
	// plaintext port, or its secure port (directly or through a primary's
	// gateway) with the roots and name that verify it.
	XDS xdsServer
	// Listen is where it accepts mTLS from other networks; ListenerName
	// the LDS listener it runs (a NodePort gateway listens on the node
	// port but runs the gateway's 0.0.0.0_15443).
	Listen       string
	ListenerName string
	// Admin is the admin server's address inside the namespace.
	Admin string
	// ExposeControlPlane, when set, runs the control-plane listener
	// 0.0.0.0_15012 on this address (--expose-control-plane).
	ExposeControlPlane string
	// PodIP, PodName: the INSTANCE_IP and POD_NAME of the gateway pod.
	PodIP   string
	PodName string
}

// startGateway starts the gateway of spec inside n and waits for its
// /ready (its first full configuration from the control plane).
func startGateway(t *testing.T, ps *procs, bin string, n *netns, spec gatewaySpec) *proc {
	t.Helper()
	args := []string{"gateway",
		"--xds", spec.XDS.Addr,
		"--network", spec.Network,
		"--cluster-id", spec.ClusterID,
		"--listen", spec.Listen,
		"--admin", spec.Admin,
		"--drain", "1s",
	}
	if spec.ListenerName != "" {
		args = append(args, "--listener-name", spec.ListenerName)
	}
	if spec.XDS.RootCertFile != "" {
		args = append(args, "--xds-root-cert", spec.XDS.RootCertFile, "--xds-server-name", spec.XDS.ServerName)
	}
	if spec.XDS.TokenFile != "" {
		args = append(args, "--xds-token", spec.XDS.TokenFile)
	}
	if spec.ExposeControlPlane != "" {
		args = append(args, "--expose-control-plane", spec.ExposeControlPlane)
	}
	env := []string{"INSTANCE_IP=" + spec.PodIP, "POD_NAME=" + spec.PodName, "POD_NAMESPACE=" + systemNamespace}
	p := ps.mustStart(spec.Name, env, n.command(bin, args...)...)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	client := n.httpClient()
	if err := waitUntil(ctx, p, spec.Name+" /ready", func(ctx context.Context) error {
		return testkit.HTTPOK(ctx, client, "http://"+spec.Admin+"/ready")
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// testBinary is the path of this test binary, which runs the roles.
func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("path of the test binary: %v", err)
	}
	return exe
}

// startHelloworld runs the helloworld role inside n and waits until it
// accepts connections on its address (it listens once it has its
// certificate).
func startHelloworld(t *testing.T, ps *procs, n *netns, cfg helloworldConfig) *proc {
	t.Helper()
	env, err := roleEnv(roleHelloworld, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := ps.mustStart("helloworld-"+cfg.Version, env, n.command(testBinary(t))...)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := waitUntil(ctx, p, "helloworld "+cfg.Version+" listening on "+cfg.Listen, func(ctx context.Context) error {
		c, err := n.dial(ctx, cfg.Listen)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// runSleepRole runs the sleep role inside n to its end and returns its
// summary.
func runSleepRole(t *testing.T, ps *procs, name string, n *netns, cfg sleepConfig) sleepSummary {
	t.Helper()
	env, err := roleEnv(roleSleep, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := ps.mustStart(name, env, n.command(testBinary(t))...)
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		p.kill()
		t.Fatalf("%s: %v\n%s", name, err, tail(p.logPath))
	}
	out, err := p.output()
	if err != nil {
		t.Fatal(err)
	}
	var sum sleepSummary
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("%s: %v: %v\nstdout:\n%s\nlog:\n%s", name, errNoSummary, err, out, tail(p.logPath))
	}
	return sum
}

// writeToken asks cluster cs for a token of service account ns/sa with
// the audience Istio's agents use and writes it into dir.
func writeToken(ctx context.Context, cs kubernetes.Interface, dir, ns, sa string) (string, error) {
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{caAudience}, ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest %s/%s: %w", ns, sa, err)
	}
	path := filepath.Join(dir, ns+"-"+sa+".token")
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return path, nil
}

// waitRootConfigMap waits until the control plane published the mesh root
// in namespace ns of cs, checks it is want, and writes it into dir.
func waitRootConfigMap(ctx context.Context, cs kubernetes.Interface, ns string, want []byte, dir string) (string, error) {
	var got string
	err := waitUntil(ctx, nil, "ConfigMap "+ns+"/"+rootConfigMap, func(ctx context.Context) error {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, rootConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got = cm.Data[rootCertKey]
		if got == "" {
			return errors.New("no " + rootCertKey)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if !bytes.Equal(bytes.TrimSpace([]byte(got)), bytes.TrimSpace(want)) {
		return "", fmt.Errorf("ConfigMap %s/%s holds another root than root-cert.pem of `causeway certs root`:\n%s", ns, rootConfigMap, got)
	}
	path := filepath.Join(dir, "root-cert.pem")
	return path, os.WriteFile(path, []byte(got), 0o600)
}
