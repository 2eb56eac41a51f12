package ca

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// ApplyPluginSecret creates the plug-in CA Secret cacerts in namespace with
// the bundle's four keys or, when it exists, replaces its data (what
// causeway certs intermediate --apply does). It reports whether the
// Secret was created.
func ApplyPluginSecret(ctx context.Context, cs kubernetes.Interface, namespace string, b pki.Bundle) (created bool, err error) {
	secrets := cs.CoreV1().Secrets(namespace)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PluginSecretName, Namespace: namespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       b.Data(),
	}
	_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, fmt.Errorf("namespace %s does not exist: create it (kubectl create namespace %s) or pass --namespace: %w",
			namespace, namespace, err)
	case !apierrors.IsAlreadyExists(err):
		return false, fmt.Errorf("create Secret %s/%s: %w", namespace, PluginSecretName, err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, PluginSecretName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Type != corev1.SecretTypeOpaque {
			return fmt.Errorf("the existing Secret is of type %s, not Opaque; delete it (kubectl -n %s delete secret %s) and run again",
				cur.Type, namespace, PluginSecretName)
		}
		cur.Data = b.Data()
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", namespace, PluginSecretName, err)
	}
	return false, nil
}
