package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// extraCAPEM is a CA certificate the test makes: appended to a cluster's
// CA it is new CA data for the same server, as during a CA rotation (the
// server's certificate is unchanged).
func extraCAPEM(t *testing.T) []byte {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "rotation-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))(t)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// kubeconfigOf is a remote secret's kubeconfig for cluster id.
func kubeconfigOf(t *testing.T, id, server string, ca []byte, token string) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[id] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[id] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[id] = &clientcmdapi.Context{Cluster: id, AuthInfo: id}
	cfg.CurrentContext = id
	return must(clientcmd.Write(*cfg))(t)
}

// newToken makes a new TokenRequest token for the remote secret's
// ServiceAccount of remote (the same account every time).
func newToken(t *testing.T, remote *testenv.Cluster) string {
	t.Helper()
	rs := must(clusters.CreateRemoteSecret(t.Context(), clusters.RemoteSecretConfig{
		Client: remote.Client(), ClusterID: model.ClusterID(remote.ID), Server: remote.Host, CAData: remote.CAPEM, TokenTTL: time.Hour,
	}))(t)
	data := rs.Secret.Data[remote.ID]
	if data == nil {
		data = []byte(rs.Secret.StringData[remote.ID])
	}
	kc := must(clientcmd.Load(data))(t)
	for _, a := range kc.AuthInfos {
		if a.Token != "" {
			return a.Token
		}
	}
	t.Fatalf("the remote secret's kubeconfig has no token:\n%s", data)
	return ""
}

// TestIntegrationHitlessRotation: while endpoints of cluster2 churn (about
// 10 changes/s), its remote secret is rotated 20 times, cycling through a
// new token of the same ServiceAccount, new CA data for the same server
// (its CA plus another, or its CA alone) and a switch between two
// addresses of the same API server (its own port and a loopback TCP proxy
// to it). A sidecar watching helloworld's EDS must see cluster2's stable
// endpoint in every response it receives. Then the secret is changed to a
// kubeconfig whose token the API server refuses (and to one the sanitizer
// refuses): the cluster keeps its previous client, its credentials show as
// failing, and the good kubeconfig back clears it. Deleting the secret
// removes the cluster.
func TestIntegrationHitlessRotation(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers and rotates a remote secret 20 times")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	ctx := t.Context()
	for i, c := range env.Clusters {
		cs := c.Client()
		must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1"}))(t)
		must(testenv.CreateNamespace(ctx, cs, "sample", nil))(t)
		must(testenv.CreateNode(ctx, cs, "node-a", nil, "", fmt.Sprintf("192.168.%d.1", i+1)))(t)
		must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: "sample", Name: "helloworld",
			Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
		addHelloworld(t, cs, "helloworld-0", fmt.Sprintf("10.%d.0.5", i+1))
	}
	secondAddr := startFaultProxy(t, strings.TrimPrefix(c2.Host, "https://"))
	otherCA := extraCAPEM(t)

	// The remote secret, written by the test from its parts.
	type parts struct {
		server string
		ca     []byte
		token  string
	}
	cur := parts{server: c2.Host, ca: c2.CAPEM, token: newToken(t, c2)}
	secrets := c1.Client().CoreV1().Secrets("istio-system")
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-remote-secret-cluster2", Labels: map[string]string{clusters.LabelMultiCluster: "true"}},
		Data:       map[string][]byte{"cluster2": kubeconfigOf(t, "cluster2", cur.server, cur.ca, cur.token)},
	}
	must(secrets.Create(ctx, secret, metav1.CreateOptions{}))(t)
	write := func(kubeconfig []byte) {
		t.Helper()
		s := must(secrets.Get(ctx, secret.Name, metav1.GetOptions{}))(t)
		s.Data = map[string][]byte{"cluster2": kubeconfig}
		must(secrets.Update(ctx, s, metav1.UpdateOptions{}))(t)
	}

	// A swap timeout longer than the test's waits: a refusal seen in time
	// is the 401's.
	rs := serveCluster(t, c1, Config{SwapTimeout: time.Hour})
	const resource = "outbound|5000||helloworld.sample.svc.cluster.local"
	stable := []string{"10.1.0.5:5000/1", "10.2.0.5:5000/1"}

	var mu sync.Mutex
	armed, responses := false, 0
	var gaps, last []string
	observe := func(eps []string) {
		mu.Lock()
		defer mu.Unlock()
		last = eps
		if !armed {
			return
		}
		responses++
		for _, want := range stable {
			if !slices.Contains(eps, want) {
				gaps = append(gaps, fmt.Sprintf("response %d lacks %s: %v", responses, want, eps))
			}
		}
	}
	sidecar := watchEDSObserved(t, rs.srv.XDSAddr().String(), "net1", "cluster1", resource, observe)
	sidecar.await(t, "initial view", stable)
	mu.Lock()
	armed = true
	mu.Unlock()

	// Churn: a new endpoint slice of cluster2 every 100ms, and the one made
	// three steps before deleted.
	churnCtx, stopChurn := context.WithCancel(ctx)
	var churnWG sync.WaitGroup
	var live []string // IPs of the churn's slices not deleted yet
	churnWG.Go(func() {
		slicesAPI := c2.Client().DiscoveryV1().EndpointSlices("sample")
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			name := fmt.Sprintf("churn-%d", i)
			ip := fmt.Sprintf("10.2.1.%d", i%250+1)
			if _, err := testenv.CreateEndpointSlice(churnCtx, c2.Client(), "sample", "helloworld", name,
				[]testenv.EndpointPort{{Name: "http", Port: 5000}}, []testenv.Endpoint{{IP: ip, Ready: true, Node: "node-a"}}); err != nil {
				if churnCtx.Err() == nil {
					t.Errorf("churn: %v", err)
				}
				return
			}
			live = append(live, ip)
			if len(live) > 3 {
				old := fmt.Sprintf("churn-%d", i-3)
				if err := slicesAPI.Delete(churnCtx, old, metav1.DeleteOptions{}); err != nil {
					if churnCtx.Err() == nil {
						t.Errorf("churn: %v", err)
					}
					return
				}
				live = live[1:]
			}
			select {
			case <-churnCtx.Done():
				return
			case <-tick.C:
			}
		}
	})

	// waitSwap waits until cluster2 runs on a new watch (synced after
	// prev) of server, with no change pending or refused.
	waitSwap := func(what string, prev time.Time, server string) time.Time {
		t.Helper()
		var at time.Time
		testkit.Eventually(t, testkit.WaitTimeout, what, func() string {
			st := rs.cluster(t, "cluster2")
			switch {
			case st.SyncedAt == nil || !st.SyncedAt.After(prev):
				return "not moved to the new kubeconfig yet"
			case st.Server != server || st.Pending != "" || st.Error != "" || st.Credentials != "" || st.State != clusters.StateLive:
				return fmt.Sprintf("server %s, state %s, pending %q, error %q, credentials %q", st.Server, st.State, st.Pending, st.Error, st.Credentials)
			}
			at = *st.SyncedAt
			return ""
		})
		return at
	}
	syncedAt := *rs.cluster(t, "cluster2").SyncedAt
	for i := range 20 {
		var what string
		switch i % 3 {
		case 0:
			cur.token, what = newToken(t, c2), "a new token"
		case 1:
			if len(cur.ca) == len(c2.CAPEM) {
				cur.ca, what = slices.Concat(c2.CAPEM, otherCA), "CA data with a second CA"
			} else {
				cur.ca, what = c2.CAPEM, "CA data with its CA alone"
			}
		case 2:
			if cur.server == c2.Host {
				cur.server, what = secondAddr.URL(), "the second address"
			} else {
				cur.server, what = c2.Host, "the first address"
			}
		}
		write(kubeconfigOf(t, "cluster2", cur.server, cur.ca, cur.token))
		syncedAt = waitSwap(fmt.Sprintf("rotation %d (%s)", i+1, what), syncedAt, cur.server)
	}

	// A token the API server refuses: the change is refused as soon as the
	// new watch's probe gets 401 (well before the swap timeout), the
	// previous client stays.
	write(kubeconfigOf(t, "cluster2", cur.server, cur.ca, "not-a-valid-token"))
	testkit.Eventually(t, testkit.WaitTimeout, "refused token", func() string {
		st := rs.cluster(t, "cluster2")
		if st.Credentials != clusters.CredentialsFailing || !strings.Contains(st.Error, "401 Unauthorized") || st.State != clusters.StateLive {
			return fmt.Sprintf("state %s, credentials %q, error %q", st.State, st.Credentials, st.Error)
		}
		return ""
	})
	if table := statusTable(t, rs.base); !strings.Contains(table, "credentials failing") {
		t.Errorf("causeway status does not show the failing credentials:\n%s", table)
	}
	// A kubeconfig the sanitizer refuses: refused at once.
	execCfg := must(clientcmd.Load(kubeconfigOf(t, "cluster2", cur.server, cur.ca, "")))(t)
	execCfg.AuthInfos["cluster2"] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{APIVersion: "client.authentication.k8s.io/v1", Command: "/bin/true"}}
	write(must(clientcmd.Write(*execCfg))(t))
	testkit.Eventually(t, testkit.WaitTimeout, "refused exec kubeconfig", func() string {
		st := rs.cluster(t, "cluster2")
		if st.Credentials != clusters.CredentialsFailing || !strings.Contains(st.Error, "exec") {
			return fmt.Sprintf("credentials %q, error %q", st.Credentials, st.Error)
		}
		return ""
	})
	// The good kubeconfig back: the cluster never left it.
	write(kubeconfigOf(t, "cluster2", cur.server, cur.ca, cur.token))
	testkit.Eventually(t, testkit.WaitTimeout, "good kubeconfig back", func() string {
		if st := rs.cluster(t, "cluster2"); st.Credentials != "" || st.Error != "" || st.State != clusters.StateLive {
			return fmt.Sprintf("state %s, credentials %q, error %q", st.State, st.Credentials, st.Error)
		}
		return ""
	})

	stopChurn()
	churnWG.Wait()
	// What the churn left, as the API server says (a request cut by the
	// end of the churn may still have been applied).
	final := slices.Clone(stable)
	left := must(c2.Client().DiscoveryV1().EndpointSlices("sample").List(ctx, metav1.ListOptions{}))(t)
	for _, es := range left.Items {
		if strings.HasPrefix(es.Name, "churn-") {
			for _, ep := range es.Endpoints {
				final = append(final, ep.Addresses[0]+":5000/1")
			}
		}
	}
	slices.Sort(final)
	// The updates channel of the watch keeps the oldest responses when
	// full: the latest one is the observer's.
	testkit.Eventually(t, testkit.WaitTimeout, "the sidecar's view after the churn (-want +got)", func() string {
		mu.Lock()
		defer mu.Unlock()
		return cmp.Diff(final, last)
	})

	mu.Lock()
	armed = false
	n, lost := responses, gaps
	mu.Unlock()
	if len(lost) > 0 {
		t.Errorf("cluster2's endpoints left the sidecar's view during rotations (%d of %d responses):\n%s", len(lost), n, strings.Join(lost, "\n"))
	}
	if n < 20 {
		t.Errorf("the sidecar got %d responses during the churn: the churn did not reach it", n)
	}
	t.Logf("%d EDS responses checked during 20 rotations under churn", n)

	// Deleting the secret removes the cluster, as before.
	if err := secrets.Delete(ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.WaitTimeout, "the sidecar's view after the secret is deleted (-want +got)", func() string {
		mu.Lock()
		defer mu.Unlock()
		return cmp.Diff([]string{"10.1.0.5:5000/1"}, last)
	})
}
