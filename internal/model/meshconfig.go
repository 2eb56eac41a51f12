package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// MaxMeshConfigBytes bounds a mesh config document: Istio keeps it in a
// ConfigMap, which Kubernetes caps at 1 MiB.
const MaxMeshConfigBytes = 1 << 20

// MeshConfig is what the model reads of Istio's MeshConfig (the YAML
// istiod reads with --meshConfig, or the "mesh" key of the istio
// ConfigMap). ParseMeshConfig builds it; the zero value is Istio's
// defaults.
type MeshConfig struct {
	// ServiceSettings are meshConfig.serviceSettings, in order: hosts
	// (exact, or a wildcard "*.SUFFIX" or "*") and whether they are
	// cluster-local.
	ServiceSettings []ServiceSetting
	// DiscoveryAddress is meshConfig.defaultConfig.discoveryAddress
	// (HOST:PORT), empty when not set: Istio's default is
	// istiod.istio-system.svc:15012.
	DiscoveryAddress string
	// RegistryOnly is meshConfig.outboundTrafficPolicy.mode REGISTRY_ONLY:
	// a captured sidecar drops connections to destinations no service
	// claims. False is ALLOW_ANY, Istio's default.
	RegistryOnly bool
	// DiscoverySelectors are meshConfig.discoverySelectors: the namespaces
	// whose Services, EndpointSlices and Pods the control plane watches are
	// those whose labels match any of them. Empty: every namespace. An
	// empty selector ({}) matches every namespace, as in Istio.
	DiscoverySelectors []NamespaceSelector
}

// NamespaceSelector is one Kubernetes label selector of
// meshConfig.discoverySelectors: every MatchLabels entry and every
// MatchExpressions requirement must hold.
type NamespaceSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []SelectorRequirement
}

// SelectorRequirement is one matchExpressions entry: Operator is In,
// NotIn, Exists or DoesNotExist.
type SelectorRequirement struct {
	Key      string
	Operator string
	Values   []string
}

// ServiceSetting is one entry of meshConfig.serviceSettings.
type ServiceSetting struct {
	Hosts        []string
	ClusterLocal bool
}

// ParseMeshConfig reads Istio's MeshConfig from YAML or JSON, with
// istio.io/api's types. As istiod, it ignores fields it does not know
// (newer Istio releases add some); fields Causeway does not use are
// ignored too. It refuses input over MaxMeshConfigBytes, input that is
// not a MeshConfig, and serviceSettings hosts that are not hostnames or
// wildcards Istio accepts ("*" or "*.SUFFIX").
func ParseMeshConfig(data []byte) (*MeshConfig, error) {
	if len(data) > MaxMeshConfigBytes {
		return nil, fmt.Errorf("mesh config: %d bytes, more than the %d a mesh config may have", len(data), MaxMeshConfigBytes)
	}
	var mc meshconfig.MeshConfig
	registryOnly := false
	if len(bytes.TrimSpace(data)) > 0 {
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("mesh config: cannot parse YAML: %w", err)
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, &mc); err != nil {
			return nil, fmt.Errorf("mesh config: not an Istio MeshConfig: %w", err)
		}
		registryOnly = explicitRegistryOnly(js)
	}
	out := &MeshConfig{
		DiscoveryAddress: mc.GetDefaultConfig().GetDiscoveryAddress(),
		RegistryOnly:     registryOnly,
	}
	var errs []error
	for i, ls := range mc.GetDiscoverySelectors() {
		sel, err := namespaceSelector(ls)
		if err != nil {
			errs = append(errs, fmt.Errorf("discoverySelectors[%d]: %w", i, err))
			continue
		}
		out.DiscoverySelectors = append(out.DiscoverySelectors, sel)
	}
	if a := out.DiscoveryAddress; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("defaultConfig.discoveryAddress %q: want HOST:PORT: %w", a, err))
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, fmt.Errorf("defaultConfig.discoveryAddress %q: port %q is not a number", a, port))
		}
	}
	for i, ss := range mc.GetServiceSettings() {
		for _, h := range ss.GetHosts() {
			if err := validServiceSettingsHost(h); err != nil {
				errs = append(errs, fmt.Errorf("serviceSettings[%d].hosts %q: %w", i, h, err))
			}
		}
		out.ServiceSettings = append(out.ServiceSettings, ServiceSetting{
			Hosts:        ss.GetHosts(),
			ClusterLocal: ss.GetSettings().GetClusterLocal(),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	return out, nil
}

// namespaceSelector converts one discoverySelectors entry, checking its
// operators and their values as Kubernetes does; label key and value syntax
// is checked where the selector is compiled (internal/kube).
func namespaceSelector(ls *meshconfig.LabelSelector) (NamespaceSelector, error) {
	out := NamespaceSelector{MatchLabels: ls.GetMatchLabels()}
	for j, r := range ls.GetMatchExpressions() {
		req := SelectorRequirement{Key: r.GetKey(), Operator: r.GetOperator(), Values: r.GetValues()}
		switch req.Operator {
		case "In", "NotIn":
			if len(req.Values) == 0 {
				return out, fmt.Errorf("matchExpressions[%d] (key %q): operator %s needs values", j, req.Key, req.Operator)
			}
		case "Exists", "DoesNotExist":
			if len(req.Values) > 0 {
				return out, fmt.Errorf("matchExpressions[%d] (key %q): operator %s takes no values", j, req.Key, req.Operator)
			}
		default:
			return out, fmt.Errorf("matchExpressions[%d] (key %q): operator %q: want In, NotIn, Exists or DoesNotExist", j, req.Key, req.Operator)
		}
		out.MatchExpressions = append(out.MatchExpressions, req)
	}
	return out, nil
}

// explicitRegistryOnly tells whether a mesh config (as JSON, already
// parsed once as a MeshConfig) sets outboundTrafficPolicy.mode to
// REGISTRY_ONLY. In Istio's proto REGISTRY_ONLY is the enum's zero value,
// so a parsed MeshConfig cannot tell it from an absent policy; istiod
// merges the file over its defaults, where the mode is ALLOW_ANY, so only
// an explicit REGISTRY_ONLY (or 0) selects it.
func explicitRegistryOnly(js []byte) bool {
	var raw struct {
		OutboundTrafficPolicy struct {
			Mode any `json:"mode"`
		} `json:"outboundTrafficPolicy"`
	}
	if json.Unmarshal(js, &raw) != nil {
		return false
	}
	switch m := raw.OutboundTrafficPolicy.Mode.(type) {
	case string:
		return m == meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY.String()
	case float64:
		return m == float64(meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY)
	}
	return false
}

// validServiceSettingsHost accepts a hostname, "*", or "*." followed by a
// hostname: the wildcards Istio's MeshConfig allows.
func validServiceSettingsHost(h string) error {
	if h == "*" {
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(name) > 253 {
		return errors.New("empty or too long")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("a label is empty or longer than 63 characters")
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && (r < 'A' || r > 'Z') {
				return fmt.Errorf("%q is not allowed in a hostname (a wildcard may only be a leading \"*.\")", r)
			}
		}
	}
	return nil
}
