package clusters

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// withTokenController makes the fake fill service-account-token Secrets on
// creation, as kube-controller-manager's token controller does.
func withTokenController(c *fake.Clientset, token string) {
	c.PrependReactor("create", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if s, ok := a.(k8stesting.CreateAction).GetObject().(*corev1.Secret); ok && s.Type == corev1.SecretTypeServiceAccountToken {
			s.Data = map[string][]byte{corev1.ServiceAccountTokenKey: []byte(token)}
		}
		return false, nil, nil
	})
}

// withTokenRequests makes the fake answer TokenRequests.
func withTokenRequests(c *fake.Clientset, token string, expires time.Time) {
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		tr.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(expires)}
		return true, tr, nil
	})
}

func TestCreateRemoteSecret(t *testing.T) {
	caB64, _ := testPEM(t)
	ca, err := base64.StdEncoding.DecodeString(caB64)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		ttl       time.Duration
		wantToken string
		wantExp   *time.Time
	}{
		{name: "service-account-token secret", wantToken: "secret-token"},
		{name: "token request", ttl: 24 * time.Hour, wantToken: "requested-token", wantExp: &expires},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			// A stale ClusterRole from an older version: its rules are updated.
			old := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "causeway-reader-istio-system"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
			client := fake.NewClientset(old)
			withTokenController(client, "secret-token")
			withTokenRequests(client, "requested-token", expires)
			cfg := RemoteSecretConfig{Client: client, ClusterID: "cluster2", Server: "https://remote:6443", CAData: ca, TokenTTL: tt.ttl}

			// Twice: the second run finds everything in place.
			var rs *RemoteSecret
			for range 2 {
				if rs, err = CreateRemoteSecret(ctx, cfg); err != nil {
					t.Fatal(err)
				}
			}
			if d := cmp.Diff(tt.wantExp, rs.Expires); d != "" {
				t.Errorf("Expires (-want +got)\n%s", d)
			}

			out, err := MarshalRemoteSecret(rs.Secret)
			if err != nil {
				t.Fatal(err)
			}
			var got corev1.Secret
			if err := yaml.UnmarshalStrict(out, &got); err != nil {
				t.Fatalf("the YAML does not parse as a Secret: %v\n%s", err, out)
			}
			wantMeta := metav1.ObjectMeta{
				Name: "istio-remote-secret-cluster2", Namespace: "istio-system",
				Labels:      map[string]string{LabelMultiCluster: "true"},
				Annotations: map[string]string{AnnotationCluster: "cluster2"},
			}
			if d := cmp.Diff(wantMeta, got.ObjectMeta); d != "" {
				t.Errorf("secret metadata (-want +got)\n%s", d)
			}
			if got.APIVersion != "v1" || got.Kind != "Secret" || len(got.StringData) != 1 {
				t.Fatalf("secret = %s %s with keys %v, want v1 Secret with one key", got.APIVersion, got.Kind, got.StringData)
			}

			// The data key is a kubeconfig the controller accepts.
			kc := []byte(got.StringData["cluster2"])
			clients, err := KubeconfigClients("cluster2", kc)
			if err != nil {
				t.Fatalf("the controller refuses the kubeconfig: %v\n%s", err, kc)
			}
			if clients.Server != "https://remote:6443" {
				t.Errorf("server = %q", clients.Server)
			}
			parsed, err := clientcmd.Load(kc)
			if err != nil {
				t.Fatal(err)
			}
			if got := parsed.AuthInfos["cluster2"].Token; got != tt.wantToken {
				t.Errorf("token = %q, want %q", got, tt.wantToken)
			}
			if d := cmp.Diff(ca, parsed.Clusters["cluster2"].CertificateAuthorityData); d != "" {
				t.Errorf("CA (-want +got)\n%s", d)
			}

			// The remote cluster holds a read-only reader.
			role, err := client.RbacV1().ClusterRoles().Get(ctx, "causeway-reader-istio-system", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(ReaderRules(), role.Rules); d != "" {
				t.Errorf("cluster role rules (-want +got)\n%s", d)
			}
			binding, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "causeway-reader-istio-system", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: ReaderName, Namespace: "istio-system"}}
			if d := cmp.Diff(wantSubjects, binding.Subjects); d != "" {
				t.Errorf("binding subjects (-want +got)\n%s", d)
			}
			if _, err := client.CoreV1().ServiceAccounts("istio-system").Get(ctx, ReaderName, metav1.GetOptions{}); err != nil {
				t.Errorf("service account: %v", err)
			}
		})
	}
}

// TestReaderRulesOnlyRead: the remote account reads, and writes only what
// the CA needs: TokenReviews (to authenticate workloads) and ConfigMaps (to
// keep istio-ca-root-cert current); never delete, never other kinds.
func TestReaderRulesOnlyRead(t *testing.T) {
	for _, r := range ReaderRules() {
		for _, v := range r.Verbs {
			read := v == "get" || v == "list" || v == "watch"
			tokenReview := v == "create" && cmp.Equal(r.Resources, []string{"tokenreviews"})
			rootConfigMap := (v == "create" || v == "update") && cmp.Equal(r.Resources, []string{"configmaps"})
			if !read && !tokenReview && !rootConfigMap {
				t.Errorf("rule %v grants %q", r.Resources, v)
			}
		}
	}
}

func TestCreateRemoteSecretErrors(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset() // no token controller: the Secret stays empty
	tests := []struct {
		name string
		cfg  RemoteSecretConfig
		want string
	}{
		{"no client", RemoteSecretConfig{ClusterID: "c", Server: "s", CAData: []byte("x")}, "no client"},
		{"no id", RemoteSecretConfig{Client: client, Server: "s", CAData: []byte("x")}, "set --name"},
		{"no server", RemoteSecretConfig{Client: client, ClusterID: "c", CAData: []byte("x")}, "set --server"},
		{"no CA", RemoteSecretConfig{Client: client, ClusterID: "c", Server: "s"}, "no CA"},
		{"token never filled", RemoteSecretConfig{Client: client, ClusterID: "c", Server: "s", CAData: []byte("x"), Wait: 300 * time.Millisecond},
			"token controller running? Otherwise use --token-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CreateRemoteSecret(ctx, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CreateRemoteSecret() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestCreateRemoteSecretRefusedServer: a secret the control plane would
// refuse is not made, and nothing is created in the remote cluster.
func TestCreateRemoteSecretRefusedServer(t *testing.T) {
	caB64, _ := testPEM(t)
	ca, err := base64.StdEncoding.DecodeString(caB64)
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset()
	_, err = CreateRemoteSecret(t.Context(), RemoteSecretConfig{
		Client: cs, ClusterID: "c2", Server: "https://169.254.169.254", CAData: ca,
	})
	if err == nil || !strings.Contains(err.Error(), "--allow-kubeconfig-option=link-local-server") {
		t.Fatalf("CreateRemoteSecret() error = %v, want a refusal naming the option", err)
	}
	if n := len(cs.Actions()); n != 0 {
		t.Errorf("%d API calls made for a refused secret: %v", n, cs.Actions())
	}
	p, err := ParseKubeconfigPolicy([]string{string(OptionLinkLocalServer)})
	if err != nil {
		t.Fatal(err)
	}
	withTokenController(cs, "tok")
	if _, err := CreateRemoteSecret(t.Context(), RemoteSecretConfig{
		Client: cs, ClusterID: "c2", Server: "https://169.254.169.254", CAData: ca, KubeconfigPolicy: p,
	}); err != nil {
		t.Fatalf("allowed link-local server: %v", err)
	}
}
