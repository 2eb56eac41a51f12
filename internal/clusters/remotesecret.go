package clusters

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/model"
)

// ReaderName is the name of the ServiceAccount that remote secrets
// authenticate as; its ClusterRole and ClusterRoleBinding are named
// ReaderName-NAMESPACE.
const ReaderName = "causeway-reader"

// RemoteSecretConfig configures [CreateRemoteSecret].
type RemoteSecretConfig struct {
	// Client is an admin client of the remote cluster (it creates the
	// ServiceAccount, ClusterRole and binding). Required.
	Client kubernetes.Interface
	// ClusterID is the remote cluster's id: the secret's data key. Required.
	ClusterID model.ClusterID
	// Server is the API server URL the control plane will dial. Required.
	Server string
	// CAData is the PEM CA that verifies Server's certificate. Required.
	CAData []byte
	// Namespace holds the ServiceAccount in the remote cluster and the
	// secret in the primary. Default istio-system.
	Namespace string
	// TokenTTL selects the credential. Zero (the default): a
	// kubernetes.io/service-account-token Secret, which never expires and is
	// revoked by deleting it (what istioctl does; kube-controller-manager's
	// token controller must run to fill it). Positive: a TokenRequest token
	// valid that long (the API server may shorten it), for clusters without
	// the token controller; the remote secret must be re-created before it
	// expires.
	TokenTTL time.Duration
	// Wait bounds the wait for the token controller. Default 30s.
	Wait time.Duration
}

// RemoteSecret is what [CreateRemoteSecret] made.
type RemoteSecret struct {
	// Secret is the remote secret to apply in the primary cluster.
	Secret *corev1.Secret
	// Expires is when the token expires; nil for a token that does not.
	Expires *time.Time
}

// ReaderRules are the permissions of the remote secret's ServiceAccount:
// read what the watchers read, and create TokenReviews (the CA checks the
// tokens of the remote cluster's workloads with them).
func ReaderRules() []rbacv1.PolicyRule {
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "services", "pods", "nodes"}, Verbs: read},
		{APIGroups: []string{discoveryv1.GroupName}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: read},
		{APIGroups: []string{authenticationv1.GroupName}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		// The CA keeps the root ConfigMap istio-ca-root-cert of every
		// namespace current.
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
	}
}

// CreateRemoteSecret makes (idempotently) a read-only ServiceAccount in the
// remote cluster, obtains a token for it, and returns the remote secret
// that gives the control plane access with it: named
// istio-remote-secret-ID, labeled istio/multiCluster=true, annotated
// networking.istio.io/cluster=ID, its data key ID a kubeconfig with the
// server, its CA and the token.
func CreateRemoteSecret(ctx context.Context, cfg RemoteSecretConfig) (*RemoteSecret, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("remote secret: no client of the remote cluster")
	case cfg.ClusterID == "":
		return nil, errors.New("remote secret: the cluster id is empty: set --name")
	case cfg.Server == "":
		return nil, errors.New("remote secret: the server URL is empty: set --server")
	case len(cfg.CAData) == 0:
		return nil, errors.New("remote secret: no CA for the server: the kubeconfig must carry certificate-authority-data (or a certificate-authority file)")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "istio-system"
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if err := ensureReader(ctx, cfg.Client, cfg.Namespace); err != nil {
		return nil, fmt.Errorf("remote secret for cluster %s: %w", cfg.ClusterID, err)
	}
	var (
		token   string
		expires *time.Time
		err     error
	)
	if cfg.TokenTTL > 0 {
		token, expires, err = requestToken(ctx, cfg.Client, cfg.Namespace, cfg.TokenTTL)
	} else {
		token, err = secretToken(ctx, cfg.Client, cfg.Namespace, cfg.Wait)
	}
	if err != nil {
		return nil, fmt.Errorf("remote secret for cluster %s: %w", cfg.ClusterID, err)
	}
	kc, err := remoteKubeconfig(cfg.ClusterID, cfg.Server, cfg.CAData, token)
	if err != nil {
		return nil, fmt.Errorf("remote secret for cluster %s: %w", cfg.ClusterID, err)
	}
	id := string(cfg.ClusterID)
	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "istio-remote-secret-" + id,
			Namespace:   cfg.Namespace,
			Labels:      map[string]string{LabelMultiCluster: "true"},
			Annotations: map[string]string{AnnotationCluster: id},
		},
		StringData: map[string]string{id: string(kc)},
	}
	return &RemoteSecret{Secret: secret, Expires: expires}, nil
}

// MarshalRemoteSecret renders a remote secret as YAML for kubectl apply.
func MarshalRemoteSecret(s *corev1.Secret) ([]byte, error) {
	out := s.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
	data, err := yaml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("render remote secret %s: %w", s.Name, err)
	}
	return data, nil
}

// ensureReader creates or updates the namespace, ServiceAccount, ClusterRole
// and ClusterRoleBinding.
func ensureReader(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ReaderName, Namespace: ns}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/%s: %w", ns, ReaderName, err)
	}

	name := ReaderName + "-" + ns
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: ReaderRules()}
	got, err := cs.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create cluster role %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("get cluster role %s: %w", name, err)
	case !reflect.DeepEqual(got.Rules, role.Rules):
		got.Rules = role.Rules
		if _, err := cs.RbacV1().ClusterRoles().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update cluster role %s: %w", name, err)
		}
	}

	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ReaderName, Namespace: ns}},
	}
	gotB, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create cluster role binding %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("get cluster role binding %s: %w", name, err)
	case gotB.RoleRef != binding.RoleRef:
		// The role of a binding cannot change: replace the binding.
		if err := cs.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("replace cluster role binding %s: %w", name, err)
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("replace cluster role binding %s: %w", name, err)
		}
	case !reflect.DeepEqual(gotB.Subjects, binding.Subjects):
		gotB.Subjects = binding.Subjects
		if _, err := cs.RbacV1().ClusterRoleBindings().Update(ctx, gotB, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update cluster role binding %s: %w", name, err)
		}
	}
	return nil
}

// requestToken asks for a token of the reader ServiceAccount valid for ttl.
func requestToken(ctx context.Context, cs kubernetes.Interface, ns string, ttl time.Duration) (string, *time.Time, error) {
	secs := int64(ttl / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}
	got, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, ReaderName, tr, metav1.CreateOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("request a token for service account %s/%s: %w", ns, ReaderName, err)
	}
	if got.Status.Token == "" {
		return "", nil, fmt.Errorf("request a token for service account %s/%s: the API server returned no token", ns, ReaderName)
	}
	exp := got.Status.ExpirationTimestamp.Time
	return got.Status.Token, &exp, nil
}

// tokenSecretName is the long-lived token Secret of the reader.
const tokenSecretName = ReaderName + "-token"

// secretToken creates (if missing) a service-account-token Secret for the
// reader and waits for the token controller to fill it.
func secretToken(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) (string, error) {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        tokenSecretName,
			Namespace:   ns,
			Annotations: map[string]string{corev1.ServiceAccountNameKey: ReaderName},
		},
		Type: corev1.SecretTypeServiceAccountToken,
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create token secret %s/%s: %w", ns, tokenSecretName, err)
	}
	var token string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := cs.CoreV1().Secrets(ns).Get(ctx, tokenSecretName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		token = string(got.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("token secret %s/%s was not filled within %v (%w): is kube-controller-manager's token controller running? Otherwise use --token-ttl to request a token instead",
			ns, tokenSecretName, timeout, err)
	}
	return token, nil
}

// remoteKubeconfig writes the kubeconfig of a remote secret: cluster, user
// and context all named by the cluster id, as istioctl writes it.
func remoteKubeconfig(id model.ClusterID, server string, ca []byte, token string) ([]byte, error) {
	name := string(id)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return data, nil
}
