package install

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/inject"
)

// Istio's data plane conventions that the proxyv2 gateway relies on.
const (
	// istioProxyUID is the uid and gid Istio's proxies run as.
	istioProxyUID = 1337
	// PortEnvoyPrometheus is Envoy's merged Prometheus port in proxyv2.
	PortEnvoyPrometheus = 15090
	// tokenAudience is the audience of the projected token pilot-agent
	// presents to the CA and the secure xDS port.
	tokenAudience = "istio-ca"
	// tokenLifetime is the projected token's lifetime (Istio's 12 hours;
	// the kubelet renews it before it expires).
	tokenLifetime = 43200
	// clusterDomain is the Kubernetes DNS domain of pilot-agent's --domain.
	clusterDomain = "cluster.local"
)

// istioXDSAddress is where Istio's gateway takes its configuration and
// certificate: always the secure port, since pilot-agent dials the control
// plane over TLS with its token. The same defaults as Causeway's gateway,
// but port 15012 for the control plane's own Service.
func (v Values) istioXDSAddress() string {
	switch {
	case v.Gateway.XDSAddress != "":
		return v.Gateway.XDSAddress
	case v.RemotePilotAddress != "":
		return fmt.Sprintf("%s.%s.svc:%d", RemoteServiceName, v.Namespace, PortXDSTLS)
	default:
		return fmt.Sprintf("%s:%d", v.controlPlaneService(), PortXDSTLS)
	}
}

// istioGatewayDeployment runs Istio's proxyv2 image as the east-west
// gateway, as Istio's east-west gateway chart does: pilot-agent in router
// mode (`proxy router`), ROUTER_MODE sni-dnat, its network's view, the
// projected istio-ca token and the mesh root for the CA and xDS at the
// control plane's secure port, and the sockets and scratch volumes
// pilot-agent and Envoy write. The pod is never injected (it is its own
// proxy), so istio-injection=disabled on its namespace does not matter.
// The control plane (Causeway or istiod) gives the router its listeners;
// this only deploys it.
func istioGatewayDeployment(v Values, labels, selector map[string]string, ports []corev1.ContainerPort) *appsv1.Deployment {
	xds := v.istioXDSAddress()
	ports = append(slices.Clone(ports), containerPort("http-envoy-prom", PortEnvoyPrometheus))
	mounts, volumes := istioRouterVolumes()
	c := corev1.Container{
		Name:            "istio-proxy",
		Image:           v.ProxyImage,
		ImagePullPolicy: v.ImagePullPolicy,
		Args: []string{
			"proxy", "router",
			"--domain", "$(POD_NAMESPACE).svc." + clusterDomain,
			"--proxyLogLevel=warning",
			"--proxyComponentLogLevel=misc:error",
			"--log_output_level=default:info",
		},
		Ports:        ports,
		Env:          istioRouterEnv(v, xds),
		VolumeMounts: mounts,
		// pilot-agent's status port: ready once Envoy has its first
		// configuration.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz/ready", Port: intstr.FromInt32(PortGatewayAdmin), Scheme: corev1.URISchemeHTTP,
			}},
			InitialDelaySeconds: 1, PeriodSeconds: 2, TimeoutSeconds: 3, FailureThreshold: 30, SuccessThreshold: 1,
		},
	}
	d := deployment(GatewayName, v.Namespace, labels, selector, map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   fmt.Sprint(PortEnvoyPrometheus),
		"prometheus.io/path":   "/stats/prometheus",
	}, v.Gateway.ComponentValues, defaultGatewayResources(), GatewayServiceAccount, c, volumes...)
	// pilot-agent sizes Envoy from ISTIO_CPU_LIMIT; the memory limit is
	// Envoy's as much as the agent's, so no GOMEMLIMIT for the agent.
	pc := &d.Spec.Template.Spec.Containers[0]
	pc.Env = slices.DeleteFunc(pc.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	sc := d.Spec.Template.Spec.SecurityContext
	sc.RunAsUser, sc.RunAsGroup, sc.FSGroup = new(int64(istioProxyUID)), new(int64(istioProxyUID)), new(int64(istioProxyUID))
	return d
}

// istioRouterEnv is the environment of pilot-agent in router mode: where
// the CA and xDS are (xds), the pod's identity, and the mesh, network and
// cluster it routes for.
func istioRouterEnv(v Values, xds string) []corev1.EnvVar {
	proxyConfig, _ := json.Marshal(map[string]string{"discoveryAddress": xds}) // a map of strings always encodes
	return []corev1.EnvVar{
		{Name: "JWT_POLICY", Value: "third-party-jwt"},
		{Name: "PILOT_CERT_PROVIDER", Value: "istiod"},
		{Name: "CA_ADDR", Value: xds},
		{Name: "PROXY_CONFIG", Value: string(proxyConfig)},
		inject.FieldEnv("NODE_NAME", "spec.nodeName"),
		inject.FieldEnv("POD_NAME", "metadata.name"),
		inject.FieldEnv("POD_NAMESPACE", "metadata.namespace"),
		inject.FieldEnv("INSTANCE_IP", "status.podIP"),
		inject.FieldEnv("HOST_IP", "status.hostIP"),
		inject.FieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		{Name: "ISTIO_CPU_LIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "istio-proxy", Resource: "limits.cpu"}}},
		{Name: "ISTIO_META_WORKLOAD_NAME", Value: GatewayName},
		{Name: "ISTIO_META_OWNER", Value: fmt.Sprintf("kubernetes://apis/apps/v1/namespaces/%s/deployments/%s", v.Namespace, GatewayName)},
		{Name: "ISTIO_META_MESH_ID", Value: cmp.Or(v.MeshID, v.TrustDomain)},
		{Name: "TRUST_DOMAIN", Value: v.TrustDomain},
		{Name: "ISTIO_META_UNPRIVILEGED_POD", Value: "true"},
		{Name: "ISTIO_META_ROUTER_MODE", Value: "sni-dnat"},
		{Name: "ISTIO_META_REQUESTED_NETWORK_VIEW", Value: v.Network},
		{Name: "ISTIO_META_CLUSTER_ID", Value: v.ClusterID},
		{Name: "ISTIO_META_NETWORK", Value: v.Network},
	}
}

// istioRouterVolumes are the mounts and volumes of pilot-agent in router
// mode: the sockets and scratch space it and Envoy write, the pod info, the
// projected istio-ca token and the mesh root.
func istioRouterVolumes() ([]corev1.VolumeMount, []corev1.Volume) {
	mounts := []corev1.VolumeMount{
		{Name: "workload-socket", MountPath: "/var/run/secrets/workload-spiffe-uds"},
		{Name: "credential-socket", MountPath: "/var/run/secrets/credential-uds"},
		{Name: "workload-certs", MountPath: "/var/run/secrets/workload-spiffe-credentials"},
		{Name: "istio-envoy", MountPath: "/etc/istio/proxy"},
		{Name: "istio-data", MountPath: "/var/lib/istio/data"},
		{Name: "podinfo", MountPath: "/etc/istio/pod"},
		{Name: "istio-token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
		{Name: "istiod-ca-cert", MountPath: RootCertDir, ReadOnly: true},
	}
	emptyDir := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	volumes := []corev1.Volume{
		emptyDir("workload-socket"),
		emptyDir("credential-socket"),
		emptyDir("workload-certs"),
		emptyDir("istio-envoy"),
		emptyDir("istio-data"),
		{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"}},
		}}}},
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: tokenAudience, ExpirationSeconds: new(int64(tokenLifetime)), Path: "istio-token"},
		}}}}},
		{Name: "istiod-ca-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
		}}},
	}
	return mounts, volumes
}
