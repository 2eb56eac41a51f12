package install

import (
	corev1 "k8s.io/api/core/v1"
)

// The gateway's service-account token for the control plane's secure
// port, projected as Istio's injector projects a sidecar's.
const (
	TokenVolume   = "istio-token"
	TokenDir      = "/var/run/secrets/tokens"
	TokenFile     = "istio-token"
	TokenAudience = "istio-ca"
	// tokenSeconds is the token's lifetime; the kubelet renews it at 80%.
	tokenSeconds = 43200
)

// tokenVolume is the projected service-account token (audience istio-ca)
// that a gateway sends to the control plane's secure port (--xds-token),
// which authenticates every ADS stream.
func tokenVolume() (corev1.Volume, corev1.VolumeMount) {
	secs := int64(tokenSeconds)
	return corev1.Volume{
			Name: TokenVolume,
			VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: TokenAudience, ExpirationSeconds: &secs, Path: TokenFile,
				}}},
			}},
		}, corev1.VolumeMount{
			Name: TokenVolume, MountPath: TokenDir, ReadOnly: true,
		}
}
