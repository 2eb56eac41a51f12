package install

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/inject"
)

// Object is one generated Kubernetes object: a typed k8s.io/api value with
// its apiVersion and kind set.
type Object interface {
	metav1.Object
	runtime.Object
}

// Generate builds the objects of a profile, in the order they are applied
// (namespace and RBAC first, workloads last). It checks the values first
// and reports every problem at once.
func Generate(p Profile, v Values) ([]Object, error) {
	if _, err := ParseProfile(string(p)); err != nil {
		return nil, err
	}
	v = v.withDefaults()
	if err := v.validate(p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", p, err)
	}
	var objs []Object
	switch p {
	case ProfilePrimary:
		objs = controlPlane(v)
	case ProfileRemote:
		objs = remote(v)
	case ProfileEastWestGateway:
		objs = gateway(v)
	}
	if v.webhookEnabled(p) {
		objs = append(objs, webhookConfiguration(p, v))
	}
	sortObjects(objs)
	return objs, nil
}

// kindOrder is the order objects are written and applied in, as Helm does:
// what others refer to comes first.
var kindOrder = map[string]int{
	"Namespace":           0,
	"ServiceAccount":      1,
	"ClusterRole":         2,
	"ClusterRoleBinding":  3,
	"Role":                4,
	"RoleBinding":         5,
	"Service":             6,
	"Endpoints":           7,
	"Deployment":          8,
	"PodDisruptionBudget": 9,
	// Last, so that the Service it calls exists first.
	"MutatingWebhookConfiguration": 10,
}

func sortObjects(objs []Object) {
	slices.SortStableFunc(objs, func(a, b Object) int {
		ka, kb := a.GetObjectKind().GroupVersionKind().Kind, b.GetObjectKind().GroupVersionKind().Kind
		return cmp.Or(
			cmp.Compare(kindOrder[ka], kindOrder[kb]),
			cmp.Compare(a.GetNamespace(), b.GetNamespace()),
			cmp.Compare(a.GetName(), b.GetName()),
		)
	})
}

// revisioned appends "-REVISION" to a name when there is a revision.
func (v Values) revisioned(name string) string {
	if v.Revision == "" {
		return name
	}
	return name + "-" + v.Revision
}

// revisionLabel is the istio.io/rev value of the control plane.
func (v Values) revisionLabel() string {
	return cmp.Or(v.Revision, "default")
}

// controlPlaneService is the DNS name of the control plane's Service.
func (v Values) controlPlaneService() string {
	return v.revisioned(ControlPlaneName) + "." + v.Namespace + ".svc"
}

// customHosts are the extra DNS names of the control plane's serving
// certificate: the revisioned Service name first (the name istio's
// revisioned injection makes proxies dial, which the home lab found missing
// from istiod's certificate), then the configured ones, without repeats.
func (v Values) customHosts() []string {
	var hosts []string
	if v.Revision != "" {
		hosts = append(hosts, v.controlPlaneService())
	}
	for _, h := range v.CustomHosts {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func namespace(v Values) *corev1.Namespace {
	ns := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: v.Namespace},
	}
	if v.Network != "" {
		ns.Labels = map[string]string{LabelNetwork: v.Network}
	}
	if v.MeshID != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[LabelMeshID] = v.MeshID
	}
	return ns
}

func serviceAccount(name, ns string, labels map[string]string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
	}
}

func clusterRoleAndBinding(name string, labels map[string]string, rules []rbacv1.PolicyRule, sa, ns string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	role := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Rules:      rules,
	}
	binding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}
	return role, binding
}

// readVerbs are the verbs of watching.
var readVerbs = []string{"get", "list", "watch"}

// ReaderRules are the permissions of a remote cluster's account that the
// primary's remote secret authenticates as: read what the model is built
// from, review the tokens of the cluster's workloads for the CA, and keep
// the mesh root in the ConfigMap istio-ca-root-cert of every namespace
// (configmaps cannot be limited to one name for create, as in Istio). They
// equal those `causeway remote-secret create` grants, in the same order,
// so that either may make them first.
func ReaderRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "services", "pods", "nodes"}, Verbs: readVerbs},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: readVerbs},
		{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: readVerbs},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
	}
}

// controlPlaneClusterRules: what the control plane does in every
// namespace of its own cluster, the same as in a remote one, plus reading
// Istio's Gateways and VirtualServices, which configure Istio's Envoy
// east-west gateways and are read from the config cluster only
// (docs/eastwest-envoy.md).
func controlPlaneClusterRules() []rbacv1.PolicyRule {
	return append(ReaderRules(),
		rbacv1.PolicyRule{APIGroups: []string{"networking.istio.io"}, Resources: []string{"gateways", "virtualservices"}, Verbs: readVerbs})
}

// CASecretName is the Secret the control plane keeps its self-signed CA in
// when no cacerts Secret is plugged in (Istio's name).
const CASecretName = "istio-ca-secret"

// controlPlaneNamespaceRules: Secrets only in the system namespace: remote
// secrets and cacerts are read, the self-signed CA is written once; the
// replicas elect their leader with a Lease there.
func controlPlaneNamespaceRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: readVerbs},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"update"}, ResourceNames: []string{CASecretName}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	}
}

func controlPlane(v Values) []Object {
	name := v.revisioned(ControlPlaneName)
	selector := map[string]string{"app": ControlPlaneName, LabelRevision: v.revisionLabel()}
	labels := map[string]string{"app": ControlPlaneName, LabelRevision: v.revisionLabel(), LabelIstio: "pilot"}
	rbacName := "causeway-" + name + "-" + v.Namespace

	cr, crb := clusterRoleAndBinding(rbacName, labels, controlPlaneClusterRules(), name, v.Namespace)
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: "causeway-" + name, Namespace: v.Namespace, Labels: labels},
		Rules:      controlPlaneNamespaceRules(),
	}
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: v.Namespace, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: v.Namespace}},
	}

	objs := []Object{
		namespace(v),
		serviceAccount(name, v.Namespace, labels),
		cr, crb, role, rb,
		controlPlaneService(ControlPlaneName, v.Namespace, labels, selector),
		controlPlaneDeployment(v, name, labels, selector),
		podDisruptionBudget(name, v.Namespace, labels, selector),
	}
	if v.Revision != "" {
		objs = append(objs, controlPlaneService(name, v.Namespace, labels, selector))
	}
	return objs
}

func controlPlaneService(name, ns string, labels, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports: []corev1.ServicePort{
				tcpServicePort("grpc-xds", PortXDS, PortXDS),
				tcpServicePort("https-dns", PortXDSTLS, PortXDSTLS),
				tcpServicePort("https-webhook", PortWebhookService, PortWebhook),
				tcpServicePort("http-monitoring", PortDebug, PortDebug),
			},
		},
	}
}

func tcpServicePort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
}

func containerPort(name string, port int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: port, Protocol: corev1.ProtocolTCP}
}

// defaultControlPlaneResources: requests sized for a small mesh (the home lab
// ran istiod with 50m and 300Mi), a memory limit and no CPU limit (CPU
// limits throttle the push path under load).
func defaultControlPlaneResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
}

func defaultGatewayResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
	}
}

func controlPlaneDeployment(v Values, name string, labels, selector map[string]string) *appsv1.Deployment {
	args := []string{
		"serve",
		"--cluster-id=" + v.ClusterID,
		"--system-namespace=" + v.Namespace,
		"--trust-domain=" + v.TrustDomain,
		fmt.Sprintf("--debug-addr=:%d", PortDebug),
		fmt.Sprintf("--xds-addr=:%d", PortXDS),
		fmt.Sprintf("--xds-tls-addr=:%d", PortXDSTLS),
		fmt.Sprintf("--webhook-addr=:%d", PortWebhook),
	}
	for _, h := range v.customHosts() {
		args = append(args, "--custom-host="+h)
	}
	c := corev1.Container{
		Name:            "discovery",
		Image:           v.Image,
		ImagePullPolicy: v.ImagePullPolicy,
		Args:            args,
		// The pod's name is the replica's identity in the leader Lease.
		Env: []corev1.EnvVar{inject.FieldEnv("POD_NAME", "metadata.name")},
		Ports: []corev1.ContainerPort{
			containerPort("grpc-xds", PortXDS),
			containerPort("https-dns", PortXDSTLS),
			containerPort("https-webhook", PortWebhook),
			containerPort("http-monitoring", PortDebug),
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromInt32(PortDebug), Scheme: corev1.URISchemeHTTP,
			}},
			InitialDelaySeconds: 1, PeriodSeconds: 3, TimeoutSeconds: 5, FailureThreshold: 3, SuccessThreshold: 1,
		},
		// Liveness only asks whether the process serves at all: /ready
		// is false while clusters sync, which must not restart it.
		LivenessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{
				Port: intstr.FromInt32(PortDebug),
			}},
			InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 3, SuccessThreshold: 1,
		},
	}
	annotations := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   fmt.Sprint(PortDebug),
		"prometheus.io/path":   "/metrics",
	}
	return deployment(name, v.Namespace, labels, selector, annotations, v.ControlPlane, defaultControlPlaneResources(), name, c)
}

// Non-root identity of the pods: distroless's nonroot user.
const nonRootID = 65532

// deployment wraps one container in a hardened Deployment: non-root,
// read-only root filesystem with a writable /tmp, no capabilities, the
// runtime's seccomp profile, one pod per node preferred, GOMEMLIMIT from
// the memory limit. volumes are added after /tmp's (c mounts them).
func deployment(name, ns string, labels, selector, annotations map[string]string, cv ComponentValues, defResources corev1.ResourceRequirements, sa string, c corev1.Container, volumes ...corev1.Volume) *appsv1.Deployment {
	res := defResources
	if cv.Resources != nil {
		res = *cv.Resources
	}
	c.Resources = res
	if _, ok := res.Limits[corev1.ResourceMemory]; ok {
		c.Env = append(c.Env, corev1.EnvVar{
			Name: "GOMEMLIMIT",
			ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				ContainerName: c.Name, Resource: "limits.memory", Divisor: resource.MustParse("1"),
			}},
		})
	}
	c.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		RunAsNonRoot:             new(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	c.VolumeMounts = append([]corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}, c.VolumeMounts...)
	c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError

	podLabels := map[string]string{"sidecar.istio.io/inject": "false"}
	maps.Copy(podLabels, labels)
	replicas := cv.Replicas
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       new(intstr.FromInt32(1)),
					MaxUnavailable: new(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName: sa,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   new(true),
						RunAsUser:      new(int64(nonRootID)),
						RunAsGroup:     new(int64(nonRootID)),
						FSGroup:        new(int64(nonRootID)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers:   []corev1.Container{c},
					Volumes:      append([]corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}, volumes...),
					NodeSelector: cv.NodeSelector,
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: selector},
								TopologyKey:   corev1.LabelHostname,
							},
						}},
					}},
				},
			},
		},
	}
}

// podDisruptionBudget lets one pod go at a time. maxUnavailable (not
// Istio's minAvailable: 1) so that a single replica does not block node
// drains forever; unhealthy pods may always be evicted.
func podDisruptionBudget(name, ns string, labels, selector map[string]string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: policyv1.SchemeGroupVersion.String(), Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable:             new(intstr.FromInt32(1)),
			Selector:                   &metav1.LabelSelector{MatchLabels: selector},
			UnhealthyPodEvictionPolicy: new(policyv1.AlwaysAllow),
		},
	}
}

// remote: the remote cluster's half of primary-remote. Its proxies dial
// istiod-remote.NAMESPACE.svc:15012, a headless Service whose only
// address is the primary's east-west gateway (the diff the home lab shows
// between istioctl's primary and remote manifests); a DNS name instead of
// an IP becomes an ExternalName Service. The account is the one
// the primary's remote secret uses.
func remote(v Values) []Object {
	host, isIP, _ := parsePilotAddress(v.RemotePilotAddress) // validated
	port := tcpServicePort("tcp-istiod", PortXDSTLS, PortXDSTLS)
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: RemoteServiceName, Namespace: v.Namespace},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{port}},
	}
	objs := []Object{namespace(v), svc}
	if isIP {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		objs = append(objs, &corev1.Endpoints{ //nolint:staticcheck // the home lab's (and istioctl's) object; the EndpointSlice mirroring controller makes the slice
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
			ObjectMeta: metav1.ObjectMeta{Name: RemoteServiceName, Namespace: v.Namespace},
			Subsets: []corev1.EndpointSubset{{ //nolint:staticcheck // see above
				Addresses: []corev1.EndpointAddress{{IP: host}},
				Ports:     []corev1.EndpointPort{{Name: port.Name, Port: port.Port, Protocol: port.Protocol}},
			}},
		})
	} else {
		svc.Spec.Type = corev1.ServiceTypeExternalName
		svc.Spec.ExternalName = host
	}
	labels := map[string]string{"app": ReaderName}
	name := ReaderName + "-" + v.Namespace
	cr, crb := clusterRoleAndBinding(name, labels, ReaderRules(), ReaderName, v.Namespace)
	return append(objs, serviceAccount(ReaderName, v.Namespace, labels), cr, crb)
}

// GatewayServiceAccount is the east-west gateway's ServiceAccount (Istio's
// name).
const GatewayServiceAccount = GatewayName + "-service-account"

// The mesh root a gateway that dials the control plane's secure port
// verifies it with: the ConfigMap the control plane publishes in every
// namespace, mounted where Istio's proxies find it.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
	RootCertDir       = "/var/run/secrets/istio"
)

// gatewayXDSAddress is where the gateway gets its configuration: the
// value's own address, else istiod-remote's secure port on a remote
// cluster, else the control plane's Service.
func gatewayXDSAddress(v Values) string {
	switch {
	case v.Gateway.XDSAddress != "":
		return v.Gateway.XDSAddress
	case v.RemotePilotAddress != "":
		return fmt.Sprintf("%s.%s.svc:%d", RemoteServiceName, v.Namespace, PortXDSTLS)
	default:
		return fmt.Sprintf("%s:%d", v.controlPlaneService(), PortXDS)
	}
}

// gatewayService is the east-west gateway's Service and its container's
// ports.
func gatewayService(v Values, labels, selector map[string]string) (*corev1.Service, []corev1.ContainerPort) {
	gw := v.Gateway
	svcLabels := maps.Clone(labels)
	if gw.Port != PortGatewayTLS {
		svcLabels[LabelGatewayPort] = fmt.Sprint(gw.Port)
	}
	tls := tcpServicePort("tls", gw.Port, PortGatewayTLS)
	tls.NodePort = gw.NodePort
	// The Service publishes only the traffic ports: the admin port
	// (probes, /metrics, /config on loopback) stays on the pod, so that a
	// load balancer never exposes what the gateway knows of the mesh.
	// Istio's east-west Service publishes status-port 15021; a load
	// balancer health check reaches the traffic port, or the node's
	// health-check port with externalTrafficPolicy Local.
	ports := []corev1.ServicePort{tls}
	cports := []corev1.ContainerPort{containerPort("status-port", PortGatewayAdmin), containerPort("tls", PortGatewayTLS)}
	if gw.ExposeControlPlane {
		ports = append(ports, tcpServicePort("tls-istiod", PortXDSTLS, PortXDSTLS))
		cports = append(cports, containerPort("tls-istiod", PortXDSTLS))
		ports = append(ports, tcpServicePort("tls-webhook", PortWebhook, PortWebhook))
		cports = append(cports, containerPort("tls-webhook", PortWebhook))
	}
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: GatewayName, Namespace: v.Namespace, Labels: svcLabels, Annotations: gw.ServiceAnnotations},
		Spec: corev1.ServiceSpec{
			Type:     gw.ServiceType,
			Selector: selector,
			Ports:    ports,
		},
	}
	if gw.ServiceType == corev1.ServiceTypeNodePort {
		// Causeway hands out only the nodes that run a ready gateway pod;
		// Local keeps traffic on them (and the client's address).
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	return svc, cports
}

func gateway(v Values) []Object {
	selector := map[string]string{"app": GatewayName, LabelIstio: GatewayLabelValue, LabelNetwork: v.Network}
	labels := map[string]string{"app": GatewayName, LabelIstio: GatewayLabelValue, LabelNetwork: v.Network}
	if v.Revision != "" {
		labels[LabelRevision] = v.Revision
	}
	gw := v.Gateway
	xds := gatewayXDSAddress(v)

	svc, cports := gatewayService(v, labels, selector)

	if gw.ImageKind == GatewayImageIstio {
		return []Object{
			namespace(v),
			serviceAccount(GatewayServiceAccount, v.Namespace, labels),
			svc,
			istioGatewayDeployment(v, labels, selector, cports),
			podDisruptionBudget(GatewayName, v.Namespace, labels, selector),
		}
	}

	args := []string{
		"gateway",
		"--xds=" + xds,
		"--network=" + v.Network,
		"--cluster-id=" + v.ClusterID,
		fmt.Sprintf("--listen=0.0.0.0:%d", PortGatewayTLS),
		fmt.Sprintf("--admin=:%d", PortGatewayAdmin),
	}
	if gw.ExposeControlPlane {
		args = append(args, fmt.Sprintf("--expose-control-plane=0.0.0.0:%d", PortXDSTLS),
			fmt.Sprintf("--expose-webhook=0.0.0.0:%d", PortWebhook))
	}
	// The control plane's secure port speaks TLS only: the gateway
	// verifies its certificate against the mesh root, which the control
	// plane publishes in every namespace of every cluster it knows (a
	// remote cluster's once the primary holds its remote secret; until
	// then the pod waits for the ConfigMap).
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if _, port, _ := net.SplitHostPort(xds); port == fmt.Sprint(PortXDSTLS) {
		args = append(args, "--xds-root-cert="+RootCertDir+"/"+RootCertKey)
		mounts = append(mounts, corev1.VolumeMount{Name: "istio-ca-root-cert", MountPath: RootCertDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "istio-ca-root-cert", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap}},
		}})
		// The secure port authenticates every ADS stream: the gateway
		// sends its service-account token.
		vol, mount := tokenVolume()
		args = append(args, "--xds-token="+TokenDir+"/"+TokenFile)
		mounts, volumes = append(mounts, mount), append(volumes, vol)
	}
	c := corev1.Container{
		Name:            "gateway",
		Image:           v.Image,
		ImagePullPolicy: v.ImagePullPolicy,
		Args:            args,
		VolumeMounts:    mounts,
		Ports:           cports,
		// The node id the gateway announces comes from these (Istio's
		// names).
		Env: []corev1.EnvVar{
			inject.FieldEnv("INSTANCE_IP", "status.podIP"),
			inject.FieldEnv("POD_NAME", "metadata.name"),
			inject.FieldEnv("POD_NAMESPACE", "metadata.namespace"),
		},
		// Ready once its first full configuration is applied.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz/ready", Port: intstr.FromInt32(PortGatewayAdmin), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds: 5, TimeoutSeconds: 3, FailureThreshold: 3, SuccessThreshold: 1,
		},
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(PortGatewayAdmin)}},
			InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: 3, SuccessThreshold: 1,
		},
	}
	return []Object{
		namespace(v),
		serviceAccount(GatewayServiceAccount, v.Namespace, labels),
		svc,
		deployment(GatewayName, v.Namespace, labels, selector, nil, gw.ComponentValues, defaultGatewayResources(), GatewayServiceAccount, c, volumes...),
		podDisruptionBudget(GatewayName, v.Namespace, labels, selector),
	}
}
