package kubeconv

import (
	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// PeerAuthentication converts a security.istio.io/v1 PeerAuthentication.
// It is total: every object the API server stores has a meaning.
//
//   - A selector without matchLabels (`selector: {}`) is no selector, as
//     istiod reads it: the policy is namespace-wide (mesh-wide in the
//     system namespace), not a workload policy selecting every pod.
//   - A mode the API does not know (an older or newer enum value) is
//     UNSET, so the policy inherits rather than guesses.
//   - portLevelMtls entries are kept as they are, ports 0 and above 65535
//     included: no workload port equals them, so they never apply (Istio's
//     CRD rejects them anyway). The model reads them only from workload
//     policies, as istiod does.
func PeerAuthentication(cluster model.ClusterID, pa *securityv1.PeerAuthentication) *model.PeerAuthentication {
	out := &model.PeerAuthentication{
		Cluster:   cluster,
		Namespace: pa.Namespace,
		Name:      pa.Name,
		Created:   pa.CreationTimestamp.Time,
		Mode:      mtlsMode(pa.Spec.GetMtls()),
	}
	if sel := pa.Spec.GetSelector().GetMatchLabels(); len(sel) > 0 {
		out.Selector = sel
	}
	if pl := pa.Spec.GetPortLevelMtls(); len(pl) > 0 {
		out.PortLevel = make(map[uint32]model.MTLSMode, len(pl))
		for port, m := range pl {
			out.PortLevel[port] = mtlsMode(m)
		}
	}
	return out
}

func mtlsMode(m *securityv1beta1.PeerAuthentication_MutualTLS) model.MTLSMode {
	switch m.GetMode() {
	case securityv1beta1.PeerAuthentication_MutualTLS_DISABLE:
		return model.MTLSDisable
	case securityv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE:
		return model.MTLSPermissive
	case securityv1beta1.PeerAuthentication_MutualTLS_STRICT:
		return model.MTLSStrict
	}
	return model.MTLSUnset
}
