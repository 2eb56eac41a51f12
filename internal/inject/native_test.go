package inject

import (
	"slices"
	"testing"

	"github.com/causeway-mesh/causeway/internal/model"
)

// TestNativeAuto: Config.NativeAuto decides native sidecars instead of
// NativeSidecars, for the pod's cluster (the target's, else the config
// cluster) and node, and the pod's annotation overrides the decision.
func TestNativeAuto(t *testing.T) {
	type call struct {
		c    model.ClusterID
		node string
	}
	tests := []struct {
		name     string
		flag     bool
		decision bool
		target   Target
		node     string
		ann      map[string]string
		want     bool
		wantCall call
	}{
		{name: "decision on", decision: true, want: true, wantCall: call{"cluster1", ""}},
		{name: "decision off beats the flag", flag: true, want: false, wantCall: call{"cluster1", ""}},
		{name: "pod's node", decision: true, node: "n1", want: true, wantCall: call{"cluster1", "n1"}},
		{name: "remote cluster", decision: true, target: Target{Cluster: "cluster2", Network: "net2"}, want: true, wantCall: call{"cluster2", ""}},
		{name: "annotation off", decision: true, ann: map[string]string{AnnotationNative: "false"}, want: false, wantCall: call{"cluster1", ""}},
		{name: "annotation on", ann: map[string]string{AnnotationNative: "true"}, want: true, wantCall: call{"cluster1", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []call
			in := New(Config{ClusterID: "cluster1", NativeSidecars: tt.flag, NativeAuto: func(c model.ClusterID, node string) bool {
				got = append(got, call{c, node})
				return tt.decision
			}})
			pod := basePod()
			pod.Annotations = tt.ann
			pod.Spec.NodeName = tt.node
			out, err := in.Inject(pod, tt.target)
			if err != nil {
				t.Fatal(err)
			}
			native := slices.Contains(names(out.Spec.InitContainers), ProxyName)
			if native != tt.want {
				t.Errorf("native sidecar %v, want %v: init containers %v, containers %v", native, tt.want,
					names(out.Spec.InitContainers), names(out.Spec.Containers))
			}
			if !slices.Equal(got, []call{tt.wantCall}) {
				t.Errorf("NativeAuto called with %v, want %v", got, []call{tt.wantCall})
			}
		})
	}
}
