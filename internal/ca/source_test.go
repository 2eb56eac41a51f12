package ca

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestSelfSignedCA: without cacerts the CA makes a root, keeps it in
// istio-ca-secret, and another replica uses the same; a plug-in CA added
// later takes over, and when it is deleted the self-signed root is back.
func TestSelfSignedCA(t *testing.T) {
	client := fake.NewClientset()
	ctx := t.Context()
	a := runAuthority(t, Config{ClusterID: "cluster1", Client: client, TrustDomain: "mesh.example", Logger: testkit.Logger(t)})

	secret, err := client.CoreV1().Secrets("istio-system").Get(ctx, SelfSignedSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("istio-ca-secret: %v", err)
	}
	if diff := cmp.Diff([]string{"ca-cert.pem", "ca-key.pem"}, slices.Sorted(maps.Keys(secret.Data))); diff != "" {
		t.Errorf("istio-ca-secret keys (-want +got):\n%s", diff)
	}
	if secret.Type != "istio.io/ca-root" {
		t.Errorf("istio-ca-secret type %q, want istio.io/ca-root", secret.Type)
	}
	selfRoot := a.Root()
	if !bytes.Equal(selfRoot, secret.Data["ca-cert.pem"]) {
		t.Error("the published root is not the one in istio-ca-secret")
	}
	if c := parseCert(t, selfRoot); !cmp.Equal(c.Subject.Organization, []string{"mesh.example"}) {
		t.Errorf("self-signed root O=%v, want the trust domain", c.Subject.Organization)
	}
	if got := a.Status().Source; got != "istio-system/istio-ca-secret" {
		t.Errorf("source %q", got)
	}

	// A second replica uses the root the first made.
	b := runAuthority(t, Config{ClusterID: "cluster1", Client: client, Logger: testkit.Logger(t)})
	if !bytes.Equal(b.Root(), selfRoot) {
		t.Error("a second replica made another root instead of using istio-ca-secret")
	}

	// A plug-in CA takes over without a restart.
	root := newTestRoot(t)
	bundle := root.intermediate(t, "cluster1")
	if _, err := client.CoreV1().Secrets("istio-system").Create(ctx, cacertsSecret("istio-system", bundle), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "plug-in CA used", testkit.Succeeds(func() error {
		if !bytes.Equal(a.Root(), root.cert) {
			return errors.New("still the self-signed root")
		}
		return nil
	}))
	if got := a.Status().Source; got != "istio-system/cacerts" {
		t.Errorf("source %q after cacerts was added", got)
	}

	// Without it, the self-signed root is used again.
	if err := client.CoreV1().Secrets("istio-system").Delete(ctx, PluginSecretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "self-signed CA back", testkit.Succeeds(func() error {
		if !bytes.Equal(a.Root(), selfRoot) {
			return errors.New("not the self-signed root")
		}
		return nil
	}))
}

// TestPluginCAErrors: a broken plug-in CA stops the start with an error
// that says what is wrong; a broken update keeps the CA in use.
func TestPluginCAErrors(t *testing.T) {
	root := newTestRoot(t)
	good := root.intermediate(t, "cluster1")
	other := root.intermediate(t, "cluster2")
	mismatched := good
	mismatched.CAKey = other.CAKey

	t.Run("at start", func(t *testing.T) {
		client := fake.NewClientset(cacertsSecret("istio-system", mismatched))
		a, err := New(Config{ClusterID: "cluster1", Client: client, Logger: testkit.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		err = a.Run(ctx)
		for _, want := range []string{"plug-in CA Secret istio-system/cacerts", "private key does not match", "causeway certs inspect"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Run: %v, want an error containing %q", err, want)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		client := fake.NewClientset(cacertsSecret("istio-system", good))
		reg := prometheus.NewRegistry()
		a := runAuthority(t, Config{ClusterID: "cluster1", Client: client, Registry: reg, Logger: testkit.Logger(t)})
		ctx := t.Context()
		if _, err := client.CoreV1().Secrets("istio-system").Update(ctx, cacertsSecret("istio-system", mismatched), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "failed load counted", testkit.Succeeds(func() error {
			if v := counter(t, reg, "causeway_ca_loads_total", map[string]string{"secret": PluginSecretName, "result": "error"}); v != 1 {
				return errors.New("no failed load yet")
			}
			return nil
		}))
		if !bytes.Equal(a.Root(), root.cert) || a.Status().Source != "istio-system/cacerts" {
			t.Error("a broken update replaced the CA in use")
		}
		// The CA in use still signs.
		csr, _ := newCSR(t)
		if r := a.createCertificate(metadataContext(ctx, "t"), requestOf(csr)); status.Code(r.err) != codes.Unauthenticated {
			t.Error("a request without a known token was accepted")
		}
		issued, err := a.state.Load().ca.SignCSR(csr, pki.SANs{URIs: []string{"spiffe://cluster.local/ns/a/sa/b"}}, time.Hour)
		if err != nil || parseCert(t, issued.Chain[1]).Subject.String() != parseCert(t, good.CACert).Subject.String() {
			t.Errorf("after a broken update the CA signs with another intermediate: %v", err)
		}

		// Fixed: the new intermediate is used.
		if _, err := client.CoreV1().Secrets("istio-system").Update(ctx, cacertsSecret("istio-system", other), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "fixed CA loaded", testkit.Succeeds(func() error {
			if counter(t, reg, "causeway_ca_loads_total", map[string]string{"secret": PluginSecretName, "result": "ok"}) != 2 {
				return errors.New("not reloaded")
			}
			return nil
		}))
	})
}

// TestCacertsNotSecretOfOtherNamespace: only the system namespace counts.
func TestCacertsOtherNamespace(t *testing.T) {
	root := newTestRoot(t)
	client := fake.NewClientset(cacertsSecret("default", root.intermediate(t, "cluster1")))
	a := runAuthority(t, Config{ClusterID: "cluster1", Client: client, SystemNamespace: "mesh-system", Logger: testkit.Logger(t)})
	if got := a.Status().Source; got != "mesh-system/istio-ca-secret" {
		t.Errorf("source %q, want mesh-system/istio-ca-secret", got)
	}
	if _, err := client.CoreV1().Secrets("mesh-system").Get(t.Context(), SelfSignedSecretName, metav1.GetOptions{}); err != nil {
		t.Errorf("istio-ca-secret in the system namespace: %v", err)
	}
}
