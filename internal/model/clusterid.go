package model

import (
	"fmt"
	"regexp"
)

// clusterIDPattern is what a cluster id may be: it names a flag value, the
// data key of a remote Secret, a folder of certs and manifests, and a label
// value (ISTIO_META_CLUSTER_ID, topology.istio.io/cluster).
var clusterIDPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// MaxClusterIDLength is the longest cluster id: a Kubernetes label value.
const MaxClusterIDLength = 63

// CheckClusterID is the one rule for cluster ids, used by every command that
// takes one: letters, digits, '.', '_' and '-', starting and ending with a
// letter or digit, at most 63 characters (a label value; "cluster1." and
// ".." are refused).
func CheckClusterID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("the cluster id is empty: give the name the control plane knows the cluster by, such as cluster1")
	case len(id) > MaxClusterIDLength:
		return fmt.Errorf("cluster id %q is longer than %d characters", id, MaxClusterIDLength)
	case !clusterIDPattern.MatchString(id):
		return fmt.Errorf("cluster id %q: use letters, digits, '.', '_' and '-', starting and ending with a letter or digit (such as cluster1)", id)
	}
	return nil
}
