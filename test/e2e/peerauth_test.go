package e2e

import (
	"context"
	"fmt"
	"time"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/testenv"
)

// peerAuthTimeout bounds how long a PeerAuthentication change may take to
// reach a workload's inbound (watch, publish, LDS): a deadline for a
// condition, not a speed assertion.
const peerAuthTimeout = 60 * time.Second

// applyPeerAuthentication creates, or sets the mode of, PeerAuthentication
// ns/name without a selector (in the system namespace: mesh-wide).
func applyPeerAuthentication(ctx context.Context, c *testenv.Cluster, ns, name string, mode securityv1beta1.PeerAuthentication_MutualTLS_Mode) error {
	ic, err := c.IstioClient()
	if err != nil {
		return err
	}
	pas := ic.SecurityV1().PeerAuthentications(ns)
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
	_, err = pas.Create(ctx, pa, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, getErr := pas.Get(ctx, name, metav1.GetOptions{})
		if getErr != nil {
			return fmt.Errorf("cluster %s: get PeerAuthentication %s/%s: %w", c.ID, ns, name, getErr)
		}
		cur.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: mode}
		_, err = pas.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("cluster %s: PeerAuthentication %s/%s %v: %w", c.ID, ns, name, mode, err)
	}
	return nil
}
