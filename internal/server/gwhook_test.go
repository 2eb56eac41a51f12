package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/gateway"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestGatewayPassesWebhookThrough: Causeway's own east-west gateway with
// --expose-webhook, configured over ADS by a real control plane, passes
// TLS on its 0.0.0.0_15017 listener through to the control plane's
// injection webhook (Service istiod port 443, targetPort 15017, a pod
// without a sidecar): the handshake is the webhook's own (its serving
// certificate, verified against the mesh root for istiod.istio-system.svc),
// and an AdmissionReview POSTed to the gateway, as a remote cluster's API
// server does, gets the webhook's patch for that cluster and network.
func TestGatewayPassesWebhookThrough(t *testing.T) {
	istiod := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.15", Ports: []corev1.ServicePort{
			{Name: "grpc-xds", Port: 15010, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15010)},
			{Name: "https-webhook", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15017)},
		}},
	}
	objs := append(clusterObjects("net1", "10.1.0.1", "192.0.2.1"), istiod)
	ts := startServer(t, Config{WebhookAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0"}, objs, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := ts.srv.CA().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ts.waitReady(t)
	testkit.Eventually(t, testkit.WaitTimeout, "webhook and xDS listeners", func() string {
		if ts.srv.WebhookAddr() == nil || ts.srv.XDSAddr() == nil {
			return "not listening"
		}
		return ""
	})
	// istiod's pod is the webhook's listener (15017 in a cluster; here
	// wherever it listens).
	hookPort := int32(ts.srv.WebhookAddr().(*net.TCPAddr).Port)
	portName, ready := "https-webhook", true
	_, err := ts.local.DiscoveryV1().EndpointSlices("istio-system").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod-x", Labels: map[string]string{discoveryv1.LabelServiceName: "istiod"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &hookPort}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	gw, err := gateway.New(gateway.Config{
		XDS: ts.srv.XDSAddr().String(), Network: "net1", ClusterID: "c1",
		NodeID: gateway.NodeID(netip.MustParseAddr("10.1.0.100"), "eastwest-0", "istio-system", ""),
		Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", ExposeWebhook: "127.0.0.1:0",
		ReconnectDelay: 20 * time.Millisecond, Drain: time.Second, Logger: testkit.DiscardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- gw.Run(gctx) }()
	t.Cleanup(func() {
		gcancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	const cluster = "outbound_.443_._.istiod.istio-system.svc.cluster.local"
	testkit.Eventually(t, testkit.WaitTimeout, "the gateway's webhook listener routes to istiod's pod", func() string {
		wt := gw.WebhookTable()
		if wt == nil || wt.Listener == "" {
			return fmt.Sprintf("table %v: no listener 0.0.0.0_15017 yet", wt)
		}
		c := wt.Clusters[cluster]
		if c == nil || len(c.Endpoints) == 0 {
			return fmt.Sprintf("cluster %s: %v", cluster, c)
		}
		return ""
	})

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ts.srv.CA().Root()) {
		t.Fatal("mesh root does not parse")
	}
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12}
	gwAddr := gw.WebhookAddr().String()

	// The handshake through the gateway is the webhook's.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", gwAddr, tlsCfg)
	if err != nil {
		t.Fatalf("TLS through the gateway's webhook listener: %v", err)
	}
	state := conn.ConnectionState()
	_ = conn.Close()
	if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].VerifyHostname("istiod.istio-system.svc") != nil {
		t.Fatalf("the gateway's 15017 answered with %v, not the control plane's serving certificate", state.PeerCertificates)
	}

	// An AdmissionReview, as a remote cluster's API server sends it to
	// https://GATEWAY:15017/inject/cluster/C/net/N.
	body := sampleReview(t, "through-the-gateway")
	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, gwAddr)
		}}
	defer tr.CloseIdleConnections()
	url := "https://" + net.JoinHostPort("istiod.istio-system.svc", strconv.Itoa(15017)) + inject.PathPrefix + "cluster/remote1/net/net-remote"
	req := must(http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body)))(t)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("AdmissionReview through the gateway: %v", err)
	}
	defer resp.Body.Close()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&review); err != nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	if review.Response == nil || review.Response.UID != "through-the-gateway" || !review.Response.Allowed || len(review.Response.Patch) == 0 {
		t.Fatalf("response %+v, want the webhook's allowed patch", review.Response)
	}
	if !bytes.Contains(review.Response.Patch, []byte(`"ISTIO_META_NETWORK","value":"net-remote"`)) {
		t.Errorf("patch lacks the remote network from the URL: %s", review.Response.Patch)
	}
}
