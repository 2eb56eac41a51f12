package inject

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Pod annotations that change what is injected, as Istio's template reads
// them.
const (
	AnnotationInterceptionMode = "sidecar.istio.io/interceptionMode"
	AnnotationProxyImage       = "sidecar.istio.io/proxyImage"
	AnnotationLogLevel         = "sidecar.istio.io/logLevel"
	AnnotationComponentLog     = "sidecar.istio.io/componentLogLevel"
	AnnotationAgentLogLevel    = "sidecar.istio.io/agentLogLevel"
	AnnotationReadinessDelay   = "readiness.status.sidecar.istio.io/initialDelaySeconds"
	AnnotationReadinessPeriod  = "readiness.status.sidecar.istio.io/periodSeconds"
	AnnotationReadinessFailure = "readiness.status.sidecar.istio.io/failureThreshold"
	AnnotationStatusPort       = "status.sidecar.istio.io/port"

	AnnotationIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationIncludeOutboundPorts    = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
	AnnotationExcludeInterfaces       = "traffic.sidecar.istio.io/excludeInterfaces"
	AnnotationKubevirtInterfaces      = "traffic.sidecar.istio.io/kubevirtInterfaces"
	AnnotationRerouteInterfaces       = "istio.io/reroute-virtual-interfaces"
)

// Interception modes of sidecar.istio.io/interceptionMode (and a
// ProxyConfig's interceptionMode).
const (
	ModeRedirect = "REDIRECT"
	ModeTProxy   = "TPROXY"
	ModeNone     = "NONE"
)

// podOptions are the per-pod choices the annotations make, with the
// defaults of Istio's chart where the pod sets nothing.
type podOptions struct {
	// mode is the interception mode: REDIRECT, TPROXY or NONE (no
	// istio-init).
	mode string
	// image is istio-proxy's and istio-init's image.
	image string
	// proxyLog, componentLog and agentLog are Envoy's and the agent's log
	// levels.
	proxyLog, componentLog, agentLog string
	// readinessDelay, readinessPeriod and readinessFailures shape the
	// proxy's readiness probe.
	readinessDelay, readinessPeriod, readinessFailures int32
	// hold starts istio-proxy first and holds the app until it is ready
	// (ProxyConfig holdApplicationUntilProxyStarts; not with native
	// sidecars, which start first anyway).
	hold bool
	// native makes istio-proxy a native sidecar.
	native bool
	// statusPort is the agent's port that rewritten app probes and the
	// native sidecar's drain call use, and that the capture leaves alone;
	// 0 means none, and the proxy then has no readiness and startup
	// probes.
	statusPort int32
	// iptables are istio-init's capture arguments after -m.
	iptables []string
}

// options reads the pod's annotations (and its proxy.istio.io/config,
// decoded in proxyCfg) into podOptions. A value istiod would refuse is an
// error that names the annotation.
// nativeDef is the cluster's choice of native sidecars, which the pod's
// annotation overrides.
func (in *Injector) options(ann map[string]string, proxyCfg map[string]any, nativeDef bool) (podOptions, error) {
	o := podOptions{
		mode:         ModeRedirect,
		image:        in.cfg.ProxyImage,
		proxyLog:     cmp.Or(ann[AnnotationLogLevel], "warning"),
		componentLog: cmp.Or(ann[AnnotationComponentLog], "misc:error"),
		agentLog:     cmp.Or(ann[AnnotationAgentLogLevel], "default:info"),
		native:       nativeSidecar(ann, nativeDef),
	}
	if m, ok := proxyCfg["interceptionMode"].(string); ok && m != "" {
		o.mode = m
	}
	if m := ann[AnnotationInterceptionMode]; m != "" {
		o.mode = m
	}
	switch o.mode {
	case ModeRedirect, ModeTProxy, ModeNone:
	default:
		return o, fmt.Errorf("interception mode %q (annotation %s or proxy.istio.io/config): want %s, %s or %s",
			o.mode, AnnotationInterceptionMode, ModeRedirect, ModeTProxy, ModeNone)
	}
	// As Istio's template: a value with a slash is a whole image
	// reference; another names nothing this injector can resolve, so the
	// configured image stays.
	if img := ann[AnnotationProxyImage]; strings.Contains(img, "/") {
		o.image = img
	}
	if h, ok := proxyCfg["holdApplicationUntilProxyStarts"].(bool); ok {
		o.hold = h && !o.native
	}
	for _, r := range []struct {
		key string
		dst *int32
		def int32
	}{
		{AnnotationReadinessDelay, &o.readinessDelay, 0},
		{AnnotationReadinessPeriod, &o.readinessPeriod, 15},
		{AnnotationReadinessFailure, &o.readinessFailures, 4},
	} {
		*r.dst = r.def
		v, ok := ann[r.key]
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return o, fmt.Errorf("annotation %s=%q: want a whole number of at most %d", r.key, v, int32(^uint32(0)>>1))
		}
		*r.dst = int32(n)
	}
	o.statusPort = agentPort
	if v, ok := ann[AnnotationStatusPort]; ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			return o, fmt.Errorf("annotation %s=%q: want a port from 0 to 65535", AnnotationStatusPort, v)
		}
		o.statusPort = int32(n)
	}
	args, err := iptablesArgs(ann, o.statusPort)
	if err != nil {
		return o, err
	}
	o.iptables = args
	return o, nil
}

// iptablesArgs are istio-init's capture arguments from the traffic
// annotations, with Istio's chart defaults: every outbound address and
// inbound port captured, Envoy's, the readiness and the agent's ports
// excluded.
func iptablesArgs(ann map[string]string, statusPort int32) ([]string, error) {
	for _, k := range []string{AnnotationIncludeOutboundIPRanges, AnnotationExcludeOutboundIPRanges} {
		if err := validateCIDRs(ann[k], k == AnnotationIncludeOutboundIPRanges); err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", k, ann[k], err)
		}
	}
	for _, k := range []string{AnnotationIncludeInboundPorts, AnnotationExcludeInboundPorts, AnnotationExcludeOutboundPorts} {
		if err := validatePorts(ann[k], k == AnnotationIncludeInboundPorts); err != nil {
			return nil, fmt.Errorf("annotation %s=%q: %w", k, ann[k], err)
		}
	}
	exclude := fmt.Sprintf("%d,%d", promPort, readyPort)
	if more := excludeInbound(ann[AnnotationExcludeInboundPorts], statusPort); more != "" {
		exclude += "," + more
	}
	args := []string{
		"-i", cmp.Or(ann[AnnotationIncludeOutboundIPRanges], "*"),
		"-x", ann[AnnotationExcludeOutboundIPRanges],
		"-b", cmp.Or(ann[AnnotationIncludeInboundPorts], "*"),
		"-d", exclude,
	}
	if v, ok := ann[AnnotationIncludeOutboundPorts]; ok {
		args = append(args, "-q", v)
	}
	if v, ok := ann[AnnotationExcludeOutboundPorts]; ok {
		args = append(args, "-o", v)
	}
	if v, ok := ann[AnnotationRerouteInterfaces]; ok {
		args = append(args, "-k", v)
	} else if v, ok := ann[AnnotationKubevirtInterfaces]; ok {
		args = append(args, "-k", v)
	}
	if v, ok := ann[AnnotationExcludeInterfaces]; ok {
		args = append(args, "-c", v)
	}
	return args, nil
}

// cniAnnotations are the annotations Istio's CNI plugin reads to set up
// the capture in CNI mode, as Istio's template writes them: the
// interception mode and the traffic annotations, with their defaults.
func cniAnnotations(ann map[string]string, mode string, statusPort int32) map[string]string {
	out := map[string]string{
		AnnotationInterceptionMode:        mode,
		AnnotationIncludeOutboundIPRanges: cmp.Or(ann[AnnotationIncludeOutboundIPRanges], "*"),
		AnnotationIncludeInboundPorts:     cmp.Or(ann[AnnotationIncludeInboundPorts], "*"),
		AnnotationExcludeInboundPorts:     excludeInbound(ann[AnnotationExcludeInboundPorts], statusPort),
	}
	if v := ann[AnnotationExcludeOutboundIPRanges]; v != "" {
		out[AnnotationExcludeOutboundIPRanges] = v
	}
	for _, k := range []string{AnnotationIncludeOutboundPorts, AnnotationExcludeOutboundPorts} {
		if v, ok := ann[k]; ok {
			out[k] = v
		}
	}
	for _, k := range []string{AnnotationKubevirtInterfaces, AnnotationRerouteInterfaces, AnnotationExcludeInterfaces} {
		if v := ann[k]; v != "" {
			out[k] = v
		}
	}
	return out
}

// excludeInbound adds port to the comma-separated list unless it is there
// or 0.
func excludeInbound(list string, statusPort int32) string {
	if statusPort == 0 {
		return list
	}
	port := strconv.Itoa(int(statusPort))
	var out []string
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		if p == port {
			return list
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(append(out, port), ",")
}

// validateCIDRs checks a comma-separated list of CIDRs; "*" is allowed
// where star is.
func validateCIDRs(list string, star bool) error {
	if list == "" || star && list == "*" {
		return nil
	}
	for c := range strings.SplitSeq(list, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return fmt.Errorf("want comma-separated CIDRs: %w", err)
		}
	}
	return nil
}

// validatePorts checks a comma-separated list of ports; "*" is allowed
// where star is.
func validatePorts(list string, star bool) error {
	if list == "" || star && list == "*" {
		return nil
	}
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("want comma-separated ports from 1 to 65535, got %q", p)
		}
	}
	return nil
}

// nativeSidecar says whether istio-proxy is a native sidecar: the pod's
// sidecar.istio.io/nativeSidecar annotation when set ("false" turns it
// off, any other value on, as Istio's template reads it), else def (the
// --native-sidecars flag, or its auto decision).
func nativeSidecar(ann map[string]string, def bool) bool {
	if v, ok := ann[AnnotationNative]; ok && v != "" {
		return v != "false"
	}
	return def
}
