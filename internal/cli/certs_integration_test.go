package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestCertsApplyIntegration plugs one root's intermediates into two real
// apiservers as the cacerts Secret, replaces one, and inspects them back.
func TestCertsApplyIntegration(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	clusters := testenv.StartClusters(t, 2)
	ctx := t.Context()
	certs := filepath.Join(t.TempDir(), "certs")
	mustCauseway(t, "certs", "root", "--out", certs)

	for _, c := range clusters {
		if _, err := testenv.CreateNamespace(ctx, c.Client(), "istio-system", nil); err != nil {
			t.Fatal(err)
		}
		kubeconfig := c.WriteKubeconfig(t)
		out := mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", c.ID, "--apply", "--kubeconfig", kubeconfig)
		if want := "created Secret istio-system/cacerts in " + c.Host; !strings.Contains(out, want) {
			t.Errorf("%s: output lacks %q:\n%s", c.ID, want, out)
		}
		checkCACertsSecret(t, c, filepath.Join(certs, c.ID))

		text := mustCauseway(t, "certs", "inspect", "--secret", "istio-system/cacerts", "--kubeconfig", kubeconfig)
		testkit.ContainsAll(t, c.ID+": inspect --secret", text,
			"secret istio-system/cacerts cert-chain.pem: 2 certificates",
			"[0] CN=Intermediate CA,O=Istio,L="+c.ID,
			"[1] CN=Root CA,O=Istio (self-signed)",
			"chain: ok",
			"CA bundle secret istio-system/cacerts: ok",
		)
		if strings.Contains(text, "ca-key.pem:") {
			t.Errorf("%s: inspect --secret shows the key:\n%s", c.ID, text)
		}
	}

	// Rotate cluster1's intermediate: the Secret is updated in place.
	c1 := clusters[0]
	kubeconfig := c1.WriteKubeconfig(t)
	out := mustCauseway(t, "certs", "intermediate", "--root", certs, "--cluster", c1.ID, "--force", "--apply", "--kubeconfig", kubeconfig)
	if !strings.Contains(out, "updated Secret istio-system/cacerts") {
		t.Errorf("second apply did not update:\n%s", out)
	}
	checkCACertsSecret(t, c1, filepath.Join(certs, c1.ID))

	// A namespace that does not exist is named, with what to do.
	_, err := causeway(t, "certs", "intermediate", "--root", certs, "--cluster", "x", "--apply",
		"--kubeconfig", kubeconfig, "--namespace", "no-such-ns")
	if err == nil || !strings.Contains(err.Error(), "namespace no-such-ns does not exist") {
		t.Errorf("apply to a missing namespace: %v", err)
	}

	// The root ConfigMap workloads mount, as the home lab inspects it.
	c2 := clusters[1]
	root := readFile(t, filepath.Join(certs, "root-cert.pem"))
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-ca-root-cert", Namespace: "istio-system"},
		Data:       map[string]string{"root-cert.pem": string(root)},
	}
	if _, err := c2.Client().CoreV1().ConfigMaps("istio-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	text := mustCauseway(t, "certs", "inspect", "--configmap", "istio-system/istio-ca-root-cert", "--kubeconfig", c2.WriteKubeconfig(t))
	if !strings.Contains(text, "configmap istio-system/istio-ca-root-cert root-cert.pem: 1 certificate") ||
		!strings.Contains(text, "CN=Root CA,O=Istio (self-signed)") {
		t.Errorf("inspect --configmap:\n%s", text)
	}
	if _, err := causeway(t, "certs", "inspect", "--secret", "istio-system/missing", "--kubeconfig", kubeconfig); err == nil ||
		!strings.Contains(err.Error(), "not found") {
		t.Errorf("inspect of a missing Secret: %v", err)
	}
}

// checkCACertsSecret compares the cacerts Secret of c with the files in dir.
func checkCACertsSecret(t *testing.T, c *testenv.Cluster, dir string) {
	t.Helper()
	s, err := c.Client().CoreV1().Secrets("istio-system").Get(t.Context(), "cacerts", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: %v", c.ID, err)
	}
	if diff := cmp.Diff(readBundle(t, dir).Data(), s.Data); diff != "" {
		t.Errorf("%s: Secret cacerts (-files +secret):\n%s", c.ID, diff)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("%s: Secret type %q, want Opaque", c.ID, s.Type)
	}
	if _, err := pki.NewCA(pki.BundleFromData(s.Data)); err != nil {
		t.Errorf("%s: the Secret is not a valid CA: %v", c.ID, err)
	}
}
