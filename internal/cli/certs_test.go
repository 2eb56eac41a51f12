package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// causeway runs the root command with args and returns what it printed.
func causeway(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// mustCauseway runs the root command and fails the test on an error.
func mustCauseway(t *testing.T, args ...string) string {
	t.Helper()
	out, err := causeway(t, args...)
	if err != nil {
		t.Fatalf("causeway %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readBundle(t *testing.T, dir string) pki.Bundle {
	t.Helper()
	b, err := pki.ReadBundle(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCertsHomeLabFlow is the home lab's flow: one root, one intermediate per
// cluster; a workload of cluster1 verifies with cluster2's root.
func TestCertsHomeLabFlow(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	out := mustCauseway(t, "certs", "root", "--out", certs)
	testkit.ContainsAll(t, "root output", out, "wrote "+filepath.Join(certs, "root-cert.pem"), "wrote "+filepath.Join(certs, "root-key.pem"), "CN=Root CA,O=Istio")
	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "cluster1")
	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "cluster2", "--key", "rsa", "--days", "365")

	modes := map[string]os.FileMode{
		"root-cert.pem": 0o644, "root-key.pem": 0o600,
		"cluster1/ca-cert.pem": 0o644, "cluster1/ca-key.pem": 0o600, "cluster1/root-cert.pem": 0o644, "cluster1/cert-chain.pem": 0o644,
		"cluster2/ca-key.pem": 0o600,
	}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(certs, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}

	b1, b2 := readBundle(t, filepath.Join(certs, "cluster1")), readBundle(t, filepath.Join(certs, "cluster2"))
	infos, err := pki.Inspect(b2.CertChain)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{infos[0].Subject, infos[0].KeyAlgorithm, infos[1].Subject}
	if diff := cmp.Diff([]string{"CN=Intermediate CA,O=Istio,L=cluster2", "RSA 2048", "CN=Root CA,O=Istio"}, got); diff != "" {
		t.Errorf("cluster2's chain (-want +got):\n%s", diff)
	}
	if days := infos[0].NotAfter.Sub(infos[0].NotBefore).Hours() / 24; days < 365 || days > 366 {
		t.Errorf("cluster2's intermediate is valid %.2f days, want 365", days)
	}
	if !bytes.Equal(b1.RootCert, readFile(t, filepath.Join(certs, "root-cert.pem"))) {
		t.Error("cluster1/root-cert.pem is not the root")
	}
	ca1, err := pki.NewCA(b1)
	if err != nil {
		t.Fatalf("cluster1's files do not make a CA: %v", err)
	}
	if _, err := pki.NewCA(b2); err != nil {
		t.Fatalf("cluster2's files do not make a CA: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca1.SignServing(key.Public(), []string{"helloworld.sample.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.Verify(leaf.ChainPEM(), b2.RootCert, pki.VerifyOptions{}); err != nil {
		t.Errorf("cluster1's certificate against cluster2's root: %v", err)
	}
}

func TestCertsRefuseOverwrite(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	mustCauseway(t, "certs", "root", "--out", certs)
	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "c1")
	rootKey := readFile(t, filepath.Join(certs, "root-key.pem"))
	caKey := readFile(t, filepath.Join(certs, "c1", "ca-key.pem"))

	for _, args := range [][]string{
		{"certs", "root", "--out", certs},
		{"certs", "intermediate", "--root", certs, "--cluster", "c1"},
	} {
		_, err := causeway(t, args...)
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") || !strings.Contains(err.Error(), "--force") {
			t.Errorf("causeway %s: got %v, want a refusal naming --force", strings.Join(args, " "), err)
		}
	}
	if !bytes.Equal(rootKey, readFile(t, filepath.Join(certs, "root-key.pem"))) ||
		!bytes.Equal(caKey, readFile(t, filepath.Join(certs, "c1", "ca-key.pem"))) {
		t.Fatal("a refused command changed a key")
	}

	// Only the key left behind still counts: nothing is written.
	lone := filepath.Join(t.TempDir(), "lone")
	writeFile(t, filepath.Join(lone, "ca-key.pem"), []byte("precious"))
	if _, err := causeway(t, "certs", "intermediate", "--root", certs, "--cluster", "c2", "--out", lone); err == nil {
		t.Error("overwrote a lone ca-key.pem")
	}
	if _, err := os.Stat(filepath.Join(lone, "ca-cert.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused command wrote ca-cert.pem: %v", err)
	}

	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "c1", "--force")
	if bytes.Equal(caKey, readFile(t, filepath.Join(certs, "c1", "ca-key.pem"))) {
		t.Error("--force did not replace ca-key.pem")
	}
	mustCauseway(t, "certs", "root", "--out", certs, "--force", "--org", "Acme")
	if bytes.Equal(rootKey, readFile(t, filepath.Join(certs, "root-key.pem"))) {
		t.Error("--force did not replace root-key.pem")
	}
	entries, err := os.ReadDir(certs)
	if err != nil {
		t.Fatal(err)
	}
	// The set lives in one ..set-* folder behind ..data; nothing else.
	sets := 0
	for _, e := range entries {
		switch {
		case e.Name() == pki.DataLink:
		case strings.HasPrefix(e.Name(), pki.SetPrefix):
			sets++
		case strings.HasPrefix(e.Name(), "."):
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if sets != 1 {
		t.Errorf("%d set folders in %s, want the current one only", sets, certs)
	}
}

// selfSignedNonCA returns a self-signed certificate that is not a CA and its
// key, both PEM.
func selfSignedNonCA(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not a CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func TestCertsIntermediateErrors(t *testing.T) {
	base := t.TempDir()
	root := func(name string, certPEM, keyPEM []byte) string {
		dir := filepath.Join(base, name)
		writeFile(t, filepath.Join(dir, "root-cert.pem"), certPEM)
		if keyPEM != nil {
			writeFile(t, filepath.Join(dir, "root-key.pem"), keyPEM)
		}
		return dir
	}
	goodCert, goodKey, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expiredCert, expiredKey, err := pki.NewRoot(pki.RootOptions{Days: 1, Now: time.Now().AddDate(0, 0, -2)})
	if err != nil {
		t.Fatal(err)
	}
	nonCACert, nonCAKey := selfSignedNonCA(t)
	inter, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: goodCert, RootKey: goodKey, Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	good := root("good", goodCert, goodKey)
	emptyDir := filepath.Join(base, "empty")
	if err := os.Mkdir(emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no root folder", []string{"--root", filepath.Join(base, "nowhere"), "--cluster", "c"}, "does not exist: make a root first with `causeway certs root"},
		{"root folder without root files", []string{"--root", emptyDir, "--cluster", "c"}, "has no root-cert.pem"},
		{"root is a file", []string{"--root", filepath.Join(good, "root-cert.pem"), "--cluster", "c"}, "is a file"},
		{"root without its key", []string{"--root", root("nokey", goodCert, nil), "--cluster", "c"}, "but no root-key.pem"},
		{"key of another root", []string{"--root", root("mismatch", goodCert, otherKey), "--cluster", "c"}, "private key does not match the certificate"},
		{"root is not a CA", []string{"--root", root("nonca", nonCACert, nonCAKey), "--cluster", "c"}, "certificate is not a CA"},
		{"expired root", []string{"--root", root("expired", expiredCert, expiredKey), "--cluster", "c"}, "certificate has expired"},
		{"root is an intermediate", []string{"--root", root("inter", inter.CACert, inter.CAKey), "--cluster", "c"}, "root certificate is not self-signed"},
		{"no cluster", []string{"--root", good}, `required flag(s) "cluster" not set`},
		{"bad cluster id", []string{"--root", good, "--cluster", "a/b"}, `--cluster: cluster id "a/b"`},
		{"cluster id ending in a dot", []string{"--root", good, "--cluster", "cluster1."}, `--cluster: cluster id "cluster1."`},
		{"bad key type", []string{"--root", good, "--cluster", "c", "--key", "dsa"}, `--key: key type "dsa"`},
		{"rsa bits with ec", []string{"--root", good, "--cluster", "c", "--rsa-bits", "4096"}, "applies to --key rsa only"},
		{"outlives the root", []string{"--root", good, "--cluster", "c", "--days", "4000"}, "would outlive the root"},
		{"apply with a missing kubeconfig", []string{"--root", good, "--cluster", "c", "--apply", "--kubeconfig", filepath.Join(base, "none")}, "load kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			_, err := causeway(t, append([]string{"certs", "intermediate", "--out", dest}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed command made %s", dest)
			}
		})
	}
}

func TestCertsRootFlags(t *testing.T) {
	dir := t.TempDir()
	mustCauseway(t, "certs", "root", "--out", dir, "--org", "Acme", "--cn", "Mesh Root", "--days", "30", "--key", "rsa")
	infos, err := pki.Inspect(readFile(t, filepath.Join(dir, "root-cert.pem")))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{infos[0].Subject, infos[0].KeyAlgorithm}
	if diff := cmp.Diff([]string{"CN=Mesh Root,O=Acme", "RSA 2048"}, got); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	for _, args := range [][]string{
		{"certs", "root"},
		{"certs", "root", "--out", t.TempDir(), "--days", "-1"},
		{"certs", "root", "--out", t.TempDir(), "--key", "rsa", "--rsa-bits", "1024"},
	} {
		if _, err := causeway(t, args...); err == nil {
			t.Errorf("causeway %s succeeded", strings.Join(args, " "))
		}
	}
}

func TestCertsInspect(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	mustCauseway(t, "certs", "root", "--out", certs)
	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "cluster1")
	mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", "cluster2")
	chain := filepath.Join(certs, "cluster1", "cert-chain.pem")

	text := mustCauseway(t, "certs", "inspect", chain)
	testkit.ContainsAll(t, "inspect output", text,
		chain+": 2 certificates",
		"[0] CN=Intermediate CA,O=Istio,L=cluster1",
		"[1] CN=Root CA,O=Istio (self-signed)",
		"yes, path length 0",
		"DNS:              istiod.istio-system.svc",
		"chain: ok",
	)

	var report pki.Report
	if err := json.Unmarshal([]byte(mustCauseway(t, "certs", "inspect", "-o", "json", filepath.Join(certs, "cluster1"))), &report); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, src := range report.Sources {
		for _, c := range src.Certificates {
			got = append(got, filepath.Base(src.Source)+" "+c.Subject)
		}
	}
	want := []string{
		"ca-cert.pem CN=Intermediate CA,O=Istio,L=cluster1",
		"cert-chain.pem CN=Intermediate CA,O=Istio,L=cluster1",
		"cert-chain.pem CN=Root CA,O=Istio",
		"root-cert.pem CN=Root CA,O=Istio",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inspect of the folder (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]pki.BundleCheck{{Source: filepath.Join(certs, "cluster1") + "/", Check: "ok"}}, report.Bundles); diff != "" {
		t.Errorf("bundle check (-want +got):\n%s", diff)
	}

	// A broken bundle: cluster2's key with cluster1's certificate; a chain
	// whose root is from another mesh.
	broken := filepath.Join(t.TempDir(), "broken")
	b1, b2 := readBundle(t, filepath.Join(certs, "cluster1")), readBundle(t, filepath.Join(certs, "cluster2"))
	writeFile(t, filepath.Join(broken, "ca-cert.pem"), b1.CACert)
	writeFile(t, filepath.Join(broken, "ca-key.pem"), b2.CAKey)
	writeFile(t, filepath.Join(broken, "root-cert.pem"), b1.RootCert)
	otherRoot, _, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(broken, "cert-chain.pem"), append(append([]byte{}, b1.CACert...), otherRoot...))
	text = mustCauseway(t, "certs", "inspect", broken)
	testkit.ContainsAll(t, "inspect of a broken bundle", text,
		"chain: chain[0]", "(same name, different key)",
		"CA bundle "+broken+"/: ca-cert.pem and ca-key.pem: private key does not match the certificate",
	)

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(certs, "root-key.pem")}, "no PEM certificate found (is it a key"},
		{[]string{filepath.Join(certs, "missing.pem")}, "no such file"},
		{nil, "give PEM files or folders"},
		{[]string{chain, "--secret", "istio-system/cacerts"}, "one of them"},
		{[]string{"--secret", "cacerts"}, "want NAMESPACE/NAME"},
		{[]string{chain, "-o", "wide"}, `-o "wide": want table, json or yaml`},
	} {
		_, err := causeway(t, append([]string{"certs", "inspect"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("inspect %v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestCertsValidity(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		from, to time.Time
		want     string
	}{
		{now.Add(-day), now.Add(30 * day), "expires in 30 days"},
		{now.Add(-day), now.Add(day), "expires in 1 day"},
		{now.Add(-day), now.Add(time.Hour), "expires in less than a day"},
		{now.Add(-3 * day), now.Add(-2 * day), "EXPIRED 2 days ago"},
		{now.Add(5 * day), now.Add(9 * day), "NOT VALID YET, valid in 5 days"},
	}
	for _, tt := range tests {
		if got := certsValidity(tt.from, tt.to, now); got != tt.want {
			t.Errorf("certsValidity(%v, %v) = %q, want %q", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestCertsApplySecret(t *testing.T) {
	rootCert, rootKey, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b1, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "cluster1"})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: "cluster1"})
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset()
	ctx := t.Context()

	created, err := ca.ApplyPluginSecret(ctx, cs, "istio-system", b1)
	if err != nil || !created {
		t.Fatalf("first apply: created=%t, %v", created, err)
	}
	created, err = ca.ApplyPluginSecret(ctx, cs, "istio-system", b2)
	if err != nil || created {
		t.Fatalf("second apply: created=%t, %v; want an update", created, err)
	}
	s, err := cs.CoreV1().Secrets("istio-system").Get(ctx, "cacerts", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b2.Data(), s.Data); diff != "" {
		t.Errorf("Secret data after the update (-want +got):\n%s", diff)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret type %q, want Opaque", s.Type)
	}

	tlsSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cacerts", Namespace: "other"}, Type: corev1.SecretTypeTLS}
	if _, err := cs.CoreV1().Secrets("other").Create(ctx, tlsSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.ApplyPluginSecret(ctx, cs, "other", b1); err == nil || !strings.Contains(err.Error(), "not Opaque") {
		t.Errorf("apply over a TLS Secret: %v, want an error saying it is not Opaque", err)
	}
}
