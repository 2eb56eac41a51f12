package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// lookup is a ClusterLookup over testenv clusters.
func lookup(clusters ...*testenv.Cluster) ClusterLookup {
	return func(id model.ClusterID) (kubernetes.Interface, bool) {
		for _, c := range clusters {
			if c.ID == string(id) {
				return c.Client(), true
			}
		}
		return nil, false
	}
}

// saToken asks cluster cs for a token of service account ns/sa (made if
// missing: no controller makes them here) for audiences (nil: the API
// server's default).
func saToken(t *testing.T, cs kubernetes.Interface, ns, sa string, audiences []string) string {
	t.Helper()
	ctx := t.Context()
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: new(int64(3600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

func createNamespaces(t *testing.T, cs kubernetes.Interface, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := testenv.CreateNamespace(t.Context(), cs, n, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// rootsByNamespace returns the root-cert.pem of every namespace's root
// ConfigMap ("" when it has none) and the ConfigMaps' resource versions.
func rootsByNamespace(ctx context.Context, cs kubernetes.Interface) (roots, versions map[string]string, err error) {
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	roots, versions = map[string]string{}, map[string]string{}
	for i := range nss.Items {
		name := nss.Items[i].Name
		cm, err := cs.CoreV1().ConfigMaps(name).Get(ctx, RootConfigMapName, metav1.GetOptions{})
		switch {
		case err == nil:
			roots[name] = cm.Data[RootConfigMapKey]
			versions[name] = cm.ResourceVersion
		case apierrors.IsNotFound(err):
			roots[name] = ""
		default:
			return nil, nil, err
		}
	}
	return roots, versions, nil
}

// everyRoot returns an error unless every namespace of cs holds root.
func everyRoot(ctx context.Context, cs kubernetes.Interface, root []byte) error {
	roots, _, err := rootsByNamespace(ctx, cs)
	if err != nil {
		return err
	}
	var wrong []string
	for ns, r := range roots {
		if r != string(root) {
			wrong = append(wrong, ns)
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("namespaces without the root: %v (of %d)", wrong, len(roots))
	}
	return nil
}

// TestIntegration runs the CA against two real API servers: cluster1 is
// the config cluster with a plug-in CA, cluster2 a remote cluster whose
// workloads get certificates from it (primary-remote).
func TestIntegration(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	env := testenv.Start(t, testenv.Options{Clusters: 2})
	c1, c2 := env.Clusters[0], env.Clusters[1]
	ctx := t.Context()
	createNamespaces(t, c1.Client(), "istio-system", "app")
	createNamespaces(t, c2.Client(), "app")

	root := newTestRoot(t)
	bundle := root.intermediate(t, "cluster1")
	if _, err := c1.Client().CoreV1().Secrets("istio-system").Create(ctx, cacertsSecret("istio-system", bundle), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := runAuthority(t, Config{
		ClusterID:      "cluster1",
		Client:         c1.Client(),
		Clusters:       lookup(c1, c2),
		Revision:       "1-11-4",
		CustomHosts:    []string{"istiod-1-11-4.istio-system.svc", "mesh.example.com"},
		ServingTTL:     3 * time.Second,
		WorkloadTTLMax: 48 * time.Hour,
		Registry:       reg,
		Logger:         testkit.Logger(t),
	})
	runPublisher(t, a, "cluster1", c1.Client())
	runPublisher(t, a, "cluster2", c2.Client())
	addr := serveCA(t, a)
	client := dialCA(t, addr, root.cert, "mesh.example.com")

	const id = "spiffe://cluster.local/ns/app/sa/workload"
	tok1 := saToken(t, c1.Client(), "app", "workload", []string{"istio-ca"})
	tok2 := saToken(t, c2.Client(), "app", "workload", []string{"istio-ca"})

	t.Run("CreateCertificate", func(t *testing.T) {
		tests := []struct {
			name     string
			token    string
			cluster  string
			uris     []string
			csr      string
			ttl      time.Duration
			wantCode codes.Code
			wantMsg  string
			wantLife time.Duration
		}{
			{name: "token of cluster1", token: tok1, uris: []string{id}, wantCode: codes.OK, wantLife: 24 * time.Hour},
			{name: "token of cluster1 named", token: tok1, cluster: "cluster1", uris: []string{id}, ttl: 2 * time.Hour,
				wantCode: codes.OK, wantLife: 2 * time.Hour},
			{name: "token of cluster2 as cluster2", token: tok2, cluster: "cluster2", uris: []string{id}, wantCode: codes.OK, wantLife: 24 * time.Hour},
			{name: "default audience", token: saToken(t, c1.Client(), "app", "workload", nil), uris: []string{id},
				wantCode: codes.OK, wantLife: 24 * time.Hour},
			{name: "other service account", token: saToken(t, c2.Client(), "app", "reviews", []string{"istio-ca"}), cluster: "cluster2",
				uris: []string{"spiffe://cluster.local/ns/app/sa/reviews"}, wantCode: codes.OK, wantLife: 24 * time.Hour},
			{name: "TTL clamped", token: tok1, uris: []string{id}, ttl: 1000 * time.Hour, wantCode: codes.OK, wantLife: 48 * time.Hour},
			{name: "token of cluster2 presented as cluster1", token: tok2, cluster: "cluster1", uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: "cluster cluster1: token not authenticated"},
			{name: "token of cluster1 presented as cluster2", token: tok1, cluster: "cluster2", uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: "cluster cluster2: token not authenticated"},
			{name: "bad token", token: tok1[:len(tok1)-8] + "AAAAAAAA", uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: "token not authenticated"},
			{name: "token for another audience", token: saToken(t, c1.Client(), "app", "workload", []string{"vault"}), uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: "token not authenticated"},
			{name: "a user's token", token: c1.AdminToken, uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: "not a JWT"},
			{name: "unknown cluster", token: tok1, cluster: "cluster3", uris: []string{id},
				wantCode: codes.Unauthenticated, wantMsg: `unknown cluster "cluster3"`},
			{name: "mismatched SAN", token: tok1, uris: []string{"spiffe://cluster.local/ns/istio-system/sa/istiod"},
				wantCode: codes.PermissionDenied, wantMsg: "name not allowed"},
			{name: "malformed CSR", token: tok1, csr: "not a CSR", wantCode: codes.InvalidArgument, wantMsg: "invalid certificate signing request"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				csr, _ := newCSR(t, tt.uris...)
				if tt.csr != "" {
					csr = []byte(tt.csr)
				}
				start := time.Now()
				resp, err := request(t.Context(), client, tt.token, tt.cluster, csr, tt.ttl)
				if got := status.Code(err); got != tt.wantCode {
					t.Fatalf("code %v (%v), want %v", got, err, tt.wantCode)
				}
				if err != nil {
					if msg := status.Convert(err).Message(); !strings.Contains(msg, tt.wantMsg) {
						t.Errorf("message %q lacks %q", msg, tt.wantMsg)
					}
					return
				}
				leaf := parseLeaf(t, resp)
				if want := tt.uris; !cmp.Equal(urisOf(leaf), want) {
					t.Errorf("URI SANs %v, want %v", urisOf(leaf), want)
				}
				if err := pki.Verify(joinChain(resp), root.cert, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("chain does not verify to the root: %v", err)
				}
				if life := leaf.NotAfter.Sub(start); life < tt.wantLife-time.Minute || life > tt.wantLife+time.Minute {
					t.Errorf("valid for %v, want %v", life.Round(time.Second), tt.wantLife)
				}
			})
		}
		for _, c := range []struct {
			labels map[string]string
			want   float64
		}{
			{map[string]string{"cluster": "cluster1", "code": "OK"}, 4},
			{map[string]string{"cluster": "cluster2", "code": "OK"}, 2},
			{map[string]string{"cluster": "cluster1", "code": "Unauthenticated"}, 4},
			{map[string]string{"cluster": "cluster2", "code": "Unauthenticated"}, 1},
			{map[string]string{"cluster": "unknown", "code": "Unauthenticated"}, 1},
			{map[string]string{"cluster": "cluster1", "code": "PermissionDenied"}, 1},
			{map[string]string{"cluster": "cluster1", "code": "InvalidArgument"}, 1},
		} {
			if got := counter(t, reg, "causeway_ca_certificate_requests_total", c.labels); got != c.want {
				t.Errorf("causeway_ca_certificate_requests_total%v = %v, want %v", c.labels, got, c.want)
			}
		}
	})

	t.Run("root ConfigMaps", func(t *testing.T) {
		for _, c := range env.Clusters {
			testkit.Eventually(t, 30*time.Second, "root in every namespace of "+c.ID, testkit.Succeeds(func() error { return everyRoot(ctx, c.Client(), root.cert) }))
		}
		// Deleted: comes back.
		if err := c2.Client().CoreV1().ConfigMaps("app").Delete(ctx, RootConfigMapName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Edited: restored.
		cm, err := c1.Client().CoreV1().ConfigMaps("default").Get(ctx, RootConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data[RootConfigMapKey] = "edited"
		if _, err := c1.Client().CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		// A namespace made later gets one.
		createNamespaces(t, c2.Client(), "late")
		for _, c := range env.Clusters {
			testkit.Eventually(t, 30*time.Second, "root back in every namespace of "+c.ID, testkit.Succeeds(func() error { return everyRoot(ctx, c.Client(), root.cert) }))
		}
		got, err := c2.Client().CoreV1().ConfigMaps("late").Get(ctx, RootConfigMapName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"istio.io/config": "true"}, got.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		if owner := rootOwner(got); owner != "causeway-cluster1" {
			t.Errorf("root written by %q, want causeway-cluster1", owner)
		}
	})

	t.Run("serving certificate", func(t *testing.T) {
		names := []string{"istiod.istio-system.svc", "istiod-1-11-4.istio-system.svc", "istiod-remote.istio-system.svc", "mesh.example.com"}
		var first string
		for _, n := range names {
			certs, err := handshake(t, addr, clientTLS(root.cert, n))
			if err != nil {
				t.Fatalf("server name %s: %v", n, err)
			}
			if diff := cmp.Diff(names, certs[0].DNSNames); diff != "" {
				t.Errorf("DNS names (-want +got):\n%s", diff)
			}
			first = certs[0].SerialNumber.String()
		}
		// ServingTTL is 3s (2 to 3s, as NotAfter is whole seconds): renewed
		// within 2s, and gRPC keeps working.
		testkit.Eventually(t, 15*time.Second, "serving certificate renewed", testkit.Succeeds(func() error {
			certs, err := handshake(t, addr, clientTLS(root.cert, "mesh.example.com"))
			if err != nil {
				return err
			}
			if certs[0].SerialNumber.String() == first {
				return errors.New("same certificate")
			}
			return nil
		}))
		csr, _ := newCSR(t, id)
		if _, err := request(ctx, dialCA(t, addr, root.cert, "istiod-1-11-4.istio-system.svc"), tok1, "", csr, 0); err != nil {
			t.Errorf("CreateCertificate over a new connection after rotation: %v", err)
		}
	})

	t.Run("cacerts rotation", func(t *testing.T) {
		_, before, err := rootsByNamespace(ctx, c2.Client())
		if err != nil {
			t.Fatal(err)
		}
		next := root.intermediate(t, "cluster1-next")
		updateCacerts(t, c1.Client(), next)
		nextCert := parseCert(t, next.CACert)
		testkit.Eventually(t, 15*time.Second, "certificates from the new intermediate", testkit.Succeeds(func() error {
			csr, _ := newCSR(t, id)
			resp, err := request(ctx, client, tok1, "", csr, 0)
			if err != nil {
				return err
			}
			if err := pki.Verify(joinChain(resp), root.cert, pki.VerifyOptions{}); err != nil {
				return err
			}
			if got := parseCert(t, []byte(resp.GetCertChain()[1])); !got.Equal(nextCert) {
				return fmt.Errorf("issued by %s", got.Subject)
			}
			return nil
		}))
		// The serving certificate follows the new intermediate.
		testkit.Eventually(t, 15*time.Second, "serving certificate of the new intermediate", testkit.Succeeds(func() error {
			certs, err := handshake(t, addr, clientTLS(root.cert, "mesh.example.com"))
			if err != nil {
				return err
			}
			if !certs[1].Equal(nextCert) {
				return fmt.Errorf("served chain issued by %s", certs[1].Subject)
			}
			return nil
		}))
		// Same root: no ConfigMap was rewritten.
		_, after, err := rootsByNamespace(ctx, c2.Client())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("root ConfigMaps rewritten although the root is the same (-before +after):\n%s", diff)
		}
	})

	t.Run("root rotation", func(t *testing.T) {
		newRoot := newTestRoot(t)
		next := newRoot.intermediate(t, "cluster1")
		updateCacerts(t, c1.Client(), next)
		for _, c := range env.Clusters {
			testkit.Eventually(t, 30*time.Second, "new root in every namespace of "+c.ID, testkit.Succeeds(func() error { return everyRoot(ctx, c.Client(), newRoot.cert) }))
		}
		// The secure port now verifies with the new root.
		newClient := dialCA(t, addr, newRoot.cert, "mesh.example.com")
		csr, _ := newCSR(t, id)
		resp, err := request(ctx, newClient, tok2, "cluster2", csr, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.Verify(joinChain(resp), newRoot.cert, pki.VerifyOptions{}); err != nil {
			t.Errorf("chain does not verify to the new root: %v", err)
		}
		if !bytes.Equal(a.Root(), newRoot.cert) {
			t.Error("Root() is not the new root")
		}
	})
}

func updateCacerts(t *testing.T, cs kubernetes.Interface, b pki.Bundle) {
	t.Helper()
	secret, err := cs.CoreV1().Secrets("istio-system").Get(t.Context(), PluginSecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secret.Data = b.Data()
	if _, err := cs.CoreV1().Secrets("istio-system").Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationMultiPrimary: two control planes, each with its own
// self-signed root (no shared root), each publishing into both clusters.
// Each cluster ends with its own control plane's root, nobody rewrites the
// other's ConfigMaps forever, and the conflict is counted.
func TestIntegrationMultiPrimary(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	env := testenv.Start(t, testenv.Options{Clusters: 2})
	c1, c2 := env.Clusters[0], env.Clusters[1]
	ctx := t.Context()
	createNamespaces(t, c1.Client(), "istio-system", "app")
	createNamespaces(t, c2.Client(), "istio-system", "app")
	regs := map[string]*prometheus.Registry{}
	cps := map[string]*Authority{}
	for _, c := range env.Clusters {
		regs[c.ID] = prometheus.NewRegistry()
		cps[c.ID] = runAuthority(t, Config{ClusterID: model.ClusterID(c.ID), Client: c.Client(), Clusters: lookup(c1, c2),
			Registry: regs[c.ID], Logger: testkit.Logger(t).With("cp", c.ID)})
	}
	if bytes.Equal(cps["cluster1"].Root(), cps["cluster2"].Root()) {
		t.Fatal("the two self-signed roots are the same")
	}
	for _, cp := range env.Clusters {
		for _, target := range env.Clusters {
			runPublisher(t, cps[cp.ID], target.ID, target.Client())
		}
	}
	for _, c := range env.Clusters {
		testkit.Eventually(t, 30*time.Second, "own root in every namespace of "+c.ID, testkit.Succeeds(func() error { return everyRoot(ctx, c.Client(), cps[c.ID].Root()) }))
	}
	testkit.Eventually(t, 30*time.Second, "conflict counted by both", testkit.Succeeds(func() error {
		for _, c := range env.Clusters {
			if counter(t, regs[c.ID], "causeway_ca_root_configmap_foreign_total", nil) == 0 {
				return fmt.Errorf("control plane of %s counted no foreign root", c.ID)
			}
		}
		return nil
	}))
	// Stable: nobody keeps rewriting.
	_, v1, err := rootsByNamespace(ctx, c1.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := rootsByNamespace(ctx, c2.Client())
	if err != nil {
		t.Fatal(err)
	}
	// Instead of a wall-clock sleep: a namespace made after the snapshot
	// that gets its own root shows both clusters' publishers worked past it.
	for _, c := range env.Clusters {
		createNamespaces(t, c.Client(), "barrier")
	}
	for _, c := range env.Clusters {
		testkit.Eventually(t, 30*time.Second, "own root in the new namespace of "+c.ID, testkit.Succeeds(func() error {
			roots, _, err := rootsByNamespace(ctx, c.Client())
			if err != nil {
				return err
			}
			if roots["barrier"] != string(cps[c.ID].Root()) {
				return fmt.Errorf("namespace barrier of %s holds %q", c.ID, roots["barrier"])
			}
			return nil
		}))
	}
	_, w1, err := rootsByNamespace(ctx, c1.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, w2, err := rootsByNamespace(ctx, c2.Client())
	if err != nil {
		t.Fatal(err)
	}
	delete(w1, "barrier")
	delete(w2, "barrier")
	if !maps.Equal(v1, w1) || !maps.Equal(v2, w2) {
		t.Errorf("root ConfigMaps keep changing:\ncluster1 %v -> %v\ncluster2 %v -> %v", v1, w1, v2, w2)
	}
}
