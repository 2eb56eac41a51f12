package kubeconv

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

func TestPeerAuthentication(t *testing.T) {
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	mtls := func(m securityv1beta1.PeerAuthentication_MutualTLS_Mode) *securityv1beta1.PeerAuthentication_MutualTLS {
		return &securityv1beta1.PeerAuthentication_MutualTLS{Mode: m}
	}
	const (
		unset      = securityv1beta1.PeerAuthentication_MutualTLS_UNSET
		disable    = securityv1beta1.PeerAuthentication_MutualTLS_DISABLE
		permissive = securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
		strict     = securityv1beta1.PeerAuthentication_MutualTLS_STRICT
	)
	tests := []struct {
		name string
		spec *securityv1beta1.PeerAuthentication
		want model.PeerAuthentication
	}{
		{
			name: "empty spec: UNSET, no selector",
			spec: &securityv1beta1.PeerAuthentication{},
			want: model.PeerAuthentication{},
		},
		{
			name: "mesh-wide STRICT",
			spec: &securityv1beta1.PeerAuthentication{Mtls: mtls(strict)},
			want: model.PeerAuthentication{Mode: model.MTLSStrict},
		},
		{
			name: "PERMISSIVE",
			spec: &securityv1beta1.PeerAuthentication{Mtls: mtls(permissive)},
			want: model.PeerAuthentication{Mode: model.MTLSPermissive},
		},
		{
			name: "an empty selector is no selector (istiod: namespace-wide)",
			spec: &securityv1beta1.PeerAuthentication{Selector: &typev1beta1.WorkloadSelector{}, Mtls: mtls(disable)},
			want: model.PeerAuthentication{Mode: model.MTLSDisable},
		},
		{
			name: "workload DISABLE with port-level modes",
			spec: &securityv1beta1.PeerAuthentication{
				Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "db"}},
				Mtls:     mtls(disable),
				PortLevelMtls: map[uint32]*securityv1beta1.PeerAuthentication_MutualTLS{
					8080: mtls(strict), 9090: mtls(unset), 9091: nil,
				},
			},
			want: model.PeerAuthentication{
				Selector: map[string]string{"app": "db"}, Mode: model.MTLSDisable,
				PortLevel: map[uint32]model.MTLSMode{8080: model.MTLSStrict, 9090: model.MTLSUnset, 9091: model.MTLSUnset},
			},
		},
		{
			name: "a mode the API does not know is UNSET",
			spec: &securityv1beta1.PeerAuthentication{Mtls: mtls(42)},
			want: model.PeerAuthentication{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pa := &securityv1.PeerAuthentication{
				ObjectMeta: metav1.ObjectMeta{Namespace: "sample", Name: "p", CreationTimestamp: metav1.NewTime(created)},
			}
			pa.Spec.Selector, pa.Spec.Mtls, pa.Spec.PortLevelMtls = tt.spec.Selector, tt.spec.Mtls, tt.spec.PortLevelMtls
			got := PeerAuthentication("cluster1", pa)
			want := tt.want
			want.Cluster, want.Namespace, want.Name, want.Created = "cluster1", "sample", "p", created
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
