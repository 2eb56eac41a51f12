package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAccountToken asks the apiserver for a token of service account
// namespace/name (TokenRequest, as the kubelet does for a projected token
// volume) for audiences, valid for ttl (the apiserver's minimum is 10
// minutes), bound to the pod boundPod (empty: none) as a kubelet binds a
// pod's projected token.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, name string, audiences []string, ttl time.Duration, boundPod string) (string, error) {
	secs := int64(ttl / time.Second)
	req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &secs}}
	if boundPod != "" {
		pod, err := c.client.CoreV1().Pods(namespace).Get(ctx, boundPod, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("token bound to pod %s/%s: %w", namespace, boundPod, err)
		}
		req.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// Expire returns token, a JWT this cluster's apiserver issued, as it is
// after its expiry: its exp (and iat, nbf) moved back by age and signed
// again with the apiserver's own service-account signing key, so that
// the apiserver itself judges it, and refuses it as expired. The
// apiserver's TokenRequest does not issue tokens shorter than 10 minutes,
// which a test cannot wait for.
func (c *Cluster) Expire(token string, age time.Duration) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("expire: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("expire: payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("expire: claims: %w", err)
	}
	shift := age.Seconds()
	exp, ok := claims["exp"].(float64)
	if !ok {
		return "", errors.New("expire: the token has no exp claim")
	}
	// Expired age ago, issued as long before that as it was valid.
	now := float64(time.Now().Unix())
	life := exp
	if iat, ok := claims["iat"].(float64); ok {
		life = exp - iat
		claims["iat"] = now - shift - life
	}
	if _, ok := claims["nbf"].(float64); ok {
		claims["nbf"] = now - shift - life
	}
	claims["exp"] = now - shift
	payload, err = json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("expire: %w", err)
	}
	keyPEM, err := os.ReadFile(c.saKeyPath)
	if err != nil {
		return "", fmt.Errorf("expire: the apiserver's signing key: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return "", errors.New("expire: the apiserver's signing key is not PEM")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("expire: the apiserver's signing key: %w", err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return "", errors.New("expire: the apiserver's signing key is not ECDSA")
	}
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("expire: sign: %w", err)
	}
	// ES256: r and s, 32 bytes each, big-endian.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
