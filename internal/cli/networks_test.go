package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestNetworks(t *testing.T) {
	meshNetworks := filepath.Join(exampleDir, "mesh-networks.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "table",
			args: []string{"-o", "table"},
			want: `NETWORK network1
  membership:  namespace label: cluster1/istio-system
               pod label: 1 pods
  clusters:    cluster1
  endpoints:   3
  gateways:
    ADDRESS        PORT   CLUSTER   LOCALITY  SOURCE
    192.168.1.240  15443  cluster1  -         service cluster1/istio-system/istio-eastwestgateway (LoadBalancer ingress)

NETWORK network2
  membership:  namespace label: cluster2/istio-system
               pod label: 1 pods
  clusters:    cluster2
  endpoints:   3
  gateways:
    ADDRESS       PORT   CLUSTER   LOCALITY  SOURCE
    192.168.2.22  31443  cluster2  -         service cluster2/istio-system/istio-eastwestgateway (NodePort 31443 on node c2-node-b)

no warnings
`,
		},
		{
			name: "json, meshNetworks, selector mode",
			args: []string{"--mesh-networks", meshNetworks, "--nodeport-gateways", "selector", "-o", "json"},
			want: `{
  "networks": [
    {
      "name": "network1",
      "membership": [
        "fromRegistry: cluster1",
        "namespace label: cluster1/istio-system"
      ],
      "clusters": [
        "cluster1"
      ],
      "endpoints": 3,
      "gateways": [
        {
          "address": "192.168.1.240",
          "port": 15443,
          "network": "network1",
          "cluster": "cluster1",
          "source": "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (LoadBalancer ingress)"
        }
      ]
    },
    {
      "name": "network2",
      "membership": [
        "fromRegistry: cluster2",
        "namespace label: cluster2/istio-system"
      ],
      "clusters": [
        "cluster2"
      ],
      "endpoints": 3,
      "gateways": [
        {
          "address": "192.168.2.21",
          "port": 31443,
          "network": "network2",
          "cluster": "cluster2",
          "source": "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (NodePort 31443 on node c2-node-a)"
        },
        {
          "address": "192.168.2.22",
          "port": 31443,
          "network": "network2",
          "cluster": "cluster2",
          "source": "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (NodePort 31443 on node c2-node-b)"
        },
        {
          "address": "192.168.2.23",
          "port": 31443,
          "network": "network2",
          "cluster": "cluster2",
          "source": "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (NodePort 31443 on node c2-node-c)"
        }
      ]
    }
  ],
  "warnings": []
}
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, append([]string{"networks", "--manifests", exampleDir}, tc.args...)...)
			if err != nil {
				t.Fatalf("networks: %v\n%s", err, got)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("networks output (-want +got):\n%s", diff)
			}
		})
	}
}

// A network without a gateway: the table shows it and the model's warning.
func TestNetworksWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("east/all.yaml", `apiVersion: v1
kind: Namespace
metadata: {name: istio-system, labels: {topology.istio.io/network: east}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.1.0.5]}]
`)
	write("west/all.yaml", `apiVersion: v1
kind: Namespace
metadata: {name: istio-system, labels: {topology.istio.io/network: west}}
---
apiVersion: v1
kind: Service
metadata: {name: gw, namespace: istio-system, labels: {topology.istio.io/network: west}}
spec: {type: LoadBalancer, ports: [{name: tls, port: 15443}]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.10}]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.2.0.5]}]
`)
	got, err := run(t, "networks", "--manifests", dir, "-o", "table")
	if err != nil {
		t.Fatalf("networks: %v\n%s", err, got)
	}
	testkit.ContainsAll(t, "output", got,
		"NETWORK east\n",
		"  membership:  namespace label: east/istio-system\n",
		"  clusters:    east\n",
		"  endpoints:   1\n",
		"  gateways:    none\n",
		"\nWARNINGS\n  - network \"east\" has no gateway",
	)
}

func TestNetworksErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no manifests", []string{"networks"}, "--manifests is required"},
		{"bad output", []string{"networks", "--manifests", exampleDir, "-o", "wide"}, `-o "wide": want table, json or yaml`},
		{"bad nodeport mode", []string{"networks", "--manifests", exampleDir, "--nodeport-gateways", "all"}, `--nodeport-gateways "all"`},
		{"missing mesh networks file", []string{"networks", "--manifests", exampleDir, "--mesh-networks", "/nonexistent/mn.yaml"}, "/nonexistent/mn.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if err == nil {
				t.Fatalf("networks succeeded, want an error; output:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// A real folder holds kinds the model does not read: networks (and view)
// read the rest and say in one line what was skipped.
func TestNetworksSkipsOtherKinds(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(exampleDir)); err != nil {
		t.Fatal(err)
	}
	extra := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sleep, namespace: sample}\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: sleep, namespace: sample}\n"
	if err := os.WriteFile(filepath.Join(dir, "cluster1", "extra.yaml"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"networks", "--manifests", dir, "-o", "table"},
		{"view", "--manifests", dir, "--host", "helloworld.sample", "--port", "5000", "--network", "network2"},
	} {
		out, err := run(t, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		if !strings.Contains(out, "skipped 2 objects of kinds not read: Deployment x1, ServiceAccount x1") {
			t.Errorf("%s output does not say what was skipped:\n%s", args[0], out)
		}
	}
}

// The commands people read print a table by default and the same fields as
// JSON or YAML with -o, as kubectl does.
func TestOutputFormatsAgree(t *testing.T) {
	view := []string{"view", "--manifests", exampleDir, "--host", "helloworld.sample", "--port", "5000", "--network", "network2"}
	for _, args := range [][]string{{"networks", "--manifests", exampleDir}, view} {
		table, err := run(t, args...)
		if err != nil {
			t.Fatalf("%s: %v", args[0], err)
		}
		if strings.HasPrefix(strings.TrimSpace(table), "{") {
			t.Errorf("%s prints JSON by default, want a table:\n%s", args[0], table)
		}
		js, err := run(t, append(args, "-o", "json")...)
		if err != nil {
			t.Fatalf("%s -o json: %v", args[0], err)
		}
		y, err := run(t, append(args, "-o", "yaml")...)
		if err != nil {
			t.Fatalf("%s -o yaml: %v", args[0], err)
		}
		var fromJSON, fromYAML any
		if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
			t.Fatalf("%s -o json is not JSON: %v", args[0], err)
		}
		if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
			t.Fatalf("%s -o yaml is not YAML: %v", args[0], err)
		}
		if diff := cmp.Diff(fromJSON, fromYAML); diff != "" {
			t.Errorf("%s: -o json and -o yaml differ (-json +yaml):\n%s", args[0], diff)
		}
	}
}
