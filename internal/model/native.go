package model

import (
	"slices"
	"strconv"
	"strings"
)

// NativeSidecarMinMinor is the Kubernetes minor version from which
// istiod's ENABLE_NATIVE_SIDECARS=auto injects native sidecars: 1.33,
// where sidecar containers are stable.
const NativeSidecarMinMinor = 33

// KubeletRunsNativeSidecars says whether a kubelet of version v (a Node's
// status.nodeInfo.kubeletVersion, such as v1.33.2 or 1.34.0-gke.1) runs
// native sidecars, as istiod decides: its minor version is 33 or more. As
// istiod's check, it reads the minor version alone, and a version that does
// not parse (an empty one too) cannot.
func KubeletRunsNativeSidecars(v string) bool {
	minor, ok := kubeletMinor(v)
	return ok && minor >= NativeSidecarMinMinor
}

// kubeletMinor is the minor version of a version string as istiod's
// version parser reads it: an optional v, dot-separated numbers (a missing
// minor is 0), then optionally a pre-release or build suffix that starts
// with -, + or a letter.
func kubeletMinor(v string) (int, bool) {
	v = strings.TrimPrefix(v, "v")
	end := strings.IndexFunc(v, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if end < 0 {
		end = len(v)
	}
	if rest := v[end:]; rest != "" && (len(rest) == 1 || !strings.ContainsRune("-+abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", rune(rest[0]))) {
		return 0, false
	}
	parts := strings.Split(v[:end], ".")
	if slices.Contains(parts, "") {
		return 0, false
	}
	if len(parts) < 2 {
		return 0, true
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, false
	}
	return minor, true
}

// countKubelet adds (d=1) or removes (d=-1) n, if any, from the count of
// nodes whose kubelet cannot run native sidecars.
func (cs *clusterState) countKubelet(n *Node, d int) {
	if n != nil && !KubeletRunsNativeSidecars(n.KubeletVersion) {
		cs.oldKubelets += d
	}
}

// NativeSidecars is the decision of --native-sidecars=auto for a pod of
// cluster c on node (its spec.nodeName; empty when not scheduled yet), as
// istiod's ENABLE_NATIVE_SIDECARS=auto decides: the node's kubelet when the
// cluster has that node; else every node's kubelet must run native
// sidecars, which a cluster with no nodes passes. A cluster the store holds
// no object of gets none, as istiod's webhook gets none for a cluster it
// has no client for.
func (s *Store) NativeSidecars(c ClusterID, node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.clusters[c]
	if cs == nil {
		return false
	}
	if n := cs.nodes[node]; node != "" && n != nil {
		return KubeletRunsNativeSidecars(n.KubeletVersion)
	}
	return cs.oldKubelets == 0
}
