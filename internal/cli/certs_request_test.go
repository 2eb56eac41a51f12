package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// certsRequestToken is a JWT-shaped token a test reviewer knows by name.
func certsRequestToken(name string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(`{"aud":["istio-ca"],"sub":"`+name+`"}`)) + ".c2ln"
}

// certsRequestCA runs a CA in process (a plug-in intermediate of a new
// root, clusters cluster1 and cluster2 with a test token reviewer each)
// serving on 127.0.0.1, and returns its address and root.
func certsRequestCA(t *testing.T) (addr string, root []byte, intermediate *x509.Certificate) {
	t.Helper()
	rootCert, rootKey, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "cluster1"})
	if err != nil {
		t.Fatal(err)
	}
	c1 := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ca.PluginSecretName, Namespace: "istio-system"},
		Data:       bundle.Data(),
	})
	c2 := fake.NewClientset()
	tokens := map[kubernetes.Interface]map[string][2]string{
		c1: {certsRequestToken("app-workload"): {"app", "workload"}},
		c2: {certsRequestToken("shop-cart"): {"shop", "cart"}},
	}
	auth, err := ca.New(ca.Config{
		ClusterID: "cluster1",
		Client:    c1,
		Clusters: func(id model.ClusterID) (kubernetes.Interface, bool) {
			return c2, id == "cluster2"
		},
		NewReviewer: func(c kubernetes.Interface) ca.TokenReviewer {
			return ca.TokenReviewerFunc(func(_ context.Context, token string, _ []string) (string, string, error) {
				id, ok := tokens[c][token]
				if !ok {
					return "", "", ca.ErrUnauthenticated
				}
				return id[0], id[1], nil
			})
		},
		CustomHosts: []string{"mesh.example.com"},
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- auth.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("CA: %v", err)
		}
	})
	waitCtx, stop := context.WithTimeout(t.Context(), 30*time.Second)
	defer stop()
	if err := auth.WaitReady(waitCtx); err != nil {
		t.Fatal(err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(auth.ServingTLSConfig())))
	auth.Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	inter, err := x509.ParseCertificate(mustDecodePEM(t, bundle.CACert))
	if err != nil {
		t.Fatal(err)
	}
	return lis.Addr().String(), rootCert, inter
}

func mustDecodePEM(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("not PEM")
	}
	return block.Bytes
}

func TestCertsRequest(t *testing.T) {
	addr, root, intermediate := certsRequestCA(t)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root-cert.pem")
	writeFile(t, rootFile, root)
	token := func(name string) string {
		p := filepath.Join(dir, name+".token")
		writeFile(t, p, []byte(certsRequestToken(name)+"\n"))
		return p
	}
	appToken, cartToken := token("app-workload"), token("shop-cart")
	emptyToken := filepath.Join(dir, "empty.token")
	writeFile(t, emptyToken, []byte("\n"))

	tests := []struct {
		name    string
		args    []string
		wantID  string // the SPIFFE id of the certificate written
		wantErr []string
	}{
		{name: "config cluster",
			args:   []string{"--token-file", appToken, "--root-cert", rootFile, "--server-name", "istiod.istio-system.svc", "-n", "app", "--service-account", "workload"},
			wantID: "spiffe://cluster.local/ns/app/sa/workload"},
		{name: "remote cluster by id, custom host",
			args: []string{"--token-file", cartToken, "--cluster-id", "cluster2", "--root-cert", rootFile, "--server-name", "mesh.example.com",
				"--namespace", "shop", "--service-account", "cart", "--ttl", "1h"},
			wantID: "spiffe://cluster.local/ns/shop/sa/cart"},
		{name: "token of another cluster",
			args:    []string{"--token-file", cartToken, "--root-cert", rootFile, "--server-name", "mesh.example.com", "-n", "shop", "--service-account", "cart"},
			wantErr: []string{"the CA refused the token", "--cluster-id"}},
		{name: "another service account than the token's",
			args:    []string{"--token-file", appToken, "--root-cert", rootFile, "--server-name", "mesh.example.com", "-n", "app", "--service-account", "admin"},
			wantErr: []string{"the CA refused the request", "name not allowed", "must be those of the token"}},
		{name: "address the certificate does not name",
			args:    []string{"--token-file", appToken, "--root-cert", rootFile, "-n", "app", "--service-account", "workload"},
			wantErr: []string{"server name 127.0.0.1", "pass --server-name"}},
		{name: "no root",
			args:    []string{"--token-file", appToken, "--server-name", "mesh.example.com", "-n", "app", "--service-account", "workload"},
			wantErr: []string{"unknown authority", "pass --root-cert"}},
		{name: "empty token file",
			args:    []string{"--token-file", emptyToken, "--root-cert", rootFile, "-n", "app", "--service-account", "workload"},
			wantErr: []string{"is empty", "kubectl -n app create token workload --audience istio-ca"}},
		{name: "bad namespace",
			args:    []string{"--token-file", appToken, "-n", "App_1", "--service-account", "workload"},
			wantErr: []string{`--namespace "App_1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "certs")
			args := append([]string{"certs", "request", "--ca-addr", addr, "--timeout", "10s", "--out", out}, tt.args...)
			text, err := causeway(t, args...)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; output:\n%s", text)
				}
				t.Logf("causeway: %v", err)
				testkit.ContainsAll(t, "error", err.Error(), tt.wantErr...)
				if _, statErr := os.Stat(filepath.Join(out, "key.pem")); statErr == nil {
					t.Error("a key was written although the request failed")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			checkWorkloadFiles(t, out, root, intermediate, tt.wantID)
			for _, want := range []string{"wrote " + filepath.Join(out, "key.pem"), "wrote " + filepath.Join(out, "cert-chain.pem"),
				"wrote " + filepath.Join(out, "root-cert.pem"), tt.wantID + ", valid until", "issued by CN=Intermediate CA,O=Istio,L=cluster1"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}
			// Again: a renewal replaces the files with a new key.
			oldKey := readFile(t, filepath.Join(out, "key.pem"))
			mustCauseway(t, args...)
			checkWorkloadFiles(t, out, root, intermediate, tt.wantID)
			if bytes.Equal(oldKey, readFile(t, filepath.Join(out, "key.pem"))) {
				t.Error("the renewal kept the old key")
			}
		})
	}
}

// checkWorkloadFiles checks what `certs request` wrote into dir.
func checkWorkloadFiles(t *testing.T, dir string, root []byte, intermediate *x509.Certificate, id string) {
	t.Helper()
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	chain := readFile(t, filepath.Join(dir, "cert-chain.pem"))
	if got := readFile(t, filepath.Join(dir, "root-cert.pem")); !bytes.Equal(got, root) {
		t.Error("root-cert.pem is not the CA's root")
	}
	if err := pki.Verify(chain, root, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("cert-chain.pem does not verify to the root: %v", err)
	}
	infos, err := pki.Inspect(chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || strings.Join(infos[0].URIs, ",") != id || infos[1].SHA256 != pki.Describe(intermediate).SHA256 {
		t.Errorf("cert-chain.pem: %d certificates, URIs %v; want the workload certificate for %s, then the intermediate", len(infos), infos[0].URIs, id)
	}
	// The key is the certificate's.
	if _, err := tls.X509KeyPair(chain, readFile(t, filepath.Join(dir, "key.pem"))); err != nil {
		t.Errorf("key.pem does not match the certificate: %v", err)
	}
}

// certsRequestLog is a goroutine-safe log sink.
type certsRequestLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *certsRequestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *certsRequestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// certsRequestControlPlane runs, in process, the CA half of `causeway serve`
// for the config cluster c (multi-primary: one per cluster), publishing the
// root into every cluster, and returns the address of its secure port.
func certsRequestControlPlane(t *testing.T, c *testenv.Cluster, all []*testenv.Cluster, log io.Writer) string {
	t.Helper()
	auth, err := ca.New(ca.Config{
		ClusterID: model.ClusterID(c.ID),
		Client:    c.Client(),
		Clusters: func(id model.ClusterID) (kubernetes.Interface, bool) {
			for _, o := range all {
				if o.ID == string(id) {
					return o.Client(), true
				}
			}
			return nil, false
		},
		Logger: slog.New(slog.NewTextHandler(log, nil)).With("cp", c.ID),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := auth.Run(ctx); err != nil {
			t.Errorf("CA of %s: %v", c.ID, err)
		}
	})
	for _, o := range all {
		wg.Go(func() {
			if err := auth.PublishRoot(ctx, model.ClusterID(o.ID), o.Client()); err != nil {
				t.Errorf("publish into %s: %v", o.ID, err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	waitCtx, stop := context.WithTimeout(t.Context(), 30*time.Second)
	defer stop()
	if err := auth.WaitReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(auth.ServingTLSConfig())))
	auth.Register(srv)
	wg.Go(func() { _ = srv.Serve(lis) })
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestCertsRequestWalkthrough is the home lab's flow end to end against two
// real API servers (multi-primary, one shared root): certs root, an
// intermediate per cluster applied as cacerts, each control plane's CA
// picks its own up, certs request fetches a workload certificate from each
// with a real service-account token, and the two chains lead to the same
// root. A new intermediate is then picked up without a restart. Run it with
// -v to see every output (the README's walkthrough comes from it).
func TestCertsRequestWalkthrough(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	clusters := testenv.StartClusters(t, 2)
	ctx := t.Context()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	show := func(cmd, out string) { t.Logf("$ %s\n%s", cmd, out) }
	run := func(args ...string) string {
		t.Helper()
		out := mustCauseway(t, args...)
		show("causeway "+strings.Join(args, " "), out)
		return out
	}
	run("certs", "root", "--out", certs)
	kubeconfigs := map[string]string{}
	for _, c := range clusters {
		for _, ns := range []string{"istio-system", "app"} {
			if _, err := testenv.CreateNamespace(ctx, c.Client(), ns, nil); err != nil {
				t.Fatal(err)
			}
		}
		kubeconfigs[c.ID] = c.WriteKubeconfig(t)
		run("certs", "intermediate", "--root", certs, "--cluster", c.ID, "--apply", "--kubeconfig", kubeconfigs[c.ID])
	}

	var log certsRequestLog
	addrs := map[string]string{}
	for _, c := range clusters {
		addrs[c.ID] = certsRequestControlPlane(t, c, clusters, &log)
	}
	t.Logf("control plane logs:\n%s", log.String())
	if got := strings.Count(log.String(), `msg="CA loaded" cp=`); got != 2 {
		t.Errorf("%d CA loads logged, want one per control plane", got)
	}

	rootFile := filepath.Join(dir, "root-cert.pem")
	for _, c := range clusters {
		// The root each cluster's workloads mount.
		var cm *corev1.ConfigMap
		testkit.Eventually(t, 30*time.Second, c.ID+": root ConfigMap", testkit.Succeeds(func() error {
			var err error
			cm, err = c.Client().CoreV1().ConfigMaps("app").Get(ctx, ca.RootConfigMapName, metav1.GetOptions{})
			return err
		}))
		if cm.Data[ca.RootConfigMapKey] != string(readFile(t, filepath.Join(certs, "root-cert.pem"))) {
			t.Errorf("%s: the published root is not the mesh root", c.ID)
		}
		writeFile(t, rootFile, []byte(cm.Data[ca.RootConfigMapKey]))
		rootInfo, err := pki.Inspect(readFile(t, filepath.Join(certs, "root-cert.pem")))
		if err != nil {
			t.Fatal(err)
		}
		if text := run("certs", "inspect", "--configmap", "app/"+ca.RootConfigMapName, "--kubeconfig", kubeconfigs[c.ID]); !strings.Contains(text, rootInfo[0].SHA256) {
			t.Errorf("%s: the root ConfigMap's inspection lacks the root's fingerprint", c.ID)
		}

		if _, err := c.Client().CoreV1().ServiceAccounts("app").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "workload"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := c.Client().CoreV1().ServiceAccounts("app").CreateToken(ctx, "workload", &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{"istio-ca"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokenFile := filepath.Join(dir, c.ID+".token")
		writeFile(t, tokenFile, []byte(tr.Status.Token))
		out := run("certs", "request", "--ca-addr", addrs[c.ID], "--server-name", "istiod.istio-system.svc", "--root-cert", rootFile,
			"--token-file", tokenFile, "--cluster-id", c.ID, "--namespace", "app", "--service-account", "workload", "--out", filepath.Join(dir, c.ID+"-workload"))
		if !strings.Contains(out, "issued by CN=Intermediate CA,O=Istio,L="+c.ID) {
			t.Errorf("%s: not issued by the cluster's own intermediate:\n%s", c.ID, out)
		}
		text := run("certs", "inspect", filepath.Join(dir, c.ID+"-workload", "cert-chain.pem"))
		for _, want := range []string{"2 certificates", "URI:", "spiffe://cluster.local/ns/app/sa/workload", "L=" + c.ID} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: inspect lacks %q", c.ID, want)
			}
		}
	}
	// One mesh: cluster1's workload chain verifies with cluster2's root.
	w1 := filepath.Join(dir, "cluster1-workload")
	w2 := filepath.Join(dir, "cluster2-workload")
	if err := pki.Verify(readFile(t, filepath.Join(w1, "cert-chain.pem")), readFile(t, filepath.Join(w2, "root-cert.pem")), pki.VerifyOptions{}); err != nil {
		t.Errorf("cluster1's workload against cluster2's root: %v", err)
	}
	// The same, by a verifier Causeway did not write.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		chain := filepath.Join(w1, "cert-chain.pem")
		args := []string{"verify", "-purpose", "sslclient", "-CAfile", filepath.Join(w2, "root-cert.pem"), "-untrusted", chain, chain}
		out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput()
		show("openssl "+strings.Join(args, " "), string(out))
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl verify: %v\n%s", err, out)
		}
	}

	// A new intermediate for cluster1: picked up without a restart.
	log.mu.Lock()
	log.buf.Reset()
	log.mu.Unlock()
	run("certs", "intermediate", "--root", certs, "--cluster", "cluster1", "--force", "--apply", "--kubeconfig", kubeconfigs["cluster1"])
	newCA := readFile(t, filepath.Join(certs, "cluster1", "ca-cert.pem"))
	testkit.Eventually(t, 30*time.Second, "the new intermediate was not loaded", func() string {
		if s := log.String(); !strings.Contains(s, "previous=istio-system/cacerts") {
			return s
		}
		return ""
	})
	t.Logf("control plane logs:\n%s", log.String())
	run("certs", "request", "--ca-addr", addrs["cluster1"], "--server-name", "istiod.istio-system.svc", "--root-cert", rootFile,
		"--token-file", filepath.Join(dir, "cluster1.token"), "--namespace", "app", "--service-account", "workload", "--out", w1)
	run("certs", "inspect", filepath.Join(w1, "cert-chain.pem"))
	chain, err := pki.Inspect(readFile(t, filepath.Join(w1, "cert-chain.pem")))
	if err != nil {
		t.Fatal(err)
	}
	newInfo, err := pki.Inspect(newCA)
	if err != nil {
		t.Fatal(err)
	}
	if chain[1].SHA256 != newInfo[0].SHA256 {
		t.Error("after the rotation the certificate is not issued by the new intermediate")
	}
}
