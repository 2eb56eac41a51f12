package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// prober is an entry of ISTIO_KUBE_APP_PROBERS: the app's own check,
// which the agent runs.
type prober struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	GRPC           *corev1.GRPCAction      `json:"grpc,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes points the probes of the pod's containers (and its init
// containers) at the agent, as istiod does: each HTTP, TCP or gRPC probe
// becomes an HTTP GET of /app-health/CONTAINER/readyz|livez|startupz on
// 15020, and each HTTP or TCP lifecycle hook one of
// /app-lifecycle/CONTAINER/prestopz|poststartz (an HTTPS one keeps its
// host and headers but is HTTP to the agent). ISTIO_KUBE_APP_PROBERS,
// returned, maps those paths to the original checks, named ports
// resolved; "" when there is none. The pod's
// sidecar.istio.io/rewriteAppHTTPProbers=false turns it off.
func rewriteProbes(pod *corev1.Pod, statusPort int32) (string, error) {
	if strings.EqualFold(pod.Annotations[AnnotationRewrite], "false") {
		return "", nil
	}
	probers := map[string]prober{}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			rewriteContainerChecks(&cs[i], statusPort, probers)
		}
	}
	if len(probers) == 0 {
		return "", nil
	}
	b, err := json.Marshal(probers)
	if err != nil {
		return "", fmt.Errorf("encode ISTIO_KUBE_APP_PROBERS: %w", err)
	}
	return string(b), nil
}

// rewriteContainerChecks rewrites the probes and lifecycle hooks of
// container c to the agent's statusPort, recording the originals in probers.
func rewriteContainerChecks(c *corev1.Container, statusPort int32, probers map[string]prober) {
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"readyz", c.ReadinessProbe}, {"livez", c.LivenessProbe}, {"startupz", c.StartupProbe}} {
		if p.probe == nil {
			continue
		}
		h := &p.probe.ProbeHandler
		orig := prober{HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket, GRPC: h.GRPC, TimeoutSeconds: p.probe.TimeoutSeconds}
		if get := rewriteCheck(c, "/app-health/"+c.Name+"/"+p.kind, orig, statusPort, probers); get != nil {
			*h = corev1.ProbeHandler{HTTPGet: get}
		}
	}
	if c.Lifecycle == nil {
		return
	}
	for _, l := range []struct {
		kind    string
		handler *corev1.LifecycleHandler
	}{{"prestopz", c.Lifecycle.PreStop}, {"poststartz", c.Lifecycle.PostStart}} {
		if l.handler == nil {
			continue
		}
		h := l.handler
		if get := rewriteCheck(c, "/app-lifecycle/"+c.Name+"/"+l.kind, prober{HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, statusPort, probers); get != nil {
			*h = corev1.LifecycleHandler{HTTPGet: get}
		}
	}
}

// rewriteCheck records the check orig of container c (a probe or a
// lifecycle hook) in probers under path, with a named port
// resolved, and returns the HTTP GET of path on the agent's statusPort
// that replaces it (a check already on the default agent port is not
// recorded); nil for a check the agent does not run (exec, sleep), which stays.
func rewriteCheck(c *corev1.Container, path string, orig prober, statusPort int32, probers map[string]prober) *corev1.HTTPGetAction {
	var port *intstr.IntOrString
	switch {
	case orig.HTTPGet != nil:
		orig.HTTPGet = orig.HTTPGet.DeepCopy()
		port = &orig.HTTPGet.Port
	case orig.TCPSocket != nil:
		orig.TCPSocket = orig.TCPSocket.DeepCopy()
		port = &orig.TCPSocket.Port
	case orig.GRPC != nil:
		orig.GRPC = orig.GRPC.DeepCopy()
	default:
		return nil
	}
	known := true
	if port != nil && port.Type == intstr.String {
		i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal })
		if i >= 0 {
			*port = intstr.FromInt32(c.Ports[i].ContainerPort)
		}
		// As istiod: a port name that names no port of the container has
		// no check the agent could run, so none is recorded, and the
		// rewritten probe fails, as the kubelet's own would.
		known = i >= 0
	}
	if known && (port == nil || port.IntVal != agentPort) {
		probers[path] = orig
	}
	get := &corev1.HTTPGetAction{}
	if orig.HTTPGet != nil {
		get = orig.HTTPGet.DeepCopy()
	}
	get.Path, get.Port = path, intstr.FromInt32(statusPort)
	if get.Scheme == corev1.URISchemeHTTPS {
		get.Scheme = corev1.URISchemeHTTP
	}
	return get
}
