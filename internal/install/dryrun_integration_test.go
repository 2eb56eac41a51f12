package install

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/testenv"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// TestDryRunEveryProfile sends what `causeway manifest generate` prints for
// every profile and variant (primary with and without a revision, remote
// by IP and by name, both gateway images, exposing the control plane or
// not) to a real API server as a server-side dry run, which is what
// `kubectl apply --dry-run=server` does: every object must pass the
// server's validation and admission, webhooks included, and nothing may
// persist.
func TestDryRunEveryProfile(t *testing.T) {
	testreq.NotShort(t, "starts a kube-apiserver")
	data, err := os.ReadFile(filepath.Join("testdata", "values-1-11-4.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := ParseValues(data)
	if err != nil {
		t.Fatal(err)
	}
	rev.CABundle = testRoot()
	cases := append(seedCases(), istioGatewayCases()...)
	cases = append(cases,
		seedCase{"primary-revision", ProfilePrimary, rev},
		seedCase{"remote-by-name", ProfileRemote, Values{ClusterID: "c2", Network: "n2", RemotePilotAddress: "gw.example.com", Revision: "canary"}},
		seedCase{"remote-without-webhook", ProfileRemote, Values{RemotePilotAddress: "192.0.2.10", NoWebhook: true}},
		seedCase{"istio-gateway-nodeport-revision", ProfileEastWestGateway, Values{
			ClusterID: "c2", Network: "n2", Image: testImage, Revision: "canary", RemotePilotAddress: "192.0.2.10",
			Gateway: GatewayValues{ImageKind: GatewayImageIstio, ServiceType: corev1.ServiceTypeNodePort, ExposeControlPlane: true, NodePort: 31443},
		}},
	)

	env := testenv.Start(t, testenv.Options{Clusters: 1})
	c := env.Clusters[0]
	ctx := t.Context()
	// Namespaced objects can be dry-run only into a namespace that exists.
	for _, ns := range []string{"istio-system", "mesh"} {
		if _, err := c.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kindsSeen := map[string]bool{}
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			objs, err := Generate(sc.profile, sc.values)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Render(objs, "test")
			if err != nil {
				t.Fatal(err)
			}
			got, err := Apply(ctx, c.RESTConfig(), m, ApplyOptions{DryRun: true})
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if len(got) != len(objs) {
				t.Errorf("dry run applied %d objects, want %d: %v", len(got), len(objs), got)
			}
			for _, o := range objs {
				kindsSeen[o.GetObjectKind().GroupVersionKind().Kind] = true
			}
		})
	}
	for _, k := range []string{"MutatingWebhookConfiguration", "Deployment", "Service", "Endpoints"} {
		if !kindsSeen[k] {
			t.Errorf("no case made a %s", k)
		}
	}
	// Nothing persisted.
	whs, err := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(whs.Items) != 0 {
		t.Errorf("%d webhook configurations after a dry run", len(whs.Items))
	}
	if _, err := c.Client().AppsV1().Deployments("istio-system").Get(ctx, GatewayName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("gateway Deployment after a dry run: %v", err)
	}
}
