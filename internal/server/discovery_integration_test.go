package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// addService writes Service ns/name (port 5000) with n mTLS pods and
// their EndpointSlice, pod i at ip(i).
func addService(t *testing.T, cs kubernetes.Interface, ns, name string, n int, ip func(int) string) {
	t.Helper()
	ctx := t.Context()
	must(testenv.CreateService(ctx, cs, testenv.Service{Namespace: ns, Name: name,
		Ports: []corev1.ServicePort{{Name: "http", Port: 5000, TargetPort: intstr.FromInt32(5000)}}}))(t)
	var eps []testenv.Endpoint
	for i := range n {
		pod := fmt.Sprintf("%s-%d", name, i)
		must(testenv.CreatePod(ctx, cs, testenv.Pod{Namespace: ns, Name: pod, Node: "node-a", ServiceAccount: name,
			Labels: map[string]string{model.LabelTLSMode: "istio", "app": name}, IP: ip(i), Ready: true}))(t)
		eps = append(eps, testenv.Endpoint{IP: ip(i), Ready: true, Node: "node-a", Pod: pod})
	}
	must(testenv.CreateEndpointSlice(ctx, cs, ns, name, name+"-1", []testenv.EndpointPort{{Name: "http", Port: 5000}}, eps))(t)
}

// labelNamespace sets (value non-empty) or removes label mesh of a
// namespace.
func labelNamespace(t *testing.T, cs kubernetes.Interface, ns, value string) {
	t.Helper()
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{"mesh":%s}}}`, v)
	must(cs.CoreV1().Namespaces().Patch(t.Context(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}))(t)
}

// TestIntegrationDiscoverySelectors runs a server whose mesh config selects
// the namespaces labeled mesh=on, over two real API servers (the config
// cluster and a remote one). Each cluster holds, besides helloworld in
// namespace sample, a namespace "other" that is never selected. It checks
// that the unselected namespaces' Services, Pods and EndpointSlices are not
// in the watchers' caches at all (the counts of /debug/clusters are the
// informer caches'), not merely left out of the views; and that labeling
// and unlabeling a namespace brings its endpoints into a proxy's EDS and
// takes them out, while the server runs.
func TestIntegrationDiscoverySelectors(t *testing.T) {
	testreq.NotShort(t, "integration test: starts two kube-apiservers")
	env := testenv.Start(t, testenv.Options{ClusterIDs: []string{"cluster1", "cluster2"}})
	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	ctx := t.Context()
	for n, c := range []*testenv.Cluster{c1, c2} {
		cs := c.Client()
		// The system namespace is selected; sample only in cluster1 at first.
		must(testenv.CreateNamespace(ctx, cs, "istio-system", map[string]string{model.LabelNetwork: "net1", "mesh": "on"}))(t)
		sampleLabels := map[string]string{"mesh": "on"}
		if n == 1 {
			sampleLabels = nil
		}
		must(testenv.CreateNamespace(ctx, cs, "sample", sampleLabels))(t)
		must(testenv.CreateNamespace(ctx, cs, "other", map[string]string{"mesh": "off"}))(t)
		must(testenv.CreateNode(ctx, cs, "node-a", nil, "", fmt.Sprintf("192.168.%d.1", n+1)))(t)
		addService(t, cs, "sample", "helloworld", 1, func(int) string { return fmt.Sprintf("10.%d.0.5", n+1) })
		addService(t, cs, "other", "big", 3, func(i int) string { return fmt.Sprintf("10.%d.1.%d", n+1, i+1) })
	}
	applyRemoteSecret(t, c1, c2, c2.Host)
	meshConfig := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(meshConfig, []byte("discoverySelectors:\n- matchLabels:\n    mesh: \"on\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := serveCluster(t, c1, Config{MeshConfigFile: meshConfig})

	// objects returns a cluster's cached Services, EndpointSlices and Pods.
	objects := func(id string) string {
		o := rs.cluster(t, id).Objects
		if o == nil {
			return "no counts"
		}
		return fmt.Sprintf("services %d, endpointslices %d, pods %d", o.Services, o.EndpointSlices, o.Pods)
	}
	awaitObjects := func(what, id, want string) {
		t.Helper()
		testkit.Eventually(t, testkit.WaitTimeout, what+" (-want +got)", func() string { return cmp.Diff(want, objects(id)) })
	}
	const host = "outbound|5000||helloworld.sample.svc.cluster.local"
	eds := watchEDS(t, rs.srv.XDSAddr().String(), "net1", "cluster1", host)

	// Only sample of cluster1 is selected: one Service, one slice, one pod.
	// Namespace other (and default, with the kubernetes Service) is not.
	eds.await(t, "start", []string{"10.1.0.5:5000/1"})
	awaitObjects("cluster1 at start", "cluster1", "services 1, endpointslices 1, pods 1")
	awaitObjects("cluster2 at start", "cluster2", "services 0, endpointslices 0, pods 0")
	if c := rs.cluster(t, "cluster1").Objects; c.Namespaces < 4 {
		t.Errorf("cluster1 caches %d namespaces; every namespace should be watched (their labels decide)", c.Namespaces)
	}

	// Labeling cluster2's sample brings its endpoint in.
	labelNamespace(t, c2.Client(), "sample", "on")
	eds.await(t, "cluster2's sample selected", []string{"10.1.0.5:5000/1", "10.2.0.5:5000/1"})
	awaitObjects("cluster2 after labeling sample", "cluster2", "services 1, endpointslices 1, pods 1")

	// Unlabeling cluster1's sample takes its endpoint out and empties its
	// caches.
	labelNamespace(t, c1.Client(), "sample", "")
	eds.await(t, "cluster1's sample unselected", []string{"10.2.0.5:5000/1"})
	awaitObjects("cluster1 after unlabeling sample", "cluster1", "services 0, endpointslices 0, pods 0")

	// A change inside an unselected namespace is never seen; one in a
	// selected namespace is.
	addService(t, c1.Client(), "sample", "late", 1, func(int) string { return "10.1.0.9" })
	addService(t, c2.Client(), "sample", "late", 1, func(int) string { return "10.2.0.9" })
	awaitObjects("cluster2 after a new service", "cluster2", "services 2, endpointslices 2, pods 2")
	awaitObjects("cluster1 after a new unselected service", "cluster1", "services 0, endpointslices 0, pods 0")

	// Relabeling other in: its three pods and the Service come in.
	labelNamespace(t, c1.Client(), "other", "on")
	awaitObjects("cluster1 after labeling other", "cluster1", "services 1, endpointslices 1, pods 3")
	var v model.View
	testkit.Eventually(t, testkit.WaitTimeout, "big.other in the view (-want +got)", func() string {
		if code := rs.get(t, "/debug/endpoints?host=big.other.svc.cluster.local&port=5000&network=net1", &v); code != 200 {
			return fmt.Sprintf("HTTP %d", code)
		}
		return cmp.Diff(3, len(v.Endpoints))
	})
}
