package model

import (
	"cmp"
	"time"
)

// MTLSMode is a PeerAuthentication mode: what a workload's sidecar accepts
// inbound.
type MTLSMode int

// PeerAuthentication modes, as security.istio.io/v1 names them.
const (
	// MTLSUnset inherits the mode of the scope above (mesh: PERMISSIVE).
	MTLSUnset MTLSMode = iota
	// MTLSDisable accepts plaintext only.
	MTLSDisable
	// MTLSPermissive accepts mesh mTLS and plaintext.
	MTLSPermissive
	// MTLSStrict accepts mesh mTLS only.
	MTLSStrict
)

// String names the mode as the API spells it.
func (m MTLSMode) String() string {
	switch m {
	case MTLSDisable:
		return "DISABLE"
	case MTLSPermissive:
		return "PERMISSIVE"
	case MTLSStrict:
		return "STRICT"
	default:
		return "UNSET"
	}
}

// ParseMTLSMode reads a mode as the API spells it; anything else is
// MTLSUnset (istiod's validation rejects other values).
func ParseMTLSMode(s string) MTLSMode {
	switch s {
	case "DISABLE":
		return MTLSDisable
	case "PERMISSIVE":
		return MTLSPermissive
	case "STRICT":
		return MTLSStrict
	}
	return MTLSUnset
}

// PeerAuthentication is what the model keeps of a security.istio.io
// PeerAuthentication: its scope, its mode and its port-level modes.
type PeerAuthentication struct {
	Cluster   ClusterID
	Namespace string
	Name      string
	// Created is metadata.creationTimestamp: among policies of one scope,
	// the oldest wins (then the name, first in order).
	Created time.Time
	// Selector is spec.selector.matchLabels; nil (no selector) makes the
	// policy namespace-wide, or mesh-wide in the system namespace.
	Selector map[string]string
	// Mode is spec.mtls.mode.
	Mode MTLSMode
	// PortLevel is spec.portLevelMtls, by the workload's (target) port.
	// Istio reads it only from policies with a selector.
	PortLevel map[uint32]MTLSMode
}

// Workload names what a PeerAuthentication applies to: a pod's namespace
// and labels.
type Workload struct {
	Namespace string
	Labels    map[string]string
}

// EffectiveMTLS is the mode a workload's sidecar enforces on port, by
// Istio's precedence:
//
//   - Three scopes: the mesh (policies without a selector in
//     rootNamespace), the workload's namespace (without a selector, in its
//     namespace) and the workload (with a selector matching its labels, in
//     its namespace; an empty selector matches every workload).
//   - In each scope, the oldest policy wins (creation time, then name).
//   - A narrower scope's mode overrides a wider one's; UNSET inherits the
//     wider one's, and an UNSET mesh is PERMISSIVE.
//   - The workload policy's portLevelMtls entry for port overrides its
//     mode, unless that entry is UNSET.
//
// policies may hold any cluster's and namespace's policies; the caller
// passes those of the workload's cluster (see docs/sidecars.md).
func EffectiveMTLS(policies []PeerAuthentication, rootNamespace string, w Workload, port uint32) MTLSMode {
	var mesh, ns, wl *PeerAuthentication
	older := func(cur, cand *PeerAuthentication) bool {
		if cur == nil {
			return true
		}
		if c := cand.Created.Compare(cur.Created); c != 0 {
			return c < 0
		}
		return cmp.Or(cmp.Compare(cand.Namespace, cur.Namespace), cmp.Compare(cand.Name, cur.Name)) < 0
	}
	for i := range policies {
		p := &policies[i]
		switch {
		case p.Selector == nil && p.Namespace == rootNamespace:
			if older(mesh, p) {
				mesh = p
			}
		case p.Namespace != w.Namespace:
		case p.Selector == nil:
			if older(ns, p) {
				ns = p
			}
		case selects(p.Selector, w.Labels):
			if older(wl, p) {
				wl = p
			}
		}
	}
	mode := MTLSPermissive
	if mesh != nil && mesh.Mode != MTLSUnset {
		mode = mesh.Mode
	}
	// In the system namespace the namespace scope is the mesh scope, so
	// there ns stays nil.
	if ns != nil && ns.Mode != MTLSUnset {
		mode = ns.Mode
	}
	if wl != nil {
		if wl.Mode != MTLSUnset {
			mode = wl.Mode
		}
		if pm := wl.PortLevel[port]; pm != MTLSUnset {
			mode = pm
		}
	}
	return mode
}

// selects reports whether every label of sel is in labels.
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
