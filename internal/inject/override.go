package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// AnnotationProxyOverrides records the pod's own istio-proxy container, the
// overrides applied on top of the injected one, as istiod writes it.
const AnnotationProxyOverrides = "proxy.istio.io/overrides"

// autoImage is the image a pod's own istio-proxy container gives to keep
// the injected image.
const autoImage = "auto"

// takeOverride removes the pod's own istio-proxy container (from its
// containers or init containers) and returns it: Istio's way to override
// fields of the injected proxy, such as resources, env or the security
// context. Nil when the pod has none.
func takeOverride(pod *corev1.Pod) *corev1.Container {
	for _, list := range []*[]corev1.Container{&pod.Spec.Containers, &pod.Spec.InitContainers} {
		if i := slices.IndexFunc(*list, func(c corev1.Container) bool { return c.Name == ProxyName }); i >= 0 {
			c := (*list)[i].DeepCopy()
			*list = slices.Delete(*list, i, i+1)
			return c
		}
	}
	return nil
}

// overlayOf is the pod's own istio-proxy container as an overlay: an
// image "auto" keeps the injected one.
func overlayOf(user *corev1.Container) *corev1.Container {
	overlay := user.DeepCopy()
	if overlay.Image == autoImage {
		overlay.Image = ""
	}
	return overlay
}

// overrideProxy merges overlay, the pod's own istio-proxy container, into
// the injected proxy, as istiod does: a strategic merge, in which the
// user's fields win and env and ports merge by their keys. The cluster and
// network the injector decided stay (as istiod's, they are set after the
// overrides).
func overrideProxy(proxy *corev1.Container, overlay *corev1.Container) error {
	var keep []corev1.EnvVar
	for _, e := range proxy.Env {
		if e.Name == "ISTIO_META_CLUSTER_ID" || e.Name == "ISTIO_META_NETWORK" {
			keep = append(keep, e)
		}
	}
	base, err := json.Marshal(proxy)
	if err != nil {
		return fmt.Errorf("encode %s: %w", ProxyName, err)
	}
	patch, err := json.Marshal(overlay)
	if err != nil {
		return fmt.Errorf("encode the pod's own %s: %w", ProxyName, err)
	}
	merged, err := strategicpatch.StrategicMergePatch(base, patch, corev1.Container{})
	if err != nil {
		return fmt.Errorf("merge the pod's own %s container into the injected one: %w", ProxyName, err)
	}
	var out corev1.Container
	if err := json.Unmarshal(merged, &out); err != nil {
		return fmt.Errorf("decode the merged %s: %w", ProxyName, err)
	}
	for _, k := range keep {
		if i := slices.IndexFunc(out.Env, func(e corev1.EnvVar) bool { return e.Name == k.Name }); i >= 0 {
			out.Env[i] = k
		} else {
			out.Env = append(out.Env, k)
		}
	}
	*proxy = out
	return nil
}

// overrideAnnotation is proxy.istio.io/overrides for the overlay of the
// pod's own istio-proxy container, listed where the injected proxy is: in
// the init containers for a native sidecar (init).
func overrideAnnotation(user *corev1.Container, init bool) (string, error) {
	var v struct {
		Containers     []corev1.Container `json:"containers,omitempty"`
		InitContainers []corev1.Container `json:"initContainers,omitempty"`
	}
	if init {
		v.InitContainers = []corev1.Container{*user}
	} else {
		v.Containers = []corev1.Container{*user}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", AnnotationProxyOverrides, err)
	}
	return string(b), nil
}

// adjustCaptureUser follows a uid or gid the pod's own istio-proxy
// container sets, as istiod does: the capture exempts the proxy's uid
// (istio-init's -u, unless 0), the CNI validation runs as the proxy, and in
// TPROXY mode the proxy stays root.
func adjustCaptureUser(pod *corev1.Pod, proxy *corev1.Container, user *corev1.Container, mode string) {
	sc := user.SecurityContext
	if sc == nil || sc.RunAsUser == nil && sc.RunAsGroup == nil {
		return
	}
	var capture *corev1.Container
	for i := range pod.Spec.InitContainers {
		if n := pod.Spec.InitContainers[i].Name; n == InitName || n == ValidationName {
			capture = &pod.Spec.InitContainers[i]
			break
		}
	}
	if capture == nil {
		return
	}
	tproxy := mode == ModeTProxy
	if tproxy && sc.RunAsUser != nil && proxy.SecurityContext != nil {
		proxy.SecurityContext.RunAsUser = new(int64(0))
	}
	if !tproxy && capture.Name == ValidationName {
		if sc.RunAsUser != nil {
			capture.SecurityContext.RunAsUser = new(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			capture.SecurityContext.RunAsGroup = new(*sc.RunAsGroup)
		}
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		return
	}
	if i := slices.Index(capture.Args, "-u"); i >= 0 && i+1 < len(capture.Args) {
		capture.Args[i+1] = strconv.FormatInt(*sc.RunAsUser, 10)
	}
}
