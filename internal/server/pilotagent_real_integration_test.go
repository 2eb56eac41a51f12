package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
	"github.com/causeway-mesh/causeway/internal/xdsauth"
)

// fakeEnvoyAdmin answers the two stats queries pilot-agent's readiness
// probe makes of Envoy's admin port, from what the test's Envoy side
// really received: CDS and LDS accepted once, the server LIVE with its
// workers started once configured.
type fakeEnvoyAdmin struct {
	cds, lds atomic.Int64
}

func (f *fakeEnvoyAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/stats" {
		http.NotFound(w, r)
		return
	}
	state, workers := 2, 0 // PRE_INITIALIZING until configured
	if f.cds.Load() > 0 && f.lds.Load() > 0 {
		state, workers = 0, 1
	}
	filter := r.URL.Query().Get("filter")
	if strings.Contains(filter, "update_success") {
		fmt.Fprintf(w, "cluster_manager.cds.update_rejected: 0\ncluster_manager.cds.update_success: %d\n", f.cds.Load())
		fmt.Fprintf(w, "listener_manager.lds.update_rejected: 0\nlistener_manager.lds.update_success: %d\n", f.lds.Load())
		return
	}
	fmt.Fprintf(w, "listener_manager.workers_started: %d\nserver.state: %d\n", workers, state)
}

// TestIntegrationRealPilotAgent runs Istio's own pilot-agent (built from
// the istio.io/istio module tools/istio pins) with the environment, the
// arguments and the files (projected token, root ConfigMap) of a pod the
// injector made, against `causeway serve` and a real kube-apiserver.
// Envoy is not run: PROXY_CONFIG's binaryPath is a placeholder process,
// and the test does what Envoy does with the bootstrap pilot-agent wrote:
// it takes its full configuration (CDS, EDS, LDS, RDS) through
// pilot-agent's xDS proxy (which adds the pod's token and cluster and
// talks TLS to the secure port), its certificate and root from
// pilot-agent's SDS server (which asks the CA), and answers pilot-agent's
// readiness probe on the admin port from what it received. The proof is
// pilot-agent's own /healthz/ready, and the control plane knowing the node
// pilot-agent wrote as an authenticated proxy.
func TestIntegrationRealPilotAgent(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver and pilot-agent")
	bins := testenv.RequirePilotAgent(t)
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1"}})
	c := env.Cluster("cluster1")
	cs := c.Client()
	ctx := t.Context()
	must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1"}))(t)
	must(testenv.CreateNamespace(ctx, cs, "sample", map[string]string{inject.LabelInjection: "enabled"}))(t)
	must(cs.CoreV1().ServiceAccounts("sample").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "sample", Name: "sleep"}}, metav1.CreateOptions{}))(t)
	must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld", Selector: map[string]string{"app": "helloworld"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 5000}}}))(t)
	must(testenv.CreateEndpointSlice(ctx, cs, "sample", "helloworld", "helloworld-1",
		[]testenv.EndpointPort{{Name: "http", Port: 5000}}, []testenv.Endpoint{{IP: "10.244.0.9", Ready: true}}))(t)

	// The serving certificate also names localhost: pilot-agent dials
	// localhost (see below).
	rs := serveCluster(t, c, Config{XDSTLSAddr: "127.0.0.1:0", CA: ca.Config{CustomHosts: []string{"localhost"}}})
	testkit.Eventually(t, testkit.WaitTimeout, "secure port", func() string {
		if rs.srv.XDSTLSAddr() == nil {
			return "not listening"
		}
		return ""
	})
	_, tlsPort, _ := net.SplitHostPort(rs.srv.XDSTLSAddr().String())
	tlsAddr := "localhost:" + tlsPort

	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sample", Name: "sleep-1", Labels: map[string]string{"app": "sleep"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "sleep", Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	p = must(rs.srv.injector().Inject(p, inject.Target{}))(t)
	p = must(cs.CoreV1().Pods("sample").Create(ctx, p, metav1.CreateOptions{}))(t)
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.7", PodIPs: []corev1.PodIP{{IP: "10.244.0.7"}}}
	p = must(cs.CoreV1().Pods("sample").UpdateStatus(ctx, p, metav1.UpdateOptions{}))(t)
	ap := kubeletView(t, p)
	var proxyArgs []string
	for _, ctr := range p.Spec.Containers {
		if ctr.Name == inject.ProxyName {
			proxyArgs = ctr.Args
		}
	}

	token := must(c.ServiceAccountToken(ctx, "sample", "sleep", []string{ap.audience}, ap.ttl, p.Name))(t)
	var rootPEM string
	testkit.Eventually(t, testkit.WaitTimeout, "root ConfigMap in sample", func() string {
		cm, err := cs.CoreV1().ConfigMaps("sample").Get(ctx, ca.RootConfigMapName, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		rootPEM = cm.Data[ca.RootConfigMapKey]
		return ""
	})
	pa := runPilotAgent(t, bins, ap, proxyArgs, tlsAddr, rootPEM, token)
	dir, node, exited, admin, statusPort := pa.dir, pa.node, pa.exited, pa.admin, pa.statusPort
	wantID := "sidecar~10.244.0.7~sleep-1.sample~sample.svc.cluster.local"
	if node.GetId() != wantID {
		t.Errorf("pilot-agent's node id %q, want %q", node.GetId(), wantID)
	}

	// SDS: pilot-agent's server asks the CA with the pod's token.
	sdsSocket := filepath.Join(dir, "var", "run", "secrets", "workload-spiffe-uds", "socket")
	var certs []*x509.Certificate
	waitFor(t, exited, 60*time.Second, "a certificate from pilot-agent's SDS", func() error {
		var err error
		certs, err = sdsCertificate(ctx, sdsSocket, node)
		return err
	})
	if uris := certs[0].URIs; len(uris) != 1 || uris[0].String() != "spiffe://cluster.local/ns/sample/sa/sleep" {
		t.Errorf("SDS certificate URIs %v, want spiffe://cluster.local/ns/sample/sa/sleep", uris)
	}

	// xDS through pilot-agent's proxy, which sends the token over TLS.
	xdsSocket := filepath.Join(dir, "etc", "istio", "proxy", "XDS")
	var snap *parity.Snapshot
	waitFor(t, exited, 60*time.Second, "a full configuration through pilot-agent's xDS proxy", func() error {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		s, err := parity.Fetch(fctx, "unix://"+xdsSocket, node, parity.FetchOptions{})
		if err != nil {
			return err
		}
		if len(s.Unanswered) > 0 || len(s.Clusters) == 0 || len(s.Listeners) == 0 {
			return fmt.Errorf("unanswered %v, %d clusters, %d listeners", s.Unanswered, len(s.Clusters), len(s.Listeners))
		}
		snap = s
		return nil
	})
	const hello = "outbound|5000||helloworld.sample.svc.cluster.local"
	if snap.Clusters[hello] == nil || snap.Endpoints[hello] == nil || snap.Listeners["virtualOutbound"] == nil {
		t.Errorf("through pilot-agent: CDS %v, EDS %v, LDS %v; want %s and virtualOutbound", keys(snap.Clusters), keys(snap.Endpoints), keys(snap.Listeners), hello)
	}
	admin.cds.Add(1)
	admin.lds.Add(1)

	// pilot-agent's own readiness, as the kubelet probes it.
	ready := fmt.Sprintf("http://127.0.0.1:%d/healthz/ready", statusPort)
	waitFor(t, exited, 30*time.Second, "pilot-agent's "+ready, func() error {
		resp, err := http.Get(ready) //nolint:noctx // bounded by the default client's connection to loopback
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		return nil
	})
	if got := counterOf(t, rs.srv, "causeway_xds_auth_accepted_total", "source", "token"); got < 1 {
		t.Errorf("causeway_xds_auth_accepted_total{source=token} = %v, want at least 1 (pilot-agent's stream)", got)
	}

	// The same pod's pilot-agent with the token of another namespace's
	// service account: the secure port refuses its xDS proxy's stream, and
	// Envoy's side sees the refusal.
	must(testenv.CreateNamespace(ctx, cs, "other", nil))(t)
	must(cs.CoreV1().ServiceAccounts("other").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "other"}}, metav1.CreateOptions{}))(t)
	otherToken := must(c.ServiceAccountToken(ctx, "other", "other", []string{"istio-ca"}, time.Hour, ""))(t)
	before := counterOf(t, rs.srv, "causeway_xds_auth_refused_total", "reason", xdsauth.ReasonNamespace)
	bad := runPilotAgent(t, bins, ap, proxyArgs, tlsAddr, rootPEM, otherToken)
	var refusal error
	waitFor(t, bad.exited, 60*time.Second, "the refusal through pilot-agent's xDS proxy", func() error {
		refusal = firstADSAnswer(ctx, "unix://"+filepath.Join(bad.dir, "etc", "istio", "proxy", "XDS"), bad.node)
		if refusal == nil || !strings.Contains(refusal.Error(), "namespace") {
			return fmt.Errorf("first answer %w, want a refusal naming the namespace", refusal)
		}
		return nil
	})
	t.Logf("Envoy's side, through pilot-agent, with another namespace's token: %v", refusal)
	if got := counterOf(t, rs.srv, "causeway_xds_auth_refused_total", "reason", xdsauth.ReasonNamespace); got <= before {
		t.Errorf("causeway_xds_auth_refused_total{reason=namespace_mismatch} = %v, want more than %v", got, before)
	}
}

// firstADSAnswer opens a SotW ADS stream to target as node, asks for CDS
// and returns the error of the first answer (nil: a response).
func firstADSAnswer(ctx context.Context, target string, node *corev3.Node) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return testkit.FirstResponse(ctx, conn, false, node, parity.TypeCluster)
}

// realAgent is a running pilot-agent: its working folder, the node of the
// bootstrap it wrote, the channel its exit is sent on, the fake Envoy
// admin it probes and its status port.
type realAgent struct {
	dir        string
	node       *corev3.Node
	exited     chan error
	admin      *fakeEnvoyAdmin
	statusPort int
}

// runPilotAgent starts pilot-agent with the environment, arguments and
// files of injected pod ap (its projected token: token; its root
// ConfigMap: rootPEM) until the test ends, and waits for the Envoy
// bootstrap it writes.
func runPilotAgent(t *testing.T, bins testenv.IstioBinaries, ap agentPod, proxyArgs []string, tlsAddr, rootPEM, token string) *realAgent {
	t.Helper()
	// The pod's files, under pilot-agent's working folder (its paths are
	// relative: ./var/run/secrets/..., ./etc/istio/proxy).
	dir := t.TempDir()
	write := func(rel string, data []byte, mode os.FileMode) string {
		t.Helper()
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("var/run/secrets/tokens/istio-token", []byte(token), 0o600)
	rootFile := write("var/run/secrets/istio/root-cert.pem", []byte(rootPEM), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "etc", "istio", "proxy"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("var/lib/istio/envoy/envoy_bootstrap_tmpl.json", must(os.ReadFile(bins.EnvoyBootstrap))(t), 0o644)
	// Envoy's place: a process that only waits (pilot-agent starts it
	// with the bootstrap and stops it on SIGTERM).
	envoyBin := write("fake-envoy", []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755)

	// The environment as the kubelet gives it, but for what a test on a
	// shared machine must change: discoveryAddress and CA_ADDR are the
	// secure port at localhost (the test cannot make the machine's DNS
	// resolve istiod.istio-system.svc; pilot-agent's CA client verifies
	// the host it dials), and the agent's and Envoy's admin ports are free
	// ones.
	var pc map[string]any
	if err := json.Unmarshal([]byte(ap.env["PROXY_CONFIG"]), &pc); err != nil {
		t.Fatal(err)
	}
	if got, ok := pc["discoveryAddress"]; ok && got != pilotAgentDefaultDiscovery {
		t.Errorf("injected discoveryAddress %v, want none (pilot-agent's default) or %s", got, pilotAgentDefaultDiscovery)
	}
	ports := must(testkit.FreePorts(2))(t)
	statusPort, adminPort := ports[0], ports[1]
	pc["discoveryAddress"] = tlsAddr
	pc["binaryPath"] = envoyBin
	pc["statusPort"] = statusPort
	pc["proxyAdminPort"] = adminPort
	pcJSON, _ := json.Marshal(pc)
	envv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	for k, v := range ap.env {
		switch k {
		case "PROXY_CONFIG", "CA_ADDR":
			continue
		}
		envv = append(envv, k+"="+v)
	}
	envv = append(envv, "PROXY_CONFIG="+string(pcJSON), "CA_ADDR="+tlsAddr,
		"XDS_ROOT_CA="+rootFile, "CA_ROOT_CA="+rootFile)

	// The kubelet expands $(VAR) in a container's arguments.
	proxyArgs = slices.Clone(proxyArgs)
	for i, a := range proxyArgs {
		proxyArgs[i] = os.Expand(strings.ReplaceAll(strings.ReplaceAll(a, "$(", "${"), ")", "}"), func(k string) string { return ap.env[k] })
	}
	cmd := exec.Command(bins.PilotAgent, proxyArgs...)
	cmd.Dir, cmd.Env = dir, envv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile := must(os.Create(filepath.Join(dir, "pilot-agent.log")))(t)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			t.Logf("pilot-agent stopped: %v", err)
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its group: pilot-agent and its Envoy
			t.Logf("pilot-agent killed: %v", <-exited)
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("pilot-agent's log:\n%s", tail(filepath.Join(dir, "pilot-agent.log"), 8<<10))
		}
	})

	admin := &fakeEnvoyAdmin{}
	adminSrv := &http.Server{Addr: "127.0.0.1:" + strconv.Itoa(adminPort), Handler: admin, ReadHeaderTimeout: 5 * time.Second}
	adminLn, err := net.Listen("tcp", adminSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = adminSrv.Serve(adminLn) }()
	t.Cleanup(func() { _ = adminSrv.Close() })

	// The bootstrap pilot-agent wrote for Envoy: the node Envoy announces.
	bootstrap := filepath.Join(dir, "etc", "istio", "proxy", "envoy-rev.json")
	var node *corev3.Node
	waitFor(t, exited, 60*time.Second, "pilot-agent's Envoy bootstrap "+bootstrap, func() error {
		data, err := os.ReadFile(bootstrap)
		if err != nil {
			return err
		}
		var b struct {
			Node json.RawMessage `json:"node"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			return err
		}
		n := &corev3.Node{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b.Node, n); err != nil {
			return err
		}
		node = n
		return nil
	})
	return &realAgent{dir: dir, node: node, exited: exited, admin: admin, statusPort: statusPort}
}

// waitFor polls f until it returns nil, failing after timeout or when
// pilot-agent exits.
func waitFor(t *testing.T, exited chan error, timeout time.Duration, what string, f func() error) {
	t.Helper()
	testkit.Eventually(t, timeout, what, func() string {
		err := f()
		if err == nil {
			return ""
		}
		select {
		case e := <-exited:
			exited <- e
			t.Fatalf("%s: pilot-agent exited (%v); last error: %v", what, e, err)
		default:
		}
		return fmt.Sprintf("not after %v: %v", timeout, err)
	})
}

// sdsCertificate asks an SDS server on a unix socket for Envoy's
// "default" secret and returns its certificate chain.
func sdsCertificate(ctx context.Context, socket string, node *corev3.Node) ([]*x509.Certificate, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", ResourceNames: []string{"default"}}); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return nil, err
	}
	if len(resp.GetResources()) == 0 {
		return nil, fmt.Errorf("SDS answered no secret")
	}
	sec := &tlsv3.Secret{}
	if err := resp.GetResources()[0].UnmarshalTo(sec); err != nil {
		return nil, err
	}
	chain := sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
	var out []*x509.Certificate
	for len(chain) > 0 {
		var block *pem.Block
		block, chain = pem.Decode(chain)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("SDS secret %q has no certificate", sec.GetName())
	}
	return out, nil
}

// tail returns the last limit bytes of a file.
func tail(path string, limit int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		_, _ = f.Seek(fi.Size()-limit, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, limit))
	return string(b)
}
