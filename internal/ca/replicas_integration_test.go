package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestIntegrationReplicasShareCA runs three authorities on one config
// cluster, as three replicas of `causeway serve` do. Started together
// with no CA Secret, they race to make the self-signed root and all end
// with the one stored in istio-ca-secret. With a plug-in CA, every replica
// signs from it: each one's serving certificate and the workload
// certificates it issues verify against the one root, so a proxy may reach
// any replica.
func TestIntegrationReplicasShareCA(t *testing.T) {
	testreq.NotShort(t, "starts a kube-apiserver")
	env := testenv.Start(t, testenv.Options{Clusters: 1})
	c1 := env.Clusters[0]
	cs := c1.Client()
	ctx := t.Context()
	createNamespaces(t, cs, "istio-system", "app")

	const replicas = 3
	auths := make([]*Authority, replicas)
	for i := range auths {
		a, err := New(Config{ClusterID: "cluster1", Client: cs, Clusters: lookup(c1), Writer: fmt.Sprintf("replica-%d", i), Logger: testkit.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		auths[i] = a
	}
	// Start every replica at once: the first load of each finds no Secret.
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, replicas)
	for _, a := range auths {
		go func() { done <- a.Run(runCtx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range replicas {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	waitCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	for i, a := range auths {
		if err := a.WaitReady(waitCtx); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}

	t.Run("one self-signed root", func(t *testing.T) {
		stored, err := cs.CoreV1().Secrets("istio-system").Get(ctx, SelfSignedSecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := stored.Data[pki.FileCACert]
		for i, a := range auths {
			if !bytes.Equal(a.Root(), want) {
				t.Errorf("replica %d signs with root %s, istio-ca-secret holds %s", i, fingerprints(a.Root()), fingerprints(want))
			}
		}
	})

	root := newTestRoot(t)
	if _, err := cs.CoreV1().Secrets("istio-system").Create(ctx, cacertsSecret("istio-system", root.intermediate(t, "cluster1")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Run("plug-in CA on every replica", func(t *testing.T) {
		for i, a := range auths {
			testkit.Eventually(t, 30*time.Second, fmt.Sprintf("replica %d loads cacerts", i), testkit.Succeeds(func() error {
				if !bytes.Equal(a.Root(), root.cert) {
					return fmt.Errorf("root %s", fingerprints(a.Root()))
				}
				return nil
			}))
		}
		tok := saToken(t, cs, "app", "workload", []string{"istio-ca"})
		const id = "spiffe://cluster.local/ns/app/sa/workload"
		for i, a := range auths {
			addr := serveCA(t, a)
			// The serving certificate verifies against the shared root
			// under the Service name every replica answers for.
			client := dialCA(t, addr, root.cert, "istiod.istio-system.svc")
			csr, _ := newCSR(t, id)
			resp, err := request(ctx, client, tok, "", csr, 0)
			if err != nil {
				t.Fatalf("replica %d: CreateCertificate: %v", i, err)
			}
			if err := pki.Verify(joinChain(resp), root.cert, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("replica %d: workload certificate does not verify against the shared root: %v", i, err)
			}
		}
	})
}
