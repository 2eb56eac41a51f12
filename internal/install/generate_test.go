package install

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

const testImage = "ghcr.io/causeway-mesh/causeway:v0.1.0"

// seedCase is one manifest of the home lab: cluster1 (network1)
// the primary with a LoadBalancer gateway that also exposes the control
// plane, cluster2 (network2) the remote with a NodePort gateway, one mesh.
type seedCase struct {
	name    string
	profile Profile
	values  Values
}

// seedDiscoveryAddress is the LoadBalancer address of cluster1's gateway in
// the home lab's primary-remote diff.
const seedDiscoveryAddress = "192.168.1.1"

// seedWebhookHost is the DNS name of cluster1's gateway that cluster2's
// API server calls the injection webhook by.
const seedWebhookHost = "eastwest.cluster1.example"

// testRoot is a fixed mesh root (testdata/root-cert.pem), the webhooks'
// caBundle in the golden files.
func testRoot() string {
	data, err := os.ReadFile(filepath.Join("testdata", "root-cert.pem"))
	if err != nil {
		panic(err)
	}
	return string(data)
}

func seedCases() []seedCase {
	c1 := Values{ClusterID: "cluster1", Network: "network1", MeshID: "mesh1", Image: testImage, CABundle: testRoot(), CustomHosts: []string{seedWebhookHost}}
	c2 := Values{ClusterID: "cluster2", Network: "network2", MeshID: "mesh1", Image: testImage, RemotePilotAddress: seedDiscoveryAddress,
		WebhookHost: seedWebhookHost, CABundle: testRoot()}
	gw1 := c1
	gw1.Gateway.ExposeControlPlane = true
	gw2 := c2
	gw2.Gateway.ServiceType = corev1.ServiceTypeNodePort
	return []seedCase{
		{"cluster1-primary", ProfilePrimary, c1},
		{"cluster1-eastwest-gateway", ProfileEastWestGateway, gw1},
		{"cluster2-remote", ProfileRemote, c2},
		{"cluster2-eastwest-gateway", ProfileEastWestGateway, gw2},
	}
}

// istioGatewayCases are the home lab's gateways run by Istio's proxyv2
// (--gateway-image istio).
func istioGatewayCases() []seedCase {
	var out []seedCase
	for _, c := range seedCases() { //nolint:gocritic // a copy is what is wanted: it is changed and kept
		if c.profile == ProfileEastWestGateway {
			c.name += "-istio"
			c.values.Gateway.ImageKind = GatewayImageIstio
			out = append(out, c)
		}
	}
	return out
}

func render(t *testing.T, p Profile, v Values) []byte {
	t.Helper()
	objs, err := Generate(p, v)
	if err != nil {
		t.Fatalf("Generate(%s): %v", p, err)
	}
	out, err := Render(objs, "test")
	if err != nil {
		t.Fatalf("Render(%s): %v", p, err)
	}
	return out
}

// golden compares got with testdata/NAME.yaml, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); run go test -update if the change is intended:\n%s", path, diff)
	}
}

func TestGenerateGolden(t *testing.T) {
	cases := seedCases()
	// The home lab's op_cluster1.yaml: revision 1-11-4, requests 50m/300Mi,
	// given as a values file.
	data, err := os.ReadFile(filepath.Join("testdata", "values-1-11-4.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := ParseValues(data)
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, seedCase{"cluster1-primary-revision", ProfilePrimary, rev})
	cases = append(cases, istioGatewayCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, c.profile, c.values)
			golden(t, c.name, got)
			// Deterministic: the same values give the same bytes.
			for range 5 {
				if again := render(t, c.profile, c.values); !bytes.Equal(again, got) {
					t.Fatal("a second Render differs from the first")
				}
			}
		})
	}
}

func find[T Object](t *testing.T, objs []Object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == kind && o.GetName() == name {
			typed, ok := o.(T)
			if !ok {
				t.Fatalf("%s %s has type %T", kind, name, o)
			}
			return typed
		}
	}
	t.Fatalf("no %s %s among %d objects", kind, name, len(objs))
	var zero T
	return zero
}

func kinds(objs []Object) []string {
	var out []string
	for _, o := range objs {
		k := o.GetObjectKind().GroupVersionKind().Kind + ":" + o.GetNamespace() + ":" + o.GetName()
		out = append(out, k)
	}
	return out
}

func TestGenerateObjects(t *testing.T) {
	tests := []struct {
		name    string
		profile Profile
		values  Values
		want    []string
	}{
		{
			name: "primary", profile: ProfilePrimary,
			values: Values{ClusterID: "c1", Image: testImage},
			want: []string{
				"Namespace::istio-system",
				"ServiceAccount:istio-system:istiod",
				"ClusterRole::causeway-istiod-istio-system",
				"ClusterRoleBinding::causeway-istiod-istio-system",
				"Role:istio-system:causeway-istiod",
				"RoleBinding:istio-system:causeway-istiod",
				"Service:istio-system:istiod",
				"Deployment:istio-system:istiod",
				"PodDisruptionBudget:istio-system:istiod",
				"MutatingWebhookConfiguration::istio-sidecar-injector",
			},
		},
		{
			name: "primary without webhook", profile: ProfilePrimary,
			values: Values{ClusterID: "c1", Image: testImage, NoWebhook: true},
			want: []string{
				"Namespace::istio-system",
				"ServiceAccount:istio-system:istiod",
				"ClusterRole::causeway-istiod-istio-system",
				"ClusterRoleBinding::causeway-istiod-istio-system",
				"Role:istio-system:causeway-istiod",
				"RoleBinding:istio-system:causeway-istiod",
				"Service:istio-system:istiod",
				"Deployment:istio-system:istiod",
				"PodDisruptionBudget:istio-system:istiod",
			},
		},
		{
			name: "primary with a revision has both Services", profile: ProfilePrimary,
			values: Values{ClusterID: "c1", Image: testImage, Revision: "canary", Namespace: "mesh"},
			want: []string{
				"Namespace::mesh",
				"ServiceAccount:mesh:istiod-canary",
				"ClusterRole::causeway-istiod-canary-mesh",
				"ClusterRoleBinding::causeway-istiod-canary-mesh",
				"Role:mesh:causeway-istiod-canary",
				"RoleBinding:mesh:causeway-istiod-canary",
				"Service:mesh:istiod",
				"Service:mesh:istiod-canary",
				"Deployment:mesh:istiod-canary",
				"PodDisruptionBudget:mesh:istiod-canary",
				"MutatingWebhookConfiguration::istio-sidecar-injector-canary",
			},
		},
		{
			name: "remote by IP: headless Service and Endpoints, no control plane", profile: ProfileRemote,
			values: Values{RemotePilotAddress: "192.0.2.10:15012", NoWebhook: true},
			want: []string{
				"Namespace::istio-system",
				"ServiceAccount:istio-system:causeway-reader",
				"ClusterRole::causeway-reader-istio-system",
				"ClusterRoleBinding::causeway-reader-istio-system",
				"Service:istio-system:istiod-remote",
				"Endpoints:istio-system:istiod-remote",
			},
		},
		{
			name: "remote by name: an ExternalName Service", profile: ProfileRemote,
			values: Values{RemotePilotAddress: "gw.example.com", ClusterID: "c2", Network: "n2"},
			want: []string{
				"Namespace::istio-system",
				"ServiceAccount:istio-system:causeway-reader",
				"ClusterRole::causeway-reader-istio-system",
				"ClusterRoleBinding::causeway-reader-istio-system",
				"Service:istio-system:istiod-remote",
				"MutatingWebhookConfiguration::istio-sidecar-injector",
			},
		},
		{
			name: "gateway", profile: ProfileEastWestGateway,
			values: Values{ClusterID: "c1", Network: "n1", Image: testImage},
			want: []string{
				"Namespace::istio-system",
				"ServiceAccount:istio-system:istio-eastwestgateway-service-account",
				"Service:istio-system:istio-eastwestgateway",
				"Deployment:istio-system:istio-eastwestgateway",
				"PodDisruptionBudget:istio-system:istio-eastwestgateway",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Generate(tt.profile, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, kinds(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestControlPlaneDeployment(t *testing.T) {
	v := Values{
		ClusterID: "cluster1", Image: testImage, Revision: "1-11-4", TrustDomain: "example.org",
		CustomHosts: []string{"istiod.example.com", "istiod-1-11-4.istio-system.svc"},
		ControlPlane: ComponentValues{
			Replicas:     2,
			NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			Resources: &corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("300Mi"),
			}},
		},
	}
	objs, err := Generate(ProfilePrimary, v)
	if err != nil {
		t.Fatal(err)
	}
	d := find[*appsv1.Deployment](t, objs, "Deployment", "istiod-1-11-4")
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{
		"serve", "--cluster-id=cluster1", "--system-namespace=istio-system", "--trust-domain=example.org",
		"--debug-addr=:15014", "--xds-addr=:15010", "--xds-tls-addr=:15012", "--webhook-addr=:15017",
		// The revisioned name first, then the configured ones, once each.
		"--custom-host=istiod-1-11-4.istio-system.svc", "--custom-host=istiod.example.com",
	}
	if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(*v.ControlPlane.Resources, c.Resources); diff != "" {
		t.Errorf("resources replace the defaults (-want +got):\n%s", diff)
	}
	// No memory limit, so no GOMEMLIMIT: only the pod's name, the
	// replica's identity in the leader Lease.
	if len(c.Env) != 1 || c.Env[0].Name != "POD_NAME" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil ||
		c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("env %v: want only POD_NAME from metadata.name without a memory limit", c.Env)
	}
	if got := d.Spec.Template.Spec.NodeSelector; !cmp.Equal(got, v.ControlPlane.NodeSelector) {
		t.Errorf("nodeSelector %v", got)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != PortDebug {
		t.Errorf("readiness probe %+v: want GET /ready on %d", p, PortDebug)
	}
	if p := c.LivenessProbe; p == nil || p.TCPSocket == nil || p.TCPSocket.Port.IntValue() != PortDebug {
		t.Errorf("liveness probe %+v: want TCP on %d", p, PortDebug)
	}
	checkHardened(t, d)

	svcs := 0
	for _, o := range objs {
		if svc, ok := o.(*corev1.Service); ok {
			svcs++
			var ports []int32
			for _, p := range svc.Spec.Ports {
				ports = append(ports, p.Port)
			}
			if diff := cmp.Diff([]int32{15010, 15012, 443, 15014}, ports); diff != "" {
				t.Errorf("Service %s ports (-want +got):\n%s", svc.Name, diff)
			}
			if diff := cmp.Diff(d.Spec.Selector.MatchLabels, svc.Spec.Selector); diff != "" {
				t.Errorf("Service %s does not select the Deployment (-want +got):\n%s", svc.Name, diff)
			}
		}
	}
	if svcs != 2 {
		t.Errorf("%d Services, want istiod and istiod-1-11-4", svcs)
	}
}

// checkHardened: non-root, read-only root filesystem, no capabilities.
func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("%s: pod security context %+v is not non-root", d.Name, ps)
	}
	for i := range d.Spec.Template.Spec.Containers {
		c := &d.Spec.Template.Spec.Containers[i]
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no security context", d.Name, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: root filesystem is writable", d.Name, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: privilege escalation allowed", d.Name, c.Name)
		case sc.Capabilities == nil || !cmp.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
			t.Errorf("%s/%s: capabilities %+v, want drop ALL", d.Name, c.Name, sc.Capabilities)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s/%s: no resource requests", d.Name, c.Name)
		}
	}
}

func TestControlPlaneRBAC(t *testing.T) {
	objs, err := Generate(ProfilePrimary, Values{ClusterID: "c1", Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	read := []string{"get", "list", "watch"}
	cr := find[*rbacv1.ClusterRole](t, objs, "ClusterRole", "causeway-istiod-istio-system")
	wantCluster := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces", "services", "pods", "nodes"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: read},
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		// Istio's Envoy east-west gateways' config, read in the config
		// cluster only (docs/eastwest-envoy.md).
		{APIGroups: []string{"networking.istio.io"}, Resources: []string{"gateways", "virtualservices"}, Verbs: read},
	}
	if diff := cmp.Diff(wantCluster, cr.Rules); diff != "" {
		t.Errorf("cluster rules (-want +got):\n%s", diff)
	}
	role := find[*rbacv1.Role](t, objs, "Role", "causeway-istiod")
	wantNS := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"update"}, ResourceNames: []string{"istio-ca-secret"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	}
	if diff := cmp.Diff(wantNS, role.Rules); diff != "" {
		t.Errorf("namespace rules (-want +got):\n%s", diff)
	}
	for _, o := range objs {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "istiod", Namespace: "istio-system"}}
			if diff := cmp.Diff(want, b.Subjects); diff != "" || b.RoleRef.Name != cr.Name {
				t.Errorf("ClusterRoleBinding %s: roleRef %s, subjects (-want +got):\n%s", b.Name, b.RoleRef.Name, diff)
			}
		case *rbacv1.RoleBinding:
			want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "istiod", Namespace: "istio-system"}}
			if diff := cmp.Diff(want, b.Subjects); diff != "" || b.RoleRef.Name != role.Name || b.RoleRef.Kind != "Role" {
				t.Errorf("RoleBinding %s: roleRef %+v, subjects (-want +got):\n%s", b.Name, b.RoleRef, diff)
			}
		}
	}
}

func TestRemoteService(t *testing.T) {
	objs, err := Generate(ProfileRemote, Values{ClusterID: "cluster2", Network: "network2", RemotePilotAddress: seedDiscoveryAddress, WebhookHost: seedWebhookHost})
	if err != nil {
		t.Fatal(err)
	}
	svc := find[*corev1.Service](t, objs, "Service", "istiod-remote")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Selector) != 0 {
		t.Errorf("istiod-remote: clusterIP %q selector %v, want headless without selector", svc.Spec.ClusterIP, svc.Spec.Selector)
	}
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != "tcp-istiod" || p[0].Port != 15012 || p[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("istiod-remote ports %+v", p)
	}
	eps := find[*corev1.Endpoints](t, objs, "Endpoints", "istiod-remote") //nolint:staticcheck // the home lab's object
	if s := eps.Subsets; len(s) != 1 || len(s[0].Addresses) != 1 || s[0].Addresses[0].IP != seedDiscoveryAddress || s[0].Ports[0].Port != 15012 {
		t.Errorf("istiod-remote endpoints %+v", s)
	}

	objs, err = Generate(ProfileRemote, Values{RemotePilotAddress: "eastwest.example.com", NoWebhook: true})
	if err != nil {
		t.Fatal(err)
	}
	svc = find[*corev1.Service](t, objs, "Service", "istiod-remote")
	if svc.Spec.Type != corev1.ServiceTypeExternalName || svc.Spec.ExternalName != "eastwest.example.com" {
		t.Errorf("istiod-remote by name: type %s externalName %q", svc.Spec.Type, svc.Spec.ExternalName)
	}
}

func TestGatewayService(t *testing.T) {
	tests := []struct {
		name       string
		values     Values
		wantType   corev1.ServiceType
		wantPorts  []string // name/port/target/nodePort
		wantLabels map[string]string
		wantPolicy corev1.ServiceExternalTrafficPolicy
		wantXDS    string
		// wantArgs are the arguments after --admin; wantRootMount: the
		// istio-ca-root-cert ConfigMap is mounted for --xds-root-cert, and
		// the projected istio-ca token for --xds-token.
		wantArgs      []string
		wantRootMount bool
	}{
		{
			name:      "LoadBalancer exposing the control plane",
			values:    Values{ClusterID: "cluster1", Network: "network1", Image: testImage, Gateway: GatewayValues{ExposeControlPlane: true}},
			wantType:  corev1.ServiceTypeLoadBalancer,
			wantPorts: []string{"tls/15443/15443/0", "tls-istiod/15012/15012/0", "tls-webhook/15017/15017/0"},
			wantLabels: map[string]string{
				"app": "istio-eastwestgateway", "istio": "eastwestgateway", "topology.istio.io/network": "network1",
			},
			wantXDS:  "--xds=istiod.istio-system.svc:15010",
			wantArgs: []string{"--expose-control-plane=0.0.0.0:15012", "--expose-webhook=0.0.0.0:15017"},
		},
		{
			name: "NodePort of a remote cluster on a non-default port",
			values: Values{ClusterID: "cluster2", Network: "network2", Image: testImage, RemotePilotAddress: "192.0.2.1", Revision: "r1",
				Gateway: GatewayValues{ServiceType: corev1.ServiceTypeNodePort, Port: 443, NodePort: 31443}},
			wantType:  corev1.ServiceTypeNodePort,
			wantPorts: []string{"tls/443/15443/31443"},
			wantLabels: map[string]string{
				"app": "istio-eastwestgateway", "istio": "eastwestgateway", "topology.istio.io/network": "network2",
				"istio.io/rev": "r1", "networking.istio.io/gatewayPort": "443",
			},
			wantPolicy:    corev1.ServiceExternalTrafficPolicyLocal,
			wantXDS:       "--xds=istiod-remote.istio-system.svc:15012",
			wantArgs:      []string{"--xds-root-cert=/var/run/secrets/istio/root-cert.pem", "--xds-token=/var/run/secrets/tokens/istio-token"},
			wantRootMount: true,
		},
		{
			name:          "explicit xDS address on the secure port",
			values:        Values{ClusterID: "c", Network: "n", Image: testImage, Gateway: GatewayValues{XDSAddress: "cp.example.com:15012"}},
			wantType:      corev1.ServiceTypeLoadBalancer,
			wantPorts:     []string{"tls/15443/15443/0"},
			wantLabels:    map[string]string{"app": "istio-eastwestgateway", "istio": "eastwestgateway", "topology.istio.io/network": "n"},
			wantXDS:       "--xds=cp.example.com:15012",
			wantArgs:      []string{"--xds-root-cert=/var/run/secrets/istio/root-cert.pem", "--xds-token=/var/run/secrets/tokens/istio-token"},
			wantRootMount: true,
		},
		{
			name:      "explicit xDS address",
			values:    Values{ClusterID: "c", Network: "n", Image: testImage, Revision: "r1", Gateway: GatewayValues{XDSAddress: "cp.example.com:15010"}},
			wantType:  corev1.ServiceTypeLoadBalancer,
			wantPorts: []string{"tls/15443/15443/0"},
			wantLabels: map[string]string{
				"app": "istio-eastwestgateway", "istio": "eastwestgateway", "topology.istio.io/network": "n", "istio.io/rev": "r1",
			},
			wantXDS: "--xds=cp.example.com:15010",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Generate(ProfileEastWestGateway, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			svc := find[*corev1.Service](t, objs, "Service", GatewayName)
			if svc.Spec.Type != tt.wantType || svc.Spec.ExternalTrafficPolicy != tt.wantPolicy {
				t.Errorf("type %s policy %q, want %s %q", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy, tt.wantType, tt.wantPolicy)
			}
			var ports []string
			for _, p := range svc.Spec.Ports {
				ports = append(ports, strings.Join([]string{p.Name, itoa(p.Port), p.TargetPort.String(), itoa(p.NodePort)}, "/"))
			}
			if diff := cmp.Diff(tt.wantPorts, ports); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantLabels, svc.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			d := find[*appsv1.Deployment](t, objs, "Deployment", GatewayName)
			c := d.Spec.Template.Spec.Containers[0]
			if got := c.Args[1]; got != tt.wantXDS {
				t.Errorf("gateway xds arg %q, want %q", got, tt.wantXDS)
			}
			if diff := cmp.Diff(tt.wantArgs, c.Args[6:], cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("gateway args after --admin (-want +got):\n%s", diff)
			}
			mounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == "istio-ca-root-cert" && m.MountPath == "/var/run/secrets/istio" && m.ReadOnly
			}) && slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
				return v.Name == "istio-ca-root-cert" && v.ConfigMap != nil && v.ConfigMap.Name == "istio-ca-root-cert"
			})
			if mounted != tt.wantRootMount {
				t.Errorf("istio-ca-root-cert mounted: %v, want %v (mounts %v)", mounted, tt.wantRootMount, c.VolumeMounts)
			}
			tokenMounted := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == TokenVolume && m.MountPath == TokenDir && m.ReadOnly
			}) && slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
				return v.Name == TokenVolume && v.Projected != nil && v.Projected.Sources[0].ServiceAccountToken.Audience == "istio-ca"
			})
			if tokenMounted != tt.wantRootMount {
				t.Errorf("projected istio-ca token mounted: %v, want %v (mounts %v)", tokenMounted, tt.wantRootMount, c.VolumeMounts)
			}
			if diff := cmp.Diff(svc.Spec.Selector, d.Spec.Selector.MatchLabels); diff != "" {
				t.Errorf("Service does not select the gateway (-svc +deployment):\n%s", diff)
			}
			checkHardened(t, d)
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name    string
		profile Profile
		values  Values
		want    []string
	}{
		{"unknown profile", "gateway", Values{}, []string{`unknown profile "gateway"`}},
		{"primary without cluster id", ProfilePrimary, Values{Image: testImage}, []string{"the cluster id is required"}},
		{"gateway without network", ProfileEastWestGateway, Values{ClusterID: "c", Image: testImage}, []string{"the network is required"}},
		{"remote without address", ProfileRemote, Values{}, []string{"--remote-pilot-address"}},
		{"remote pilot on another port", ProfileRemote, Values{RemotePilotAddress: "192.168.1.1:15010"}, []string{"the port must be 15012"}},
		{"remote pilot not an address", ProfileRemote, Values{RemotePilotAddress: "not an address!"}, []string{"neither an IP nor a DNS name"}},
		{"everything wrong at once", ProfilePrimary, Values{
			ClusterID: "bad id", Network: "bad network!", Namespace: "Bad_NS", Revision: "X", Image: testImage,
			CustomHosts: []string{"not a host"}, ImagePullPolicy: "Sometimes",
			Gateway: GatewayValues{ServiceType: corev1.ServiceTypeClusterIP, Port: 70000},
		}, []string{
			`cluster id "bad id"`, `network "bad network!" is not a valid label value`, `namespace "Bad_NS"`,
			`revision "X"`, `custom host "not a host"`, `imagePullPolicy "Sometimes"`,
			`gateway service type "ClusterIP"`, "gateway.port 70000",
		}},
		{"remote webhook by IP", ProfileRemote, Values{ClusterID: "c2", Network: "n2", RemotePilotAddress: "192.0.2.10"}, []string{
			"--webhook-host NAME", "the IP 192.0.2.10 cannot be verified", "--no-webhook",
		}},
		{"remote webhook without cluster and network", ProfileRemote, Values{RemotePilotAddress: "gw.example.com"}, []string{
			"the cluster id is required for the remote cluster's injection webhook", "the network is required for the remote cluster's injection webhook",
		}},
		{"webhook host not a DNS name", ProfileRemote, Values{ClusterID: "c2", Network: "n2", RemotePilotAddress: "192.0.2.10", WebhookHost: "192.0.2.10:15017"}, []string{
			`webhook host "192.0.2.10:15017": want a DNS name`,
		}},
		{"caBundle not PEM", ProfilePrimary, Values{ClusterID: "c", Image: testImage, CABundle: "not a certificate"}, []string{"caBundle"}},
		{"unknown gateway image", ProfileEastWestGateway, Values{ClusterID: "c", Network: "n", Image: testImage, Gateway: GatewayValues{ImageKind: "envoy"}}, []string{
			`gateway image "envoy": want causeway`,
		}},
		{"gateway port clashes with the webhook's", ProfileEastWestGateway, Values{
			ClusterID: "c", Network: "n", Image: testImage, Gateway: GatewayValues{Port: 15017, ExposeControlPlane: true},
		}, []string{"gateway.port 15017 is the webhook's port"}},
		{"gateway port clashes with the control plane's", ProfileEastWestGateway, Values{
			ClusterID: "c", Network: "n", Image: testImage, Gateway: GatewayValues{Port: 15012, ExposeControlPlane: true},
		}, []string{"gateway.port 15012 is the control plane's port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(tt.profile, tt.values)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Values
		wantErr string
	}{
		{
			name: "every key",
			in: `clusterID: cluster1
network: network1
meshID: mesh1
namespace: mesh-system
revision: 1-11-4
trustDomain: example.org
image: example.com/causeway:v1
imagePullPolicy: Always
customHosts: [istiod.example.com]
remotePilotAddress: 192.0.2.1
controlPlane:
  replicas: 2
  resources: {requests: {cpu: 50m}}
  nodeSelector: {kubernetes.io/os: linux}
gateway:
  replicas: 3
  serviceType: NodePort
  port: 443
  nodePort: 31443
  exposeControlPlane: true
  xdsAddress: cp:15010
  serviceAnnotations: {a: b}
`,
			want: Values{
				ClusterID: "cluster1", Network: "network1", MeshID: "mesh1", Namespace: "mesh-system", Revision: "1-11-4",
				TrustDomain: "example.org", Image: "example.com/causeway:v1", ImagePullPolicy: corev1.PullAlways,
				CustomHosts: []string{"istiod.example.com"}, RemotePilotAddress: "192.0.2.1",
				ControlPlane: ComponentValues{
					Replicas:     2,
					Resources:    &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}},
					NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
				},
				Gateway: GatewayValues{
					ComponentValues: ComponentValues{Replicas: 3},
					ServiceType:     corev1.ServiceTypeNodePort, Port: 443, NodePort: 31443, ExposeControlPlane: true,
					XDSAddress: "cp:15010", ServiceAnnotations: map[string]string{"a": "b"},
				},
			},
		},
		{name: "empty file", in: "", want: Values{}},
		{name: "unknown key", in: "clusterId: c1\n", wantErr: `unknown field "clusterId"`},
		{name: "unknown nested key", in: "gateway:\n  type: NodePort\n", wantErr: `unknown field "gateway.type"`},
		{name: "repeated key", in: "network: a\nnetwork: b\n", wantErr: `"network" already set`},
		{name: "wrong type", in: "controlPlane: {replicas: many}\n", wantErr: "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseValues([]byte(tt.in))
			if testkit.WantErr(t, err, tt.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNoAdminPortPublished: no Service a load balancer or node port
// publishes carries the debug or admin ports (topology, profiles); they
// stay on the pods, where the probes and Prometheus reach them.
func TestNoAdminPortPublished(t *testing.T) {
	for _, p := range Profiles() {
		for _, st := range []corev1.ServiceType{corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort} {
			v := Values{ClusterID: "c", Network: "n", Image: testImage, RemotePilotAddress: "192.0.2.1", WebhookHost: "gw.example.com",
				Gateway: GatewayValues{ServiceType: st, ExposeControlPlane: p != ProfileRemote}}
			objs, err := Generate(p, v)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			for _, o := range objs {
				svc, ok := o.(*corev1.Service)
				if !ok || (svc.Spec.Type != corev1.ServiceTypeLoadBalancer && svc.Spec.Type != corev1.ServiceTypeNodePort) {
					continue
				}
				for _, sp := range svc.Spec.Ports {
					if sp.Port == PortGatewayAdmin || sp.Port == PortDebug || sp.TargetPort.IntValue() == PortGatewayAdmin || sp.TargetPort.IntValue() == PortDebug {
						t.Errorf("%s, %s: Service %s publishes port %s %d", p, st, svc.Name, sp.Name, sp.Port)
					}
				}
			}
		}
	}
}
