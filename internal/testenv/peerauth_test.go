package testenv

import (
	"testing"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The PeerAuthentication CRD installs (twice: the second finds it there)
// and the Istio client writes and reads a PeerAuthentication through it.
func TestInstallPeerAuthCRD(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{Clusters: 1}).Clusters[0]
	for i := range 2 {
		if err := c.InstallPeerAuthCRD(t.Context()); err != nil {
			t.Fatalf("install %d: %v", i+1, err)
		}
	}
	ic, err := c.IstioClient()
	if err != nil {
		t.Fatal(err)
	}
	pa := &securityv1.PeerAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "strict"}}
	pa.Spec.Mtls = &securityv1beta1.PeerAuthentication_MutualTLS{Mode: securityv1beta1.PeerAuthentication_MutualTLS_STRICT}
	if _, err := ic.SecurityV1().PeerAuthentications("default").Create(t.Context(), pa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := ic.SecurityV1().PeerAuthentications("default").Get(t.Context(), "strict", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mode := got.Spec.GetMtls().GetMode(); mode != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
		t.Errorf("PeerAuthentication read back with mode %v, want STRICT", mode)
	}
}
