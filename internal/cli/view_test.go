package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// exampleDir is the bundled home example, relative to this package.
const exampleDir = "../../examples/home"

// run executes the causeway command with args and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestView(t *testing.T) {
	meshNetworks := filepath.Join(exampleDir, "mesh-networks.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "network2 sees v2 directly and v1 through network1's load balancer",
			args: []string{"--host", "helloworld.sample", "--port", "5000", "--network", "network2", "-o", "json"},
			want: `{
  "cluster": "outbound|5000||helloworld.sample.svc.cluster.local",
  "network": "network2",
  "endpoints": [
    {
      "address": "10.20.1.21",
      "port": 5000,
      "weight": 1,
      "locality": "home/rack2/",
      "cluster": "cluster2",
      "network": "network2",
      "gateway": false
    },
    {
      "address": "192.168.1.240",
      "port": 15443,
      "weight": 1,
      "locality": "home/rack1/",
      "cluster": "cluster1",
      "network": "network1",
      "gateway": true
    }
  ]
}
`,
		},
		{
			name: "network1 sees only the node running network2's gateway pod; cluster shows the cluster IP",
			args: []string{"--host", "helloworld.sample.svc.cluster.local", "--port", "5000", "--network", "network1", "--cluster", "cluster1", "-o", "table"},
			want: `cluster:        outbound|5000||helloworld.sample.svc.cluster.local
proxy network:  network1
proxy cluster:  cluster1 (service cluster IP 10.96.45.10)

ADDRESS       PORT   WEIGHT  LOCALITY     CLUSTER   NETWORK   GATEWAY
10.10.2.21    5000   1       home/rack1/  cluster1  network1  no
192.168.2.22  31443  1       home/rack2/  cluster2  network2  yes
`,
		},
		{
			name: "selector mode hands out all three nodes, scale 3",
			args: []string{"--host", "helloworld.sample.svc", "--port", "5000", "--network", "network1", "--nodeport-gateways", "selector", "-o", "table"},
			want: `cluster:        outbound|5000||helloworld.sample.svc.cluster.local
proxy network:  network1

ADDRESS       PORT   WEIGHT  LOCALITY     CLUSTER   NETWORK   GATEWAY
10.10.2.21    5000   3       home/rack1/  cluster1  network1  no
192.168.2.21  31443  1       home/rack2/  cluster2  network2  yes
192.168.2.22  31443  1       home/rack2/  cluster2  network2  yes
192.168.2.23  31443  1       home/rack2/  cluster2  network2  yes
`,
		},
		{
			name: "meshNetworks gateways and selector mode, from network2",
			args: []string{"--host", "helloworld.sample", "--port", "5000", "--network", "network2", "--mesh-networks", meshNetworks, "--nodeport-gateways", "selector", "-o", "table"},
			want: `cluster:        outbound|5000||helloworld.sample.svc.cluster.local
proxy network:  network2

ADDRESS        PORT   WEIGHT  LOCALITY     CLUSTER   NETWORK   GATEWAY
10.20.1.21     5000   3       home/rack2/  cluster2  network2  no
192.168.1.240  15443  3       home/rack1/  cluster1  network1  yes
`,
		},
		{
			name: "a proxy without a network reaches both networks through their gateways",
			args: []string{"--host", "sleep.sample", "--port", "80", "--network", "", "--cluster", "cluster2", "-o", "table"},
			want: `cluster:        outbound|80||sleep.sample.svc.cluster.local
proxy network:  (none)
proxy cluster:  cluster2 (service cluster IP 10.97.80.5)

ADDRESS        PORT   WEIGHT  LOCALITY     CLUSTER   NETWORK   GATEWAY
192.168.1.240  15443  1       home/rack1/  cluster1  network1  yes
192.168.2.22   31443  1       home/rack2/  cluster2  network2  yes
`,
		},
		{
			name: "a network the mesh does not know sees every endpoint through gateways",
			args: []string{"--host", "sleep.sample.", "--port", "80", "--network", "elsewhere", "-o", "json"},
			want: `{
  "cluster": "outbound|80||sleep.sample.svc.cluster.local",
  "network": "elsewhere",
  "endpoints": [
    {
      "address": "192.168.1.240",
      "port": 15443,
      "weight": 1,
      "locality": "home/rack1/",
      "cluster": "cluster1",
      "network": "network1",
      "gateway": true
    },
    {
      "address": "192.168.2.22",
      "port": 31443,
      "weight": 1,
      "locality": "home/rack2/",
      "cluster": "cluster2",
      "network": "network2",
      "gateway": true
    }
  ]
}
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, append([]string{"view", "--manifests", exampleDir}, tc.args...)...)
			if err != nil {
				t.Fatalf("view: %v\n%s", err, got)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("view output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestViewErrors(t *testing.T) {
	dir := t.TempDir()
	badNetworks := filepath.Join(dir, "bad-networks.yaml")
	if err := os.WriteFile(badNetworks, []byte("networks:\n  n1:\n    endpoints:\n    - fromCidr: 10.0.0.0/33\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := []string{"view", "--manifests", exampleDir, "--host", "helloworld.sample", "--port", "5000", "--network", "network1"}
	with := func(extra ...string) []string { return append(append([]string{}, ok...), extra...) }
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"no manifests", []string{"view", "--host", "a.b", "--port", "1", "--network", "n"}, []string{"--manifests is required", "examples/home"}},
		{"no host", []string{"view", "--manifests", exampleDir, "--port", "1", "--network", "n"}, []string{"--host is required"}},
		{"no port", []string{"view", "--manifests", exampleDir, "--host", "a.b", "--network", "n"}, []string{"--port is required"}},
		{"no network", []string{"view", "--manifests", exampleDir, "--host", "a.b", "--port", "1"}, []string{"--network is required", `--network ""`}},
		{"port not a number", with("--port", "http"), []string{"--port", "http"}},
		{"bad output", with("-o", "wide"), []string{`-o "wide": want table, json or yaml`}},
		{"bad policy", with("--no-gateway-endpoints", "keep"), []string{`--no-gateway-endpoints "keep": want drop or direct`}},
		{"bad nodeport mode", with("--nodeport-gateways", "nodes"), []string{`--nodeport-gateways "nodes": want endpoints or selector`}},
		{"bad domain", with("--domain", ""), []string{`--domain ""`}},
		{"bad system namespace", with("--system-namespace", ""), []string{"--system-namespace is empty"}},
		{"unknown host", with("--host", "hello.sample"), []string{
			`unknown host hello.sample.svc.cluster.local ("hello.sample" read as hello.sample.svc.cluster.local)`,
			"helloworld.sample.svc.cluster.local, istio-eastwestgateway.istio-system.svc.cluster.local, sleep.sample.svc.cluster.local",
		}},
		{"unknown port", with("--port", "8080"), []string{"service helloworld.sample.svc.cluster.local has no port 8080: its ports are 5000 (http)"}},
		{"unknown cluster", with("--cluster", "cluster3"), []string{`--cluster "cluster3" is not a cluster of the manifests: want one of cluster1, cluster2`}},
		{"missing manifests directory", []string{"view", "--manifests", filepath.Join(dir, "nope"), "--host", "a.b", "--port", "1", "--network", "n"}, []string{"manifests directory", "nope"}},
		{"empty manifests directory", []string{"view", "--manifests", dir, "--host", "a.b", "--port", "1", "--network", "n"}, []string{"holds no cluster folders"}},
		{"missing mesh networks file", with("--mesh-networks", filepath.Join(dir, "none.yaml")), []string{"mesh networks file", "none.yaml"}},
		{"invalid mesh networks file", with("--mesh-networks", badNetworks), []string{"mesh networks file " + badNetworks, "10.0.0.0/33"}},
		{"arguments", with("extra"), []string{"unknown command", "extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.args...)
			if err == nil {
				t.Fatalf("view succeeded, want an error; output:\n%s", out)
			}
			testkit.ContainsAll(t, "error", err.Error(), tc.want...)
		})
	}
}

func TestExpandHost(t *testing.T) {
	tests := []struct{ in, domain, want string }{
		{"helloworld.sample", "cluster.local", "helloworld.sample.svc.cluster.local"},
		{"helloworld.sample.svc", "cluster.local", "helloworld.sample.svc.cluster.local"},
		{"helloworld.sample.svc.cluster.local", "cluster.local", "helloworld.sample.svc.cluster.local"},
		{"helloworld.sample.svc.cluster.local.", "cluster.local", "helloworld.sample.svc.cluster.local"},
		{"helloworld.sample", "mesh.example", "helloworld.sample.svc.mesh.example"},
		{"helloworld.sample.svc.cluster.local", "mesh.example", "helloworld.sample.svc.cluster.local"},
		{"helloworld", "cluster.local", "helloworld"},
		{"api.example.com", "cluster.local", "api.example.com"},
	}
	for _, tc := range tests {
		if got := expandHost(tc.in, tc.domain); string(got) != tc.want {
			t.Errorf("expandHost(%q, %q) = %q, want %q", tc.in, tc.domain, got, tc.want)
		}
	}
}

func TestViewHelp(t *testing.T) {
	for _, cmd := range []string{"view", "networks"} {
		out, err := run(t, cmd, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		testkit.ContainsAll(t, cmd+" --help", out, "Examples:", "causeway "+cmd+" --manifests examples/home", "--mesh-networks", "--nodeport-gateways", "-o, --output")
	}
}
