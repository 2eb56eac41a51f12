package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// selfSignedClientCert is a client certificate no mesh root signed, as an
// API server configured with its own webhook client certificate presents.
func selfSignedClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key))(t)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestWebhookTLS: the webhook serves HTTP/1.1 and h2 with the control
// plane's serving certificate (verified against the mesh root under
// istiod.istio-system.svc), and a caller presenting a certificate the mesh
// root did not sign is still served.
func TestWebhookTLS(t *testing.T) {
	ts := startServer(t, Config{WebhookAddr: "127.0.0.1:0"}, clusterObjects("net1", "10.1.0.1", "192.0.2.1"), nil)
	// The CA makes its self-signed root first: on a loaded machine that can
	// outlast eventually's 10 s, so wait on the CA itself.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := ts.srv.CA().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// The patch carries the model's network: wait for the initial sync.
	ts.waitReady(t)
	testkit.Eventually(t, testkit.WaitTimeout, "webhook listener", func() string {
		if ts.srv.WebhookAddr() == nil {
			return "not listening"
		}
		return ""
	})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ts.srv.CA().Root()) {
		t.Fatal("mesh root does not parse")
	}
	body := sampleReview(t, "u")
	for _, tc := range []struct {
		name       string
		h2, client bool
	}{{"http1", false, false}, {"h2", true, false}, {"foreign client certificate", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12}
			if tc.client {
				// Sent whatever CAs the server names (Go's client would
				// otherwise leave out a certificate they did not sign).
				cert := selfSignedClientCert(t)
				cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			req := must(http.NewRequestWithContext(t.Context(), http.MethodPost,
				"https://"+ts.srv.WebhookAddr().String()+inject.Path, bytes.NewReader(body)))(t)
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[tc.h2]; resp.ProtoMajor != want {
				t.Errorf("protocol %s, want HTTP/%d", resp.Proto, want)
			}
			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&review); err != nil {
				t.Fatalf("status %d: %v", resp.StatusCode, err)
			}
			if review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
				t.Errorf("response %+v, want an allowed patch", review.Response)
			}
			if !bytes.Contains(review.Response.Patch, []byte(`"ISTIO_META_NETWORK","value":"net1"`)) {
				t.Errorf("patch lacks the model's network net1: %s", review.Response.Patch)
			}
		})
	}
}

// sampleReview is the AdmissionReview an API server sends for the creation
// of pod sample/web (service account web, one container), with uid.
func sampleReview(t *testing.T, uid types.UID) []byte {
	t.Helper()
	pod := must(json.Marshal(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sample", Name: "web"},
		Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}))(t)
	return must(json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: uid, Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Operation: admissionv1.Create, Namespace: "sample", Object: runtime.RawExtension{Raw: pod}},
	}))(t)
}
