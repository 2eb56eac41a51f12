package model

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestParseMeshNetworks(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *MeshNetworks
	}{
		{
			name: "empty input is no networks",
			in:   "  \n",
			want: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{}},
		},
		{
			name: "istio's documented shape",
			in: `
networks:
  network1:
    endpoints:
    - fromRegistry: cluster1
    - fromCidr: 10.1.0.0/16
    gateways:
    - registryServiceName: istio-eastwestgateway.istio-system.svc.cluster.local
      port: 15443
  network2:
    endpoints:
    - fromRegistry: cluster2
    gateways:
    - address: 192.0.2.10
      port: 15443
      locality: us-east1/us-east1-b/rack1
`,
			want: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"network1": {
					Endpoints: []NetworkEndpoints{{FromRegistry: "cluster1"}, {FromCIDR: netip.MustParsePrefix("10.1.0.0/16")}},
					Gateways:  []NetworkGateway{{RegistryServiceName: "istio-eastwestgateway.istio-system.svc.cluster.local", Port: 15443}},
				},
				"network2": {
					Endpoints: []NetworkEndpoints{{FromRegistry: "cluster2"}},
					Gateways:  []NetworkGateway{{Address: "192.0.2.10", Port: 15443, Locality: "us-east1/us-east1-b/rack1"}},
				},
			}},
		},
		{
			name: "JSON, proto field names, port as string, bare IP and unmasked CIDR",
			in:   `{"networks": {"n1": {"endpoints": [{"from_cidr": "10.1.2.3/16"}, {"from_registry": "c1"}, {"fromCidr": "192.0.2.1"}], "gateways": [{"registry_service_name": "gw.ns.svc.cluster.local", "port": "443"}, {"address": "gw.example.com", "port": 15443}]}}}`,
			want: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"n1": {
					Endpoints: []NetworkEndpoints{
						{FromCIDR: netip.MustParsePrefix("10.1.0.0/16")},
						{FromRegistry: "c1"},
						{FromCIDR: netip.MustParsePrefix("192.0.2.1/32")},
					},
					Gateways: []NetworkGateway{
						{RegistryServiceName: "gw.ns.svc.cluster.local", Port: 443},
						{Address: "gw.example.com", Port: 15443},
					},
				},
			}},
		},
		{
			name: "a network with no body, and overlapping CIDRs inside one network",
			in: `
networks:
  empty:
  n1:
    endpoints:
    - fromCidr: 10.0.0.0/8
    - fromCidr: 10.1.0.0/16
`,
			want: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"empty": {},
				"n1":    {Endpoints: []NetworkEndpoints{{FromCIDR: netip.MustParsePrefix("10.0.0.0/8")}, {FromCIDR: netip.MustParsePrefix("10.1.0.0/16")}}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMeshNetworks([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseMeshNetworks: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMeshNetworksErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want are substrings of the error, in order of appearance.
		want []string
	}{
		{
			name: "unparseable YAML",
			in:   "networks: [unclosed",
			want: []string{"meshNetworks: cannot parse", "expected networks:"},
		},
		{
			name: "unknown field",
			in:   "networks:\n  n1:\n    endpoints:\n    - fromSubnet: 10.0.0.0/8\n",
			want: []string{"meshNetworks: cannot parse", "fromSubnet"},
		},
		{
			name: "bad CIDR",
			in:   "networks:\n  n1:\n    endpoints:\n    - fromCidr: 10.0.0.0/33\n",
			want: []string{`network "n1" endpoints[0]: fromCidr "10.0.0.0/33" is not a CIDR`},
		},
		{
			name: "overlapping CIDRs across networks",
			in: `networks:
  a:
    endpoints:
    - fromCidr: 10.0.0.0/8
  b:
    endpoints:
    - fromRegistry: c2
    - fromCidr: 10.20.0.0/16
`,
			want: []string{`network "b" endpoints[1]: fromCidr 10.20.0.0/16 overlaps 10.0.0.0/8 of network "a" endpoints[0]`},
		},
		{
			name: "overlapping CIDRs across networks, the larger one second",
			in: `networks:
  a:
    endpoints:
    - fromCidr: 10.20.1.0/24
  b:
    endpoints:
    - fromCidr: 10.0.0.0/8
`,
			want: []string{`network "b" endpoints[0]: fromCidr 10.0.0.0/8 overlaps 10.20.1.0/24 of network "a" endpoints[0]`},
		},
		{
			name: "the same CIDR in two networks",
			in:   "networks:\n  a:\n    endpoints:\n    - fromCidr: fd00::/64\n  b:\n    endpoints:\n    - fromCidr: fd00::1/64\n",
			want: []string{`network "b" endpoints[0]: fromCidr fd00::/64 overlaps fd00::/64 of network "a" endpoints[0]`},
		},
		{
			name: "registry under two networks",
			in:   "networks:\n  a:\n    endpoints:\n    - fromRegistry: c1\n  b:\n    endpoints:\n    - fromRegistry: c2\n    - fromRegistry: c1\n",
			want: []string{`network "b" endpoints[1]: fromRegistry "c1" is already in network "a" endpoints[0]`},
		},
		{
			name: "endpoint with both rules",
			in:   "networks:\n  a:\n    endpoints:\n    - fromRegistry: c1\n      fromCidr: 10.0.0.0/8\n",
			want: []string{`network "a" endpoints[0]: both fromCidr 10.0.0.0/8 and fromRegistry "c1" are set`},
		},
		{
			name: "endpoint with neither rule",
			in:   "networks:\n  a:\n    endpoints:\n    - {}\n",
			want: []string{`network "a" endpoints[0]: neither fromCidr nor fromRegistry is set`},
		},
		{
			name: "gateway with both address and registryServiceName",
			in:   "networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n      registryServiceName: gw.ns.svc.cluster.local\n      port: 15443\n",
			want: []string{`network "a" gateways[0]: both registryServiceName "gw.ns.svc.cluster.local" and address "1.2.3.4" are set`},
		},
		{
			name: "gateway with neither address nor registryServiceName",
			in:   "networks:\n  a:\n    gateways:\n    - port: 15443\n",
			want: []string{`network "a" gateways[0]: neither registryServiceName nor address is set`},
		},
		{
			name: "gateway port out of range",
			in:   "networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n      port: 70000\n",
			want: []string{`network "a" gateways[0]: port 70000 is out of range`},
		},
		{
			name: "gateway port missing",
			in:   "networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n",
			want: []string{`network "a" gateways[0]: port 0 is out of range`},
		},
		{
			name: "gateway port not a number",
			in:   "networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n      port: https\n",
			want: []string{`network "a" gateways[0]: port https is not a whole number`},
		},
		{
			name: "gateway address neither IP nor DNS name",
			in:   "networks:\n  a:\n    gateways:\n    - address: not_a_host!\n      port: 15443\n",
			want: []string{`network "a" gateways[0]: address "not_a_host!" is neither an IP nor a DNS name`},
		},
		{
			name: "locality with too many parts",
			in:   "networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n      port: 1\n      locality: a/b/c/d\n",
			want: []string{`network "a" gateways[0]: locality "a/b/c/d" has more than three parts`},
		},
		{
			name: "every mistake is reported, networks in order",
			in:   "networks:\n  b:\n    gateways:\n    - port: 1\n  a:\n    endpoints:\n    - fromCidr: nope\n",
			want: []string{`network "a" endpoints[0]`, `network "b" gateways[0]`},
		},
		{
			name: "empty network name",
			in:   `{"networks": {"": {}}}`,
			want: []string{"a network has an empty name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mn, err := ParseMeshNetworks([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseMeshNetworks = %+v, want an error", mn)
			}
			testkit.ContainsInOrder(t, "error", err.Error(), tt.want...)
		})
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	tests := []struct {
		name string
		mn   *MeshNetworks
		want string // "" for valid
	}{
		{name: "nil is valid", mn: nil},
		{
			name: "valid",
			mn: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"n1": {Endpoints: []NetworkEndpoints{{FromCIDR: netip.MustParsePrefix("10.0.0.0/8")}}, Gateways: []NetworkGateway{{Address: "1.1.1.1", Port: 15443}}},
			}},
		},
		{
			name: "overlap of an unmasked prefix is found",
			mn: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"n1": {Endpoints: []NetworkEndpoints{{FromCIDR: netip.MustParsePrefix("10.1.2.3/16")}}},
				"n2": {Endpoints: []NetworkEndpoints{{FromCIDR: netip.MustParsePrefix("10.1.9.0/24")}}},
			}},
			want: `meshNetworks: network "n2" endpoints[0]: fromCidr 10.1.9.0/24 overlaps 10.1.0.0/16 of network "n1" endpoints[0]: an address belongs to one network; make the CIDRs disjoint`,
		},
		{
			name: "bad registryServiceName",
			mn: &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
				"n1": {Gateways: []NetworkGateway{{RegistryServiceName: "not a host", Port: 1}}},
			}},
			want: `meshNetworks: network "n1" gateways[0]: registryServiceName "not a host" is not a hostname like NAME.NAMESPACE.svc.cluster.local`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.mn.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseMeshNetworks(f *testing.F) {
	seeds := []string{
		"",
		"networks: {}",
		"networks:\n  n1:\n    endpoints:\n    - fromRegistry: c1\n    - fromCidr: 10.1.0.0/16\n    gateways:\n    - registryServiceName: gw.istio-system.svc.cluster.local\n      port: 15443\n",
		"networks:\n  n2:\n    gateways:\n    - address: 192.0.2.1\n      port: 443\n      locality: r/z/s\n",
		`{"networks": {"a": {"endpoints": [{"from_cidr": "fd00::/8"}]}, "b": {"endpoints": [{"fromCidr": "fd00:1::/32"}]}}}`,
		"networks:\n  a:\n    endpoints:\n    - fromRegistry: c1\n  b:\n    endpoints:\n    - fromRegistry: c1\n",
		"networks:\n  a:\n    gateways:\n    - address: 1.2.3.4\n      registryServiceName: x.y.svc.cluster.local\n      port: \"99999\"\n",
		"networks: [1, 2]",
		"networks:\n  a: &x {endpoints: [{fromCidr: 10.0.0.0/8}]}\n  b: *x\n",
		"{{{{",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mn, err := ParseMeshNetworks(data)
		if err != nil {
			if mn != nil {
				t.Fatalf("error %v with a non-nil result", err)
			}
			return
		}
		if err := mn.Validate(); err != nil {
			t.Fatalf("ParseMeshNetworks accepted a value that does not validate: %v", err)
		}
		// The store must accept whatever parses: build the network rules and
		// the gateways from it.
		nc := newNetConfig(mn, DefaultSystemNamespace, nil)
		for n, net := range mn.Networks {
			for _, ep := range net.Endpoints {
				if ep.FromCIDR.IsValid() {
					if d := nc.decide("c", "ns", "", ep.FromCIDR.Addr().String(), nil); d.Network != n {
						t.Fatalf("address %s of %s is in network %q, want %q", ep.FromCIDR.Addr(), ep.FromCIDR, d.Network, n)
					}
				}
			}
		}
		discoverGateways(&gatewayInputs{mn: mn, domain: DefaultDomain, net: nc, clusters: map[ClusterID]*clusterState{}})
	})
}
