package install

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestApplyHomeLabClusters applies the home lab's two clusters' manifests to two
// real API servers: the namespace first (as `--only Namespace` does before
// cacerts is plugged in), then everything as a server-side dry run, which
// must pass and persist nothing, then for real, then again, which must
// change nothing. The accounts get exactly the access they need.
func TestApplyHomeLabClusters(t *testing.T) {
	testreq.NotShort(t, "starts kube-apiservers")
	env := testenv.Start(t, testenv.Options{Clusters: 2})
	ctx := t.Context()
	cases := seedCases()
	byCluster := map[string][]seedCase{
		"cluster1": {cases[0], cases[1]},
		"cluster2": {cases[2], cases[3]},
	}
	for _, c := range env.Clusters {
		rc := c.RESTConfig()
		cs := c.Client()
		var (
			manifests [][]byte
			counts    []int
		)
		for _, sc := range byCluster[c.ID] {
			objs, err := Generate(sc.profile, sc.values)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Render(objs, "test")
			if err != nil {
				t.Fatal(err)
			}
			manifests, counts = append(manifests, m), append(counts, len(objs))
		}

		// The namespace alone, so that namespaced objects can be dry-run.
		objs, err := Generate(byCluster[c.ID][0].profile, byCluster[c.ID][0].values)
		if err != nil {
			t.Fatal(err)
		}
		nsOnly, err := Render(objs[:1], "")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Apply(ctx, rc, nsOnly, ApplyOptions{}); err != nil || !cmp.Equal(got, []string{"Namespace istio-system"}) {
			t.Fatalf("%s: apply namespace: %v %v", c.ID, got, err)
		}

		for i, m := range manifests {
			got, err := Apply(ctx, rc, m, ApplyOptions{DryRun: true})
			if err != nil {
				t.Fatalf("%s: dry run: %v", c.ID, err)
			}
			if len(got) != counts[i] {
				t.Errorf("%s: dry run applied %d objects, want %d: %v", c.ID, len(got), counts[i], got)
			}
		}
		// Nothing of the dry run persisted.
		if _, err := cs.CoreV1().Services("istio-system").Get(ctx, GatewayName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: gateway Service after a dry run: %v", c.ID, err)
		}

		for _, m := range manifests {
			if _, err := Apply(ctx, rc, m, ApplyOptions{}); err != nil {
				t.Fatalf("%s: apply: %v", c.ID, err)
			}
		}
		before := resourceVersions(ctx, t, cs)
		for _, m := range manifests {
			if _, err := Apply(ctx, rc, m, ApplyOptions{}); err != nil {
				t.Fatalf("%s: apply again: %v", c.ID, err)
			}
		}
		if diff := cmp.Diff(before, resourceVersions(ctx, t, cs)); diff != "" {
			t.Errorf("%s: applying the same manifests again changed objects (-before +after):\n%s", c.ID, diff)
		}
	}

	c1, c2 := env.Cluster("cluster1"), env.Cluster("cluster2")
	// cluster1: the control plane and a LoadBalancer gateway exposing it.
	if _, err := c1.Client().AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); err != nil {
		t.Errorf("cluster1 istiod: %v", err)
	}
	gw1, err := c1.Client().CoreV1().Services("istio-system").Get(ctx, GatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gw1.Spec.Type != corev1.ServiceTypeLoadBalancer || len(gw1.Spec.Ports) != 3 {
		t.Errorf("cluster1 gateway: %s %+v", gw1.Spec.Type, gw1.Spec.Ports)
	}
	// cluster2: no control plane; istiod-remote points at cluster1's
	// gateway; the gateway got node ports.
	if _, err := c2.Client().AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster2 has a control plane: %v", err)
	}
	eps, err := c2.Client().CoreV1().Endpoints("istio-system").Get(ctx, RemoteServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ip := eps.Subsets[0].Addresses[0].IP; ip != seedDiscoveryAddress {
		t.Errorf("istiod-remote endpoints %s, want %s", ip, seedDiscoveryAddress)
	}
	gw2, err := c2.Client().CoreV1().Services("istio-system").Get(ctx, GatewayName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gw2.Spec.Type != corev1.ServiceTypeNodePort || gw2.Spec.Ports[0].NodePort == 0 {
		t.Errorf("cluster2 gateway: %s %+v", gw2.Spec.Type, gw2.Spec.Ports)
	}

	// Least privilege, asked of the API servers' authorizers.
	checkAccess(ctx, t, c1.RESTConfig(), "istio-system", "istiod", []access{
		{"list", "", "pods", "", true},
		{"watch", "discovery.k8s.io", "endpointslices", "", true},
		{"create", "authentication.k8s.io", "tokenreviews", "", true},
		{"create", "", "configmaps", "sample", true},
		{"get", "", "secrets", "istio-system", true},
		{"get", "", "secrets", "sample", false},
		{"delete", "", "pods", "sample", false},
		{"update", "", "services", "istio-system", false},
	})
	checkAccess(ctx, t, c2.RESTConfig(), "istio-system", ReaderName, []access{
		{"list", "", "namespaces", "", true},
		{"watch", "", "nodes", "", true},
		{"create", "", "configmaps", "sample", true},
		{"get", "", "secrets", "istio-system", false},
		{"delete", "", "configmaps", "sample", false},
		{"update", "", "services", "sample", false},
	})
}

func resourceVersions(ctx context.Context, t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	rv := map[string]string{}
	svcs, err := cs.CoreV1().Services("istio-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range svcs.Items {
		rv["Service "+svcs.Items[i].Name] = svcs.Items[i].ResourceVersion
	}
	deps, err := cs.AppsV1().Deployments("istio-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range deps.Items {
		rv["Deployment "+deps.Items[i].Name] = deps.Items[i].ResourceVersion
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "istio-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv["Namespace"] = ns.ResourceVersion
	crs, err := cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range crs.Items {
		if r := &crs.Items[i]; strings.HasPrefix(r.Name, "causeway-") {
			rv["ClusterRole "+r.Name] = r.ResourceVersion
		}
	}
	return rv
}

type access struct {
	verb, group, resource, namespace string
	allowed                          bool
}

// checkAccess asks, as the ServiceAccount (impersonated), whether it may
// do each thing.
func checkAccess(ctx context.Context, t *testing.T, admin *rest.Config, ns, sa string, want []access) {
	t.Helper()
	rc := rest.CopyConfig(admin)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range want {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.namespace},
		}}
		got, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if allowed := got.Status.Allowed; allowed != a.allowed {
			t.Errorf("%s may %s %s.%s in %q: %v, want %v", sa, a.verb, a.resource, a.group, a.namespace, allowed, a.allowed)
		}
	}
}
