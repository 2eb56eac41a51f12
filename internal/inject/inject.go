package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Istio's names: labels, annotations, containers and ports of the sidecar.
const (
	LabelInjection     = "istio-injection"
	LabelRevision      = "istio.io/rev"
	LabelInject        = "sidecar.istio.io/inject"
	AnnotationInject   = "sidecar.istio.io/inject"
	AnnotationStatus   = "sidecar.istio.io/status"
	AnnotationProxyCPU = "sidecar.istio.io/proxyCPU"
	AnnotationProxyMem = "sidecar.istio.io/proxyMemory"
	AnnotationCPULimit = "sidecar.istio.io/proxyCPULimit"
	AnnotationMemLimit = "sidecar.istio.io/proxyMemoryLimit"
	AnnotationRewrite  = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnotationConfig   = "proxy.istio.io/config"
	AnnotationNative   = "sidecar.istio.io/nativeSidecar"

	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelWorkloadName      = "service.istio.io/workload-name"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"

	ProxyName = "istio-proxy"
	InitName  = "istio-init"
	// ValidationName is the init container of CNI mode: it checks that
	// Istio's CNI plugin set up the capture, and changes nothing.
	ValidationName = "istio-validation"

	// ProxyUID is the uid (and gid) the proxy runs as; iptables leaves
	// its traffic alone.
	ProxyUID = 1337
	// agentPort is pilot-agent's status port: merged metrics and app
	// probes.
	agentPort = 15020
	// readyPort serves /healthz/ready.
	readyPort = 15021
	// promPort is Envoy's Prometheus port.
	promPort = 15090
)

// DefaultProxyImage is the proxy image injected by default: Istio's
// proxyv2 of the Istio version whose API Causeway is built against.
const DefaultProxyImage = "docker.io/istio/proxyv2:1.31.4"

// maxConfigAnnotation bounds the proxy.istio.io/config annotation read.
const maxConfigAnnotation = 64 << 10

// Config configures an [Injector]. Zero values take the defaults named.
type Config struct {
	// ProxyImage is the image of istio-init and istio-proxy. Default
	// DefaultProxyImage.
	ProxyImage string
	// CNI leaves istio-init out: Istio's CNI plugin sets up the capture,
	// from the capture annotations the injector writes on the pod, and
	// the istio-validation init container, first, checks it did.
	CNI bool
	// NativeSidecars injects istio-proxy as a Kubernetes native sidecar:
	// an init container with restartPolicy Always, after istio-init and
	// before the pod's own init containers, drained by a preStop hook.
	// It is the decision when NativeAuto is nil.
	NativeSidecars bool
	// NativeAuto, when set, decides instead of NativeSidecars, as istiod's
	// default ENABLE_NATIVE_SIDECARS=auto: whether the kubelets of cluster
	// c (or of node, the pod's spec.nodeName, when the cluster has it)
	// run native sidecars. The server passes the model's decision (see
	// [model.Store.NativeSidecars]).
	NativeAuto func(c model.ClusterID, node string) bool
	// NativeSidecarsAuto asks the server that builds the injector for
	// NativeAuto from its model (serve --native-sidecars=auto). The
	// injector does not read it.
	NativeSidecarsAuto bool
	// SystemNamespace is the control plane's namespace. Default
	// istio-system.
	SystemNamespace string
	// Revision is the control plane revision; empty is "default".
	Revision string
	// ClusterID is the cluster of requests on /inject (the config
	// cluster); /inject/cluster/C/net/N names its own.
	ClusterID model.ClusterID
	// TrustDomain is TRUST_DOMAIN. Default cluster.local.
	TrustDomain string
	// MeshID is ISTIO_META_MESH_ID. Default the trust domain, as Istio's.
	MeshID string
	// Domain is the cluster DNS domain of the proxy's --domain. Default
	// cluster.local.
	Domain string
	// DiscoveryAddress is PROXY_CONFIG's discoveryAddress and CA_ADDR.
	// Default istiod[-REV].SYSTEM-NAMESPACE.svc:15012.
	DiscoveryAddress string
	// Network returns the model's network for a pod of cluster c whose
	// topology.istio.io/network label is label (empty: none). Nil: the
	// label alone.
	Network func(c model.ClusterID, label model.NetworkID) model.NetworkID
}

// Injector builds sidecar patches. Create it with [New]; it is safe for
// concurrent use.
type Injector struct {
	cfg Config
}

// New fills cfg's defaults.
func New(cfg Config) *Injector {
	if cfg.ProxyImage == "" {
		cfg.ProxyImage = DefaultProxyImage
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "istio-system"
	}
	if cfg.Revision == "" {
		cfg.Revision = "default"
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = model.DefaultDomain
	}
	if cfg.MeshID == "" {
		cfg.MeshID = cfg.TrustDomain
	}
	if cfg.Domain == "" {
		cfg.Domain = model.DefaultDomain
	}
	if cfg.DiscoveryAddress == "" {
		svc := "istiod"
		if cfg.Revision != "default" {
			svc += "-" + cfg.Revision
		}
		cfg.DiscoveryAddress = svc + "." + cfg.SystemNamespace + ".svc:15012"
	}
	return &Injector{cfg: cfg}
}

// Target says where a pod runs: its namespace (a pod being created may
// not carry it), cluster and, from /inject/cluster/C/net/N, the network
// the remote cluster's webhook URL names.
type Target struct {
	Namespace string
	Cluster   model.ClusterID
	Network   model.NetworkID
}

// Skip is why a pod is left alone; Inject returns it as an error.
type Skip struct{ Reason string }

func (s *Skip) Error() string { return "not injected: " + s.Reason }

// ErrSkip matches every *Skip with errors.Is.
var ErrSkip = errors.New("not injected")

// Is makes errors.Is(err, ErrSkip) true for a Skip.
func (s *Skip) Is(target error) bool { return target == ErrSkip }

// ignoredNamespaces are never injected, as in istiod: Kubernetes' own and
// kind's local-path-storage.
var ignoredNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true}

// skipReason says why pod is not injected, "" if it is: pods of the host
// network, pods already injected, pods that opt out, and the namespaces
// Istio never injects. Namespace and revision selection is the webhook
// configuration's (see [WebhookConfiguration]).
func skipReason(pod *corev1.Pod, ns string) string {
	switch {
	case pod.Spec.HostNetwork:
		return "the pod uses the host network"
	case pod.Annotations[AnnotationStatus] != "":
		return "the pod is already injected (" + AnnotationStatus + ")"
	case ignoredNamespaces[ns]:
		return "namespace " + ns + " is never injected"
	}
	// The label wins over the annotation; only "false" opts out (istiod
	// treats other values as unset).
	v, ok := pod.Labels[LabelInject]
	if !ok {
		v = pod.Annotations[AnnotationInject]
	}
	if v == "false" {
		return "the pod opts out (" + LabelInject + "=false)"
	}
	// A pod that lost its status annotation still has the capture's
	// init container: injected. A container named istio-proxy alone is
	// the pod's override of the injected proxy (see takeOverride).
	for i := range pod.Spec.InitContainers {
		if n := pod.Spec.InitContainers[i].Name; n == InitName || n == ValidationName {
			return "the pod already has the init container " + n
		}
	}
	return ""
}

// Inject returns the pod with the sidecar added (pod is not changed), or
// a *Skip error when the pod is left alone, or another error when the pod
// cannot be injected (a bad annotation).
//
// The steps: read the pod's options, build the proxy container (the pod's
// own istio-proxy overriding it), addCapture (the init container that
// captures traffic), placeProxy (native sidecar, held first, or last),
// then the volumes, labelPod and annotatePod.
func (in *Injector) Inject(pod *corev1.Pod, t Target) (*corev1.Pod, error) {
	if t.Namespace == "" {
		t.Namespace = pod.Namespace
	}
	if t.Cluster == "" {
		t.Cluster = in.cfg.ClusterID
	}
	if r := skipReason(pod, t.Namespace); r != "" {
		return nil, &Skip{Reason: r}
	}
	res, err := proxyResources(pod.Annotations)
	if err != nil {
		return nil, err
	}
	proxyCfg, pcMap, err := proxyConfig(pod.Annotations[AnnotationConfig], in.cfg.DiscoveryAddress)
	if err != nil {
		return nil, err
	}
	nativeDef := in.cfg.NativeSidecars
	if in.cfg.NativeAuto != nil {
		nativeDef = in.cfg.NativeAuto(t.Cluster, pod.Spec.NodeName)
	}
	opts, err := in.options(pod.Annotations, pcMap, nativeDef)
	if err != nil {
		return nil, err
	}
	out := pod.DeepCopy()
	out.Namespace = t.Namespace
	network := in.networkOf(pod, t)
	wl := workloadOf(out)
	appNames, ports := appContainers(out)
	user := takeOverride(out)
	if user != nil {
		user = overlayOf(user)
	}
	probers, err := rewriteProbes(out, opts.statusPort)
	if err != nil {
		return nil, err
	}

	proxy := in.proxyContainer(t, network, wl, appNames, ports, probers, res, proxyCfg, &opts)
	if user != nil {
		if err := overrideProxy(&proxy, user); err != nil {
			return nil, err
		}
	}
	status := sidecarStatus{Revision: in.cfg.Revision}
	first := in.addCapture(out, res, &opts, &status)
	first = placeProxy(out, proxy, &opts, &status, first)
	if len(first) > 0 {
		out.Spec.InitContainers = append(first, out.Spec.InitContainers...)
	}
	if user != nil {
		adjustCaptureUser(out, findProxy(out), user, opts.mode)
	}
	vols := sidecarVolumes()
	for i := range vols {
		status.Volumes = append(status.Volumes, vols[i].Name)
	}
	out.Spec.Volumes = append(out.Spec.Volumes, vols...)
	labelPod(out, wl, network)
	if err := in.annotatePod(pod, out, user, &status, &opts, appNames); err != nil {
		return nil, err
	}
	return out, nil
}

// networkOf is the network the pod is injected for: its label, as the
// configured Network func decides for the cluster, else the target's.
func (in *Injector) networkOf(pod *corev1.Pod, t Target) model.NetworkID {
	network := model.NetworkID(pod.Labels[model.LabelNetwork])
	if in.cfg.Network != nil {
		network = in.cfg.Network(t.Cluster, network)
	}
	if network == "" {
		network = t.Network
	}
	return network
}

// appContainers is the names of the pod's app containers and the ports of
// all its containers: as Istio's template, every container's ports, the
// pod's own istio-proxy's too, but only the others are app containers.
func appContainers(pod *corev1.Pod) (appNames []string, ports []corev1.ContainerPort) {
	appNames = make([]string, 0, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name != ProxyName {
			appNames = append(appNames, pod.Spec.Containers[i].Name)
		}
		ports = append(ports, pod.Spec.Containers[i].Ports...)
	}
	return appNames, ports
}

// addCapture adds the container that captures the pod's traffic, unless
// the interception mode is NONE: with CNI the validation container, first,
// so that no container of the pod starts uncaptured; else the init
// container, first for a native sidecar, otherwise last, so that the pod's
// own init containers run uncaptured. It returns the init containers to
// put before the pod's own.
func (in *Injector) addCapture(out *corev1.Pod, res corev1.ResourceRequirements, opts *podOptions, status *sidecarStatus) []corev1.Container {
	var first []corev1.Container
	switch {
	case opts.mode == ModeNone:
	case in.cfg.CNI:
		status.InitContainers = append(status.InitContainers, ValidationName)
		first = append(first, in.validationContainer(res, opts))
	default:
		status.InitContainers = append(status.InitContainers, InitName)
		if opts.native {
			first = append(first, in.initContainer(res, opts))
		} else {
			out.Spec.InitContainers = append(out.Spec.InitContainers, in.initContainer(res, opts))
		}
	}
	return first
}

// placeProxy puts the proxy in the pod: a native sidecar (an init
// container that restarts always and drains on stop) after first; with
// hold, the first container, the app's containers starting once the
// agent's wait returns (the proxy is ready); else the last container. It
// returns first.
func placeProxy(out *corev1.Pod, proxy corev1.Container, opts *podOptions, status *sidecarStatus, first []corev1.Container) []corev1.Container {
	switch {
	case opts.native:
		proxy.RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
		proxy.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"pilot-agent", "request", fmt.Sprintf("--debug-port=%d", opts.statusPort), "POST", "drain"}}}}
		first = append(first, proxy)
		status.InitContainers = append(status.InitContainers, ProxyName)
	case opts.hold:
		proxy.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"pilot-agent", "wait"}}}}
		out.Spec.Containers = append([]corev1.Container{proxy}, out.Spec.Containers...)
		status.Containers = []string{ProxyName}
	default:
		out.Spec.Containers = append(out.Spec.Containers, proxy)
		status.Containers = []string{ProxyName}
	}
	return first
}

// labelPod sets the labels of an injected pod: its TLS mode, the network it
// was injected for, and its canonical name and revision unless it has
// them.
func labelPod(out *corev1.Pod, wl workload, network model.NetworkID) {
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	setDefault(out.Labels, LabelTLSMode, "istio")
	if network != "" {
		// As istiod: the pod carries the network it was injected for, so
		// that its endpoints are placed in the network its proxy announces.
		out.Labels[model.LabelNetwork] = string(network)
	}
	if _, ok := out.Labels[LabelCanonicalName]; !ok {
		name := firstOf(out.Labels, wl.name, "app.kubernetes.io/name", "app")
		if len(name) > 63 {
			name = name[:63]
		}
		out.Labels[LabelCanonicalName] = strings.Trim(name, "-_.")
	}
	if _, ok := out.Labels[LabelCanonicalRevision]; !ok {
		out.Labels[LabelCanonicalRevision] = firstOf(out.Labels, "latest", "app.kubernetes.io/version", "version")
	}
}

// annotatePod sets the annotations of an injected pod: CNI's, the pod's
// proxy override, the sidecar status, the revision, the default
// container, and the Prometheus merge (which also sets the proxy's env).
func (in *Injector) annotatePod(pod, out *corev1.Pod, user *corev1.Container, status *sidecarStatus, opts *podOptions, appNames []string) error {
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	if in.cfg.CNI {
		maps.Copy(out.Annotations, cniAnnotations(pod.Annotations, opts.mode, opts.statusPort))
	}
	if user != nil {
		v, err := overrideAnnotation(user, opts.native)
		if err != nil {
			return err
		}
		out.Annotations[AnnotationProxyOverrides] = v
	}
	st, err := json.Marshal(status)
	if err != nil {
		return fmt.Errorf("encode %s: %w", AnnotationStatus, err)
	}
	out.Annotations[AnnotationStatus] = string(st)
	out.Annotations[LabelRevision] = in.cfg.Revision
	if len(appNames) > 0 {
		setDefault(out.Annotations, "kubectl.kubernetes.io/default-container", appNames[0])
		setDefault(out.Annotations, "kubectl.kubernetes.io/default-logs-container", appNames[0])
	}
	if env, ok := prometheusMerge(out.Annotations); ok {
		proxy := findProxy(out)
		proxy.Env = append(proxy.Env, env...)
	}
	return nil
}

// sidecarStatus is the sidecar.istio.io/status annotation: what was added,
// so that tools can find (and take out) the sidecar.
type sidecarStatus struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// firstOf returns the first non-empty label of keys, else def.
func firstOf(labels map[string]string, def string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return def
}

// proxyResources returns the resources of istio-proxy (and istio-init),
// as Istio's template: when any sidecar.istio.io/proxy* annotation is set,
// exactly what the annotations give (a request without a limit has none);
// else the defaults, requests 100m/128Mi and limits 2/1Gi.
func proxyResources(ann map[string]string) (corev1.ResourceRequirements, error) {
	annotations := []struct {
		key  string
		name corev1.ResourceName
		req  bool
	}{
		{AnnotationProxyCPU, corev1.ResourceCPU, true},
		{AnnotationProxyMem, corev1.ResourceMemory, true},
		{AnnotationCPULimit, corev1.ResourceCPU, false},
		{AnnotationMemLimit, corev1.ResourceMemory, false},
	}
	var r corev1.ResourceRequirements
	for _, a := range annotations {
		v, ok := ann[a.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return r, fmt.Errorf("annotation %s=%q: %w: give a quantity such as 200m or 256Mi", a.key, v, err)
		}
		list := &r.Limits
		if a.req {
			list = &r.Requests
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[a.name] = q
	}
	if r.Requests != nil || r.Limits != nil {
		return r, nil
	}
	return defaultResources(), nil
}

// defaultResources are the sidecar's resources of Istio's chart.
func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
}

// agentDiscoveryAddress is the discoveryAddress pilot-agent uses when
// PROXY_CONFIG gives none (Istio's default ProxyConfig).
const agentDiscoveryAddress = "istiod.istio-system.svc:15012"

// proxyConfig returns PROXY_CONFIG (JSON): the pod's proxy.istio.io/config
// (a ProxyConfig in YAML or JSON), with discoveryAddress set to discovery
// unless the annotation sets it. As istiod does, discoveryAddress is left
// out when it is pilot-agent's own default. It also returns the decoded
// config.
func proxyConfig(annotation, discovery string) (string, map[string]any, error) {
	cfg := map[string]any{}
	if annotation != "" {
		if len(annotation) > maxConfigAnnotation {
			return "", nil, fmt.Errorf("annotation %s is %d bytes, over the %d this injector reads", AnnotationConfig, len(annotation), maxConfigAnnotation)
		}
		if err := yamlToMap(annotation, cfg); err != nil {
			return "", nil, fmt.Errorf("annotation %s: %w: give a ProxyConfig as YAML or JSON", AnnotationConfig, err)
		}
	}
	if _, ok := cfg["discoveryAddress"]; !ok && discovery != agentDiscoveryAddress {
		cfg["discoveryAddress"] = discovery
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("encode PROXY_CONFIG: %w", err)
	}
	return string(b), cfg, nil
}

// workload is the pod's workload as Istio names it.
type workload struct {
	name  string
	owner string // kubernetes://apis/... of the controller, else the pod
}

// workloadOf derives the workload from the controller reference: a
// ReplicaSet named DEPLOYMENT-HASH (the pod-template-hash label) is its
// Deployment, a Job named CRONJOB-N with a numeric suffix its CronJob is
// not guessed; a pod without controller is its own workload.
func workloadOf(pod *corev1.Pod) workload {
	name := pod.Name
	if name == "" {
		name = strings.TrimSuffix(pod.GenerateName, "-")
	}
	owner := "kubernetes://apis/v1/namespaces/" + pod.Namespace + "/pods/" + name
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		kind, apiVersion, oname := ref.Kind, ref.APIVersion, ref.Name
		if kind == "ReplicaSet" && apiVersion == "apps/v1" {
			if h := pod.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(oname, "-"+h); ok {
					kind, oname = "Deployment", d
				}
			}
		}
		owner = "kubernetes://apis/" + apiVersion + "/namespaces/" + pod.Namespace + "/" + strings.ToLower(kind) + "s/" + oname
		name = oname
		break
	}
	if n := pod.Labels[LabelWorkloadName]; n != "" {
		name = n
	}
	return workload{name: name, owner: owner}
}

// initContainer is istio-init: the iptables capture of the pod's
// interception mode (outbound to 15001, inbound to 15006, uid 1337
// exempt, the agent's and Envoy's own ports excluded from inbound capture,
// and what the traffic annotations say).
func (in *Injector) initContainer(res corev1.ResourceRequirements, o *podOptions) corev1.Container {
	args := []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", fmt.Sprint(ProxyUID), "-m", o.mode}
	args = append(args, o.iptables...)
	args = append(args, "--log_output_level="+o.agentLog)
	return corev1.Container{
		Name:                     InitName,
		Image:                    o.image,
		Args:                     args,
		Resources:                res,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          pullPolicy(o.image),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false),
			Privileged:               new(false),
			ReadOnlyRootFilesystem:   new(false),
			RunAsGroup:               new(int64(0)),
			RunAsNonRoot:             new(false),
			RunAsUser:                new(int64(0)),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}

// validationContainer is istio-validation, CNI mode's first init
// container: istio-iptables with the pod's capture arguments, only
// checking (--run-validation --skip-rule-apply) that the CNI plugin set
// the capture up, as the proxy's uid without privileges.
func (in *Injector) validationContainer(res corev1.ResourceRequirements, o *podOptions) corev1.Container {
	c := in.initContainer(res, o)
	c.Name = ValidationName
	c.Args = append(c.Args, "--run-validation", "--skip-rule-apply")
	c.SecurityContext = unprivileged()
	return c
}

// pullPolicy is what the API server would default, written out so that
// the stored pod equals the patch.
func pullPolicy(image string) corev1.PullPolicy {
	if strings.HasSuffix(image, ":latest") || !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// FieldEnv is an environment variable set from a field of the pod by the
// downward API (FieldPath such as metadata.name or status.podIP).
func FieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

// resourceEnv is an env var from the proxy's own resources: without a
// container name, as in Istio's template (an env var's resource field
// refers to its own container).
func resourceEnv(name, res string, divisor string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
		Resource: res, Divisor: resource.MustParse(divisor)}}}
}

// proxyContainer is istio-proxy: pilot-agent and Envoy.
func (in *Injector) proxyContainer(t Target, network model.NetworkID, wl workload, apps []string,
	ports []corev1.ContainerPort, probers string, res corev1.ResourceRequirements, proxyCfg string, o *podOptions,
) corev1.Container {
	env := []corev1.EnvVar{
		{Name: "PILOT_CERT_PROVIDER", Value: "istiod"},
		{Name: "CA_ADDR", Value: in.cfg.DiscoveryAddress},
		FieldEnv("POD_NAME", "metadata.name"),
		FieldEnv("POD_NAMESPACE", "metadata.namespace"),
		FieldEnv("INSTANCE_IP", "status.podIP"),
		FieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		FieldEnv("HOST_IP", "status.hostIP"),
		resourceEnv("ISTIO_CPU_LIMIT", "limits.cpu", "1"),
		{Name: "PROXY_CONFIG", Value: proxyCfg},
	}
	// Always written, "[]" for a pod without ports, as Istio's template.
	if ports == nil {
		ports = []corev1.ContainerPort{}
	}
	b, _ := json.Marshal(ports) // ContainerPorts always encode
	env = append(env,
		corev1.EnvVar{Name: "ISTIO_META_POD_PORTS", Value: string(b)},
		corev1.EnvVar{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(apps, ",")},
		resourceEnv("GOMEMLIMIT", "limits.memory", "1"),
		resourceEnv("GOMAXPROCS", "limits.cpu", "1"),
		corev1.EnvVar{Name: "ISTIO_META_CLUSTER_ID", Value: string(t.Cluster)},
		FieldEnv("ISTIO_META_NODE_NAME", "spec.nodeName"),
		corev1.EnvVar{Name: "ISTIO_META_INTERCEPTION_MODE", Value: o.mode},
		corev1.EnvVar{Name: "ISTIO_META_WORKLOAD_NAME", Value: wl.name},
		corev1.EnvVar{Name: "ISTIO_META_OWNER", Value: wl.owner},
		corev1.EnvVar{Name: "ISTIO_META_MESH_ID", Value: in.cfg.MeshID},
		corev1.EnvVar{Name: "TRUST_DOMAIN", Value: in.cfg.TrustDomain},
	)
	if network != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_META_NETWORK", Value: string(network)})
	}
	if probers != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_KUBE_APP_PROBERS", Value: probers})
	}
	readiness, startup := agentProbes(o)
	return corev1.Container{
		Name:  ProxyName,
		Image: o.image,
		Args: []string{"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc." + in.cfg.Domain,
			"--proxyLogLevel=" + o.proxyLog, "--proxyComponentLogLevel=" + o.componentLog, "--log_output_level=" + o.agentLog},
		Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: promPort, Protocol: corev1.ProtocolTCP}},
		Env:   env,
		// A probe every 15 s, 4 failures; the startup probe polls every
		// second for 10 minutes.
		ReadinessProbe:           readiness,
		StartupProbe:             startup,
		Resources:                res,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy:          pullPolicy(o.image),
		SecurityContext:          proxySecurityContext(o.mode),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "workload-socket", MountPath: "/var/run/secrets/workload-spiffe-uds"},
			{Name: "credential-socket", MountPath: "/var/run/secrets/credential-uds"},
			{Name: "workload-certs", MountPath: "/var/run/secrets/workload-spiffe-credentials"},
			{Name: "istiod-ca-cert", MountPath: "/var/run/secrets/istio"},
			{Name: "istio-ca-crl", MountPath: "/var/run/secrets/istio/crl"},
			{Name: "istio-data", MountPath: "/var/lib/istio/data"},
			{Name: "istio-envoy", MountPath: "/etc/istio/proxy"},
			{Name: "istio-token", MountPath: "/var/run/secrets/tokens"},
			{Name: "istio-podinfo", MountPath: "/etc/istio/pod"},
		},
	}
}

// agentProbes are the readiness and startup probes of istio-proxy, on the
// agent's status port; none when it has no status port.
func agentProbes(o *podOptions) (readiness, startup *corev1.Probe) {
	ready := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz/ready", Port: intstr.FromInt32(readyPort), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: period, TimeoutSeconds: 3, FailureThreshold: failures, SuccessThreshold: 1,
		}
	}
	if o.statusPort == 0 {
		return nil, nil
	}
	readiness = ready(o.readinessPeriod, o.readinessFailures)
	readiness.InitialDelaySeconds = o.readinessDelay
	return readiness, ready(1, 600)
}

// unprivileged is the security context of a container that runs as uid
// and gid 1337, with a read-only root and no capability.
func unprivileged() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		Privileged:               new(false),
		ReadOnlyRootFilesystem:   new(true),
		RunAsGroup:               new(int64(ProxyUID)),
		RunAsNonRoot:             new(true),
		RunAsUser:                new(int64(ProxyUID)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// proxySecurityContext is istio-proxy's: unprivileged, except that TPROXY
// capture runs it as root with NET_ADMIN.
func proxySecurityContext(mode string) *corev1.SecurityContext {
	sc := unprivileged()
	if mode == ModeTProxy {
		// TPROXY needs the proxy to run as root with NET_ADMIN to set
		// the transparent socket option; its gid stays 1337 for capture.
		sc.RunAsNonRoot, sc.RunAsUser = new(false), new(int64(0))
		sc.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
	}
	return sc
}

// sidecarVolumes are the volumes istio-proxy mounts.
func sidecarVolumes() []corev1.Volume {
	empty := func(name string, medium corev1.StorageMedium) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}}
	}
	mode := int32(corev1.DownwardAPIVolumeSourceDefaultMode)
	return []corev1.Volume{
		empty("workload-socket", ""),
		empty("credential-socket", ""),
		empty("workload-certs", ""),
		empty("istio-envoy", corev1.StorageMediumMemory),
		empty("istio-data", ""),
		{Name: "istio-podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			DefaultMode: &mode,
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"}},
			},
		}}},
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: &mode,
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: "istio-ca", ExpirationSeconds: new(int64(43200)), Path: "istio-token"}}},
		}}},
		{Name: "istiod-ca-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"},
			DefaultMode:          &mode,
		}}},
		{Name: "istio-ca-crl", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-crl"},
			DefaultMode:          &mode,
			Optional:             new(true),
		}}},
	}
}

// findProxy returns the istio-proxy container of an injected pod.
func findProxy(pod *corev1.Pod) *corev1.Container {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == ProxyName {
				return &cs[i]
			}
		}
	}
	panic("inject: no " + ProxyName + " in an injected pod")
}

// prometheusKey folds an annotation key as Prometheus does for its
// kubernetes_sd labels (prometheus.io/port, prometheus-io/port, ... are
// one), so that every variant is found.
func prometheusKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, k)
}

// prometheusMerge points the pod's Prometheus annotations at the agent
// (port 15020, /stats/prometheus), which merges the app's metrics with
// Envoy's, as istiod does by default: the pod's own scrape, port and path
// move to ISTIO_PROMETHEUS_ANNOTATIONS (returned as env) for the agent. A
// pod whose scrape annotation is false, or that already points at the
// agent, is left alone (ok false).
func prometheusMerge(ann map[string]string) (env []corev1.EnvVar, ok bool) {
	var user struct {
		Scrape string `json:"scrape"`
		Path   string `json:"path"`
		Port   string `json:"port"`
	}
	var variants []string
	for k, v := range ann {
		switch prometheusKey(k) {
		case "prometheus_io_scrape":
			if b, err := strconv.ParseBool(v); err == nil && !b {
				return nil, false
			}
			user.Scrape = v
		case "prometheus_io_port":
			if v == strconv.Itoa(agentPort) {
				return nil, false
			}
			user.Port = v
		case "prometheus_io_path":
			user.Path = v
		default:
			continue
		}
		variants = append(variants, k)
	}
	if user.Scrape != "" || user.Path != "" || user.Port != "" {
		b, _ := json.Marshal(user) // strings always encode
		env = []corev1.EnvVar{{Name: "ISTIO_PROMETHEUS_ANNOTATIONS", Value: string(b)}}
	}
	for _, k := range variants {
		delete(ann, k)
	}
	ann["prometheus.io/port"] = strconv.Itoa(agentPort)
	ann["prometheus.io/path"] = "/stats/prometheus"
	ann["prometheus.io/scrape"] = "true"
	return env, true
}
