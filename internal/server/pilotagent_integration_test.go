package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/inject"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/parity"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
	"github.com/causeway-mesh/causeway/internal/xdsauth"
)

// agentPod is an injected pod as its kubelet sees it: the istio-proxy
// container's environment with the downward API resolved, and the
// projected token volume's audience and lifetime.
type agentPod struct {
	pod      *corev1.Pod
	env      map[string]string
	audience string
	ttl      time.Duration
}

// kubeletView resolves the istio-proxy container of a stored pod.
func kubeletView(t *testing.T, p *corev1.Pod) agentPod {
	t.Helper()
	i := slices.IndexFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == inject.ProxyName })
	if i < 0 {
		t.Fatalf("pod %s/%s has no %s container", p.Namespace, p.Name, inject.ProxyName)
	}
	ap := agentPod{pod: p, env: map[string]string{}}
	for _, e := range p.Spec.Containers[i].Env {
		switch {
		case e.ValueFrom == nil:
			ap.env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				ap.env[e.Name] = p.Name
			case "metadata.namespace":
				ap.env[e.Name] = p.Namespace
			case "spec.serviceAccountName":
				ap.env[e.Name] = p.Spec.ServiceAccountName
			case "status.podIP":
				ap.env[e.Name] = p.Status.PodIP
			case "status.hostIP":
				ap.env[e.Name] = p.Status.HostIP
			}
		}
	}
	for i := range p.Spec.Volumes {
		v := &p.Spec.Volumes[i]
		if v.Name != "istio-token" || v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if tok := src.ServiceAccountToken; tok != nil {
				ap.audience = tok.Audience
				ap.ttl = time.Hour
				if tok.ExpirationSeconds != nil {
					ap.ttl = time.Duration(*tok.ExpirationSeconds) * time.Second
				}
			}
		}
	}
	if ap.audience == "" {
		t.Fatalf("pod %s/%s has no projected istio-token volume", p.Namespace, p.Name)
	}
	return ap
}

// agent does what pilot-agent does with its pod's environment: it reads
// PROXY_CONFIG's discoveryAddress and CA_ADDR, verifies the control plane
// with the root of the istio-ca-root-cert ConfigMap, sends its token and
// ISTIO_META_CLUSTER_ID in the gRPC metadata (authorization, ClusterID),
// and announces the node its bootstrap writes. dial maps the cluster's
// DNS names (the Service istiod) to the loopback port.
type agent struct {
	ap        agentPod
	discovery string
	caAddr    string
	roots     *x509.CertPool
	dial      string
}

// pilotAgentDefaultDiscovery is pilot-agent's discoveryAddress when
// PROXY_CONFIG names none.
const pilotAgentDefaultDiscovery = "istiod.istio-system.svc:15012"

func newAgent(t *testing.T, ap agentPod, rootPEM []byte, dial string) *agent {
	t.Helper()
	var pc struct {
		DiscoveryAddress string `json:"discoveryAddress"`
	}
	if err := json.Unmarshal([]byte(ap.env["PROXY_CONFIG"]), &pc); err != nil {
		t.Fatalf("PROXY_CONFIG %q: %v", ap.env["PROXY_CONFIG"], err)
	}
	if pc.DiscoveryAddress == "" {
		// As istiod's injector, Causeway leaves out pilot-agent's own
		// default, which pilot-agent then uses.
		pc.DiscoveryAddress = pilotAgentDefaultDiscovery
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("the root ConfigMap holds no PEM certificate")
	}
	return &agent{ap: ap, discovery: pc.DiscoveryAddress, caAddr: ap.env["CA_ADDR"], roots: roots, dial: dial}
}

// conn connects to addr (HOST:PORT of the cluster) with TLS, verifying
// the server for HOST, presenting cert if not nil.
func (a *agent) conn(t *testing.T, addr string, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: a.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := grpc.NewClient("passthrough:///"+a.dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// md is the gRPC metadata pilot-agent sends: its token (none when
// empty) and its cluster.
func (a *agent) md(token string) metadata.MD {
	md := metadata.Pairs("ClusterID", a.ap.env["ISTIO_META_CLUSTER_ID"])
	if token != "" {
		md.Set("authorization", "Bearer "+token)
	}
	return md
}

// node is the node pilot-agent's bootstrap writes from the environment.
func (a *agent) node() *corev3.Node {
	env := a.ap.env
	ns := env["POD_NAMESPACE"]
	fields := map[string]*structpb.Value{
		"NAMESPACE":       structpb.NewStringValue(ns),
		"SERVICE_ACCOUNT": structpb.NewStringValue(env["SERVICE_ACCOUNT"]),
	}
	for k, v := range env {
		if name, ok := strings.CutPrefix(k, "ISTIO_META_"); ok {
			fields[name] = structpb.NewStringValue(v)
		}
	}
	return &corev3.Node{
		Id:       fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", env["INSTANCE_IP"], env["POD_NAME"], ns, ns),
		Metadata: &structpb.Struct{Fields: fields},
	}
}

// certificate asks the CA at CA_ADDR for the workload certificate of the
// pod's service account.
func (a *agent) certificate(t *testing.T, token string) (*tls.Certificate, error) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := url.Parse(model.SPIFFEID(a.ap.env["TRUST_DOMAIN"], a.ap.env["POD_NAMESPACE"], a.ap.env["SERVICE_ACCOUNT"]))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(t.Context(), a.md(token)), 10*time.Second)
	defer cancel()
	resp, err := pb.NewIstioCertificateServiceClient(a.conn(t, a.caAddr, nil)).CreateCertificate(ctx,
		&pb.IstioCertificateRequest{Csr: string(csr), ValidityDuration: 3600})
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: key}
	for _, c := range resp.GetCertChain() {
		block, _ := pem.Decode([]byte(c))
		if block == nil {
			t.Fatalf("certificate chain element is not PEM: %q", c)
		}
		cert.Certificate = append(cert.Certificate, block.Bytes)
	}
	if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	return cert, nil
}

// fetch takes the full configuration (CDS, EDS, LDS, RDS) from
// discoveryAddress, as Envoy asks through pilot-agent's xDS proxy.
func (a *agent) fetch(t *testing.T, token string, cert *tls.Certificate) *parity.Snapshot {
	t.Helper()
	host, _, _ := net.SplitHostPort(a.discovery)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: a.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	snap, err := parity.Fetch(ctx, "passthrough:///"+a.dial, a.node(), parity.FetchOptions{
		Credentials: credentials.NewTLS(cfg), Metadata: a.md(token),
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// firstAnswer opens an ADS stream (delta or SotW) to discoveryAddress as
// the pod's node, sends a CDS request and returns the error of the first
// answer (nil: a response).
func (a *agent) firstAnswer(t *testing.T, delta bool, token string, cert *tls.Certificate, node *corev3.Node) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(t.Context(), a.md(token)), 20*time.Second)
	defer cancel()
	return testkit.FirstResponse(ctx, a.conn(t, a.discovery, cert), delta, node, parity.TypeCluster)
}

// TestIntegrationPilotAgentView: a client does, against `causeway serve`
// and a real kube-apiserver, what pilot-agent does in a pod the injector
// made: it reads PROXY_CONFIG and CA_ADDR, asks the CA for its
// certificate with the pod's projected token (a real TokenRequest bound to
// the pod, audience istio-ca), and takes a full configuration over TLS on
// the secure port with the token, then with the certificate alone. The
// same client is refused with another namespace's token or certificate,
// another service account's, no token, an expired token, a token of a pod
// that is gone, and an unknown cluster; each refusal is counted.
func TestIntegrationPilotAgentView(t *testing.T) {
	testreq.NotShort(t, "integration test: starts a kube-apiserver")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1"}})
	c := env.Cluster("cluster1")
	cs := c.Client()
	ctx := t.Context()
	must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1"}))(t)
	for _, ns := range []string{"sample", "other"} {
		must(testenv.CreateNamespace(ctx, cs, ns, map[string]string{inject.LabelInjection: "enabled"}))(t)
	}
	for _, sa := range [][2]string{{"sample", "sleep"}, {"sample", "web"}, {"other", "other"}} {
		must(cs.CoreV1().ServiceAccounts(sa[0]).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: sa[0], Name: sa[1]}}, metav1.CreateOptions{}))(t)
	}
	must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld", Selector: map[string]string{"app": "helloworld"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 5000}}}))(t)
	must(testenv.CreateEndpointSlice(ctx, cs, "sample", "helloworld", "helloworld-1",
		[]testenv.EndpointPort{{Name: "http", Port: 5000}}, []testenv.Endpoint{{IP: "10.244.0.9", Ready: true}}))(t)

	rs := serveCluster(t, c, Config{XDSTLSAddr: "127.0.0.1:0"})
	testkit.Eventually(t, testkit.WaitTimeout, "secure port", func() string {
		if rs.srv.XDSTLSAddr() == nil {
			return "not listening"
		}
		return ""
	})
	tlsAddr := rs.srv.XDSTLSAddr().String()

	// The pods as the injector makes them and the API server stores them,
	// with the status a kubelet reports.
	inj := rs.srv.injector()
	pod := func(ns, name, sa, ip string) agentPod {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
		}
		p = must(inj.Inject(p, inject.Target{}))(t)
		p = must(cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}))(t)
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		p = must(cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}))(t)
		return kubeletView(t, p)
	}
	sleep := pod("sample", "sleep-1", "sleep", "10.244.0.7")
	other := pod("other", "other-1", "other", "10.244.0.8")
	gone := pod("sample", "gone-1", "sleep", "10.244.0.10")
	if sleep.audience != "istio-ca" {
		t.Errorf("projected token audience %q, want istio-ca", sleep.audience)
	}
	token := func(ap agentPod) string {
		t.Helper()
		return must(c.ServiceAccountToken(ctx, ap.pod.Namespace, ap.pod.Spec.ServiceAccountName, []string{ap.audience}, ap.ttl, ap.pod.Name))(t)
	}
	sleepToken, otherToken, goneToken := token(sleep), token(other), token(gone)
	webToken := must(c.ServiceAccountToken(ctx, "sample", "web", []string{"istio-ca"}, time.Hour, ""))(t)
	expired := must(c.Expire(sleepToken, time.Hour))(t)
	if err := cs.CoreV1().Pods("sample").Delete(ctx, "gone-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}

	// The root the pod mounts: the ConfigMap the control plane publishes.
	var rootPEM []byte
	testkit.Eventually(t, testkit.WaitTimeout, "root ConfigMap in sample", func() string {
		cm, err := cs.CoreV1().ConfigMaps("sample").Get(ctx, ca.RootConfigMapName, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		rootPEM = []byte(cm.Data[ca.RootConfigMapKey])
		return ""
	})
	a := newAgent(t, sleep, rootPEM, tlsAddr)
	if a.discovery != "istiod.istio-system.svc:15012" || a.caAddr != a.discovery {
		t.Errorf("PROXY_CONFIG discoveryAddress %q, CA_ADDR %q: want both istiod.istio-system.svc:15012", a.discovery, a.caAddr)
	}

	cert, err := a.certificate(t, sleepToken)
	if err != nil {
		t.Fatalf("CreateCertificate with the pod's token: %v", err)
	}
	if got, want := cert.Leaf.URIs, "spiffe://cluster.local/ns/sample/sa/sleep"; len(got) != 1 || got[0].String() != want {
		t.Errorf("certificate URIs %v, want [%s]", got, want)
	}

	full := func(t *testing.T, snap *parity.Snapshot) {
		t.Helper()
		const hello = "outbound|5000||helloworld.sample.svc.cluster.local"
		if len(snap.Unanswered) > 0 {
			t.Errorf("unanswered: %v", snap.Unanswered)
		}
		if snap.Clusters[hello] == nil {
			t.Errorf("CDS has no %s: %v", hello, keys(snap.Clusters))
		}
		if cla := snap.Endpoints[hello]; cla == nil || len(cla.GetEndpoints()) == 0 {
			t.Errorf("EDS %s: %v, want the endpoint 10.244.0.9", hello, cla)
		}
		for _, l := range []string{"virtualOutbound", "virtualInbound"} {
			if snap.Listeners[l] == nil {
				t.Errorf("LDS has no %s: %v", l, keys(snap.Listeners))
			}
		}
	}
	t.Run("full config with the token", func(t *testing.T) { full(t, a.fetch(t, sleepToken, nil)) })
	t.Run("full config with the certificate", func(t *testing.T) { full(t, a.fetch(t, "", cert)) })

	otherCert, err := newAgent(t, other, rootPEM, tlsAddr).certificate(t, otherToken)
	if err != nil {
		t.Fatalf("CreateCertificate of namespace other: %v", err)
	}
	// A pod whose ISTIO_META_CLUSTER_ID names a cluster the control plane
	// does not know; and one whose node and gRPC metadata disagree.
	unknown := *a
	unknown.ap.env = maps.Clone(a.ap.env)
	unknown.ap.env["ISTIO_META_CLUSTER_ID"] = "cluster9"
	mismatch := unknown.node()
	for _, tc := range []struct {
		name   string
		agent  *agent
		token  string
		cert   *tls.Certificate
		node   *corev3.Node
		code   codes.Code
		reason string
	}{
		{"another namespace's token", a, otherToken, nil, a.node(), codes.PermissionDenied, xdsauth.ReasonNamespace},
		{"another service account's token", a, webToken, nil, a.node(), codes.PermissionDenied, xdsauth.ReasonServiceAccount},
		{"another namespace's certificate", a, "", otherCert, a.node(), codes.PermissionDenied, xdsauth.ReasonNamespace},
		{"no token", a, "", nil, a.node(), codes.Unauthenticated, ca.ReasonNoCredential},
		{"expired token", a, expired, nil, a.node(), codes.Unauthenticated, ca.ReasonBadToken},
		{"token of a deleted pod", a, goneToken, nil, a.node(), codes.Unauthenticated, ca.ReasonBadToken},
		{"unknown cluster", &unknown, sleepToken, nil, unknown.node(), codes.Unauthenticated, ca.ReasonUnknownCluster},
		{"node and metadata name other clusters", a, sleepToken, nil, mismatch, codes.PermissionDenied, xdsauth.ReasonClusterMismatch},
	} {
		for _, delta := range []bool{false, true} {
			name := tc.name + "/sotw"
			if delta {
				name = tc.name + "/delta"
			}
			t.Run(name, func(t *testing.T) {
				before := counterOf(t, rs.srv, "causeway_xds_auth_refused_total", "reason", tc.reason)
				// The deleted pod's token stays valid until the API
				// server's informer has seen the deletion.
				var err error
				poll := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
					err = tc.agent.firstAnswer(t, delta, tc.token, tc.cert, tc.node)
					return status.Code(err) == tc.code, nil
				})
				if poll != nil {
					t.Fatalf("first answer: %v; want code %v", err, tc.code)
				}
				if msg := status.Convert(err).Message(); !strings.Contains(msg, ": ") {
					t.Errorf("refusal %q does not say what to do", msg)
				}
				if got := counterOf(t, rs.srv, "causeway_xds_auth_refused_total", "reason", tc.reason); got <= before {
					t.Errorf("causeway_xds_auth_refused_total{reason=%q} = %v, want more than %v", tc.reason, got, before)
				}
			})
		}
	}
	// The same refusals on CreateCertificate (the one TokenReview path).
	if _, err := a.certificate(t, expired); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CreateCertificate with an expired token: %v, want Unauthenticated", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// counterOf reads counter name{label=value} of the server's registry.
func counterOf(t *testing.T, s *Server, name, label, value string) float64 {
	t.Helper()
	families, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
