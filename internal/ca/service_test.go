package ca

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// identity is what a fake reviewer says a token is.
type identity struct {
	ns, sa string
	err    error
}

// fakeMesh is an authority on fake clusters cluster1 (the config cluster,
// with a plug-in CA) and cluster2, serving on 127.0.0.1.
type fakeMesh struct {
	a        *Authority
	reg      *prometheus.Registry
	root     []byte
	bundle   pki.Bundle
	config   *fake.Clientset
	cluster2 *fake.Clientset
	addr     string
}

func newFakeMesh(t *testing.T, tweak func(*Config)) *fakeMesh {
	t.Helper()
	root := newTestRoot(t)
	b := root.intermediate(t, "cluster1")
	m := &fakeMesh{
		reg:      prometheus.NewRegistry(),
		root:     root.cert,
		bundle:   b,
		config:   fake.NewClientset(cacertsSecret("istio-system", b)),
		cluster2: fake.NewClientset(),
	}
	tokens := map[kubernetes.Interface]map[string]identity{
		m.config: {
			tok("c1-app-workload"): {ns: "app", sa: "workload"},
			tok("c1-user"):         {err: ErrNotServiceAccount},
			tok("c1-down"):         {err: errors.New("dial tcp 10.0.0.1:443: connection refused")},
		},
		m.cluster2: {
			tok("c2-app-workload"): {ns: "app", sa: "workload"},
		},
	}
	cfg := Config{
		ClusterID: "cluster1",
		Client:    m.config,
		Clusters: func(id model.ClusterID) (kubernetes.Interface, bool) {
			if id == "cluster2" {
				return m.cluster2, true
			}
			return nil, false
		},
		NewReviewer: func(c kubernetes.Interface) TokenReviewer {
			return TokenReviewerFunc(func(_ context.Context, token string, _ []string) (string, string, error) {
				id, ok := tokens[c][token]
				if !ok {
					return "", "", ErrUnauthenticated
				}
				return id.ns, id.sa, id.err
			})
		},
		WorkloadTTLMax: 48 * time.Hour,
		CustomHosts:    []string{"ca.example.com"},
		Registry:       m.reg,
		Logger:         testkit.Logger(t),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	m.a = runAuthority(t, cfg)
	m.addr = serveCA(t, m.a)
	return m
}

func TestCreateCertificate(t *testing.T) {
	m := newFakeMesh(t, nil)
	client := dialCA(t, m.addr, m.root, "ca.example.com")
	const id = "spiffe://cluster.local/ns/app/sa/workload"
	tests := []struct {
		name    string
		token   string
		cluster string
		uris    []string
		csr     string // replaces the CSR made from uris
		ttl     time.Duration
		// wantCode is the gRPC code; wantLabel the cluster label counted.
		wantCode  codes.Code
		wantLabel string
		wantMsg   string
		// wantLife is the validity of an issued certificate.
		wantLife time.Duration
	}{
		{name: "config cluster by default", token: tok("c1-app-workload"), uris: []string{id},
			wantCode: codes.OK, wantLabel: "cluster1", wantLife: 24 * time.Hour},
		{name: "config cluster by name", token: tok("c1-app-workload"), cluster: "cluster1", uris: []string{id}, ttl: time.Hour,
			wantCode: codes.OK, wantLabel: "cluster1", wantLife: time.Hour},
		{name: "remote cluster", token: tok("c2-app-workload"), cluster: "cluster2", uris: []string{id},
			wantCode: codes.OK, wantLabel: "cluster2", wantLife: 24 * time.Hour},
		{name: "CSR without names gets the identity", token: tok("c1-app-workload"),
			wantCode: codes.OK, wantLabel: "cluster1", wantLife: 24 * time.Hour},
		{name: "TTL clamped to the maximum", token: tok("c1-app-workload"), uris: []string{id}, ttl: 365 * 24 * time.Hour,
			wantCode: codes.OK, wantLabel: "cluster1", wantLife: 48 * time.Hour},
		{name: "token of cluster2 presented as cluster1", token: tok("c2-app-workload"), cluster: "cluster1", uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: "cluster1", wantMsg: "token not authenticated"},
		{name: "token of cluster2 without cluster id", token: tok("c2-app-workload"), uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: "cluster1", wantMsg: "token not authenticated"},
		{name: "unknown cluster", token: tok("c1-app-workload"), cluster: "cluster9", uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: unknownCluster, wantMsg: `unknown cluster "cluster9"`},
		{name: "no token", uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: "cluster1", wantMsg: "no bearer token"},
		{name: "bad token", token: tok("forged"), uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: "cluster1", wantMsg: "token not authenticated"},
		{name: "not a JWT", token: "opaque", uris: []string{id},
			wantCode: codes.Unauthenticated, wantLabel: "cluster1", wantMsg: "token not authenticated"},
		{name: "not a service account", token: tok("c1-user"), uris: []string{id},
			wantCode: codes.PermissionDenied, wantLabel: "cluster1", wantMsg: "not a service account"},
		{name: "token review unavailable", token: tok("c1-down"), uris: []string{id},
			wantCode: codes.Unavailable, wantLabel: "cluster1", wantMsg: "could not be checked"},
		{name: "another service account's SAN", token: tok("c1-app-workload"), uris: []string{"spiffe://cluster.local/ns/app/sa/admin"},
			wantCode: codes.PermissionDenied, wantLabel: "cluster1", wantMsg: "the token proves identity " + id},
		{name: "another trust domain", token: tok("c1-app-workload"), uris: []string{"spiffe://evil.example/ns/app/sa/workload"},
			wantCode: codes.PermissionDenied, wantLabel: "cluster1", wantMsg: "name not allowed"},
		{name: "malformed CSR", token: tok("c1-app-workload"), csr: "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n",
			wantCode: codes.InvalidArgument, wantLabel: "cluster1", wantMsg: "invalid certificate signing request"},
		{name: "no CSR", token: tok("c1-app-workload"), csr: " ",
			wantCode: codes.InvalidArgument, wantLabel: "cluster1", wantMsg: "invalid certificate signing request"},
		{name: "negative TTL", token: tok("c1-app-workload"), uris: []string{id}, ttl: -time.Hour,
			wantCode: codes.InvalidArgument, wantLabel: "cluster1", wantMsg: "validity_duration -3600"},
	}
	want := map[string]float64{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, key := newCSR(t, tt.uris...)
			if tt.csr != "" {
				csr = []byte(tt.csr)
			}
			start := time.Now()
			resp, err := request(t.Context(), client, tt.token, tt.cluster, csr, tt.ttl)
			want[tt.wantLabel+"/"+tt.wantCode.String()]++
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
			if got := urisOf(leaf); !cmp.Equal(got, []string{id}) {
				t.Errorf("URI SANs %v, want [%s]", got, id)
			}
			if !key.PublicKey.Equal(leaf.PublicKey) {
				t.Error("the certificate is not for the CSR's key")
			}
			if err := pki.Verify(joinChain(resp), m.root, pki.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("chain does not verify to the root: %v", err)
			}
			if n := len(resp.GetCertChain()); n != 3 {
				t.Errorf("chain of %d certificates, want leaf, intermediate, root", n)
			}
			if got := resp.GetCertChain()[len(resp.GetCertChain())-1]; got != string(m.root) {
				t.Error("the last certificate of the chain is not the root")
			}
			life := leaf.NotAfter.Sub(start)
			if life < tt.wantLife-time.Minute || life > tt.wantLife+time.Minute {
				t.Errorf("valid for %v from now, want %v", life.Round(time.Second), tt.wantLife)
			}
		})
	}

	got := map[string]float64{}
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "causeway_ca_certificate_requests_total" {
			for _, mt := range f.GetMetric() {
				got[label(mt, "cluster")+"/"+label(mt, "code")] = mt.GetCounter().GetValue()
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("causeway_ca_certificate_requests_total (-want +got):\n%s", diff)
	}
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func urisOf(c *x509.Certificate) []string {
	out := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		out[i] = u.String()
	}
	return out
}

// TestCreateCertificateAudiences checks which audiences a token is reviewed
// for.
func TestCreateCertificateAudiences(t *testing.T) {
	var seen [][]string
	cfg := func(c *Config) {
		c.NewReviewer = func(kubernetes.Interface) TokenReviewer {
			return TokenReviewerFunc(func(_ context.Context, _ string, aud []string) (string, string, error) {
				seen = append(seen, aud)
				return "app", "workload", nil
			})
		}
		c.Audiences = []string{"istio-ca", "mesh"}
	}
	m := newFakeMesh(t, cfg)
	client := dialCA(t, m.addr, m.root, "istiod.istio-system.svc")
	for _, token := range []string{
		jwt(`{"aud":["istio-ca"]}`),
		jwt(`{"aud":"mesh"}`),
		jwt(`{"aud":["https://kubernetes.default.svc.cluster.local"]}`),
	} {
		csr, _ := newCSR(t)
		if _, err := request(t.Context(), client, token, "", csr, 0); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"istio-ca", "mesh"}, {"istio-ca", "mesh"}, nil}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("reviewed audiences (-want +got):\n%s", diff)
	}
}

// TestCreateCertificateBeforeCA: until the CA is loaded, requests fail with
// Unavailable and the secure port refuses handshakes.
func TestCreateCertificateBeforeCA(t *testing.T) {
	a, err := New(Config{ClusterID: "cluster1", Client: fake.NewClientset(), Logger: testkit.Logger(t),
		NewReviewer: func(kubernetes.Interface) TokenReviewer {
			return TokenReviewerFunc(func(context.Context, string, []string) (string, string, error) { return "app", "workload", nil })
		}})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := newCSR(t)
	ctx := metadataContext(t.Context(), tok("token"))
	r := a.createCertificate(ctx, requestOf(csr))
	if status.Code(r.err) != codes.Unavailable || !strings.Contains(r.err.Error(), "not loaded") {
		t.Errorf("before the CA is loaded: %v, want Unavailable", r.err)
	}
	if _, err := a.ServingTLSConfig().GetConfigForClient(nil); err == nil {
		t.Error("a TLS handshake before the CA is loaded succeeded")
	}
}

// jwt is an unsigned JWT with the given claims: enough to choose the
// audiences, never accepted by an API server.
func jwt(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2ln"
}

// tok is a fake service-account token named name, for the audience
// istio-ca.
func tok(name string) string {
	return jwt(`{"aud":["istio-ca"],"sub":"` + name + `"}`)
}

// metadataContext is an incoming gRPC context with a bearer token.
func metadataContext(ctx context.Context, token string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
}

func requestOf(csr []byte) *pb.IstioCertificateRequest {
	return &pb.IstioCertificateRequest{Csr: string(csr)}
}
