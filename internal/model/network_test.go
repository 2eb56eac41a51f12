package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecideNetwork(t *testing.T) {
	mn := &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
		"cidr-net": {Endpoints: []NetworkEndpoints{{FromCIDR: mustPrefix("10.10.0.0/16")}, {FromCIDR: mustPrefix("fd00:10::/32")}}},
		"reg-net":  {Endpoints: []NetworkEndpoints{{FromRegistry: "c-reg"}}},
	}}
	nc := newNetConfig(mn, "istio-system", map[ClusterID]NetworkID{"c-ns": "ns-net", "c-reg": "ns-net"})
	labeled := &Pod{Name: "p1", Network: "pod-net"}
	unlabeled := &Pod{Name: "p1"}
	tests := []struct {
		name    string
		cluster ClusterID
		addr    string
		pod     *Pod
		want    netDecision
	}{
		{
			name: "1. fromCidr wins over every other rule, and the disagreeing pod label is warned about",
			// c-reg is also fromRegistry reg-net and labeled ns-net.
			cluster: "c-reg", addr: "10.10.1.1", pod: labeled,
			want: netDecision{Network: "cidr-net", Rule: ruleCIDR, Warning: `endpoint c-reg/ns1/p1 10.10.1.1: pod label topology.istio.io/network="pod-net" disagrees with meshNetworks fromCidr 10.10.0.0/16 (network "cidr-net"); meshNetworks wins: fix the label or the rule`},
		},
		{
			name:    "1. fromCidr, IPv6",
			cluster: "c-none", addr: "fd00:10::5", pod: unlabeled,
			want: netDecision{Network: "cidr-net", Rule: ruleCIDR},
		},
		{
			name:    "1. fromCidr, IPv4-mapped address",
			cluster: "c-none", addr: "::ffff:10.10.0.7",
			want: netDecision{Network: "cidr-net", Rule: ruleCIDR},
		},
		{
			name:    "2. fromRegistry when no CIDR matches; the namespace label disagrees",
			cluster: "c-reg", addr: "10.99.0.1", pod: unlabeled,
			want: netDecision{Network: "reg-net", Rule: ruleRegistry, Warning: `endpoint c-reg/ns1/p1 10.99.0.1: namespace label topology.istio.io/network on c-reg/istio-system="ns-net" disagrees with meshNetworks fromRegistry c-reg (network "reg-net"); meshNetworks wins: fix the label or the rule`},
		},
		{
			name:    "2. fromRegistry, the pod label (which would decide before the namespace's) disagrees",
			cluster: "c-reg", addr: "10.99.0.1", pod: labeled,
			want: netDecision{Network: "reg-net", Rule: ruleRegistry, Warning: `endpoint c-reg/ns1/p1 10.99.0.1: pod label topology.istio.io/network="pod-net" disagrees with meshNetworks fromRegistry c-reg (network "reg-net"); meshNetworks wins: fix the label or the rule`},
		},
		{
			name:    "2. fromRegistry, agreeing label: no warning",
			cluster: "c-reg", addr: "10.99.0.1", pod: &Pod{Name: "p1", Network: "reg-net"},
			want: netDecision{Network: "reg-net", Rule: ruleRegistry},
		},
		{
			name:    "3. pod label over the namespace label",
			cluster: "c-ns", addr: "10.99.0.1", pod: labeled,
			want: netDecision{Network: "pod-net", Rule: rulePodLabel},
		},
		{
			name:    "4. namespace label",
			cluster: "c-ns", addr: "10.99.0.1", pod: unlabeled,
			want: netDecision{Network: "ns-net", Rule: ruleNamespaceLabel},
		},
		{
			name:    "4. namespace label, pod unknown",
			cluster: "c-ns", addr: "10.99.0.1",
			want: netDecision{Network: "ns-net", Rule: ruleNamespaceLabel},
		},
		{
			name:    "5. nothing: the empty network",
			cluster: "c-none", addr: "10.99.0.1", pod: unlabeled,
			want: netDecision{},
		},
		{
			name:    "an address that is not an IP skips the CIDR rule",
			cluster: "c-none", addr: "not-an-ip", pod: labeled,
			want: netDecision{Network: "pod-net", Rule: rulePodLabel},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			podName := ""
			if tt.pod != nil {
				podName = tt.pod.Name
			}
			got := nc.decide(tt.cluster, "ns1", podName, tt.addr, tt.pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideWarningWithoutPod(t *testing.T) {
	mn := &MeshNetworks{Networks: map[NetworkID]MeshNetwork{"a": {Endpoints: []NetworkEndpoints{{FromRegistry: "c1"}}}}}
	nc := newNetConfig(mn, "istio-system", map[ClusterID]NetworkID{"c1": "b"})
	got := nc.decide("c1", "ns", "", "10.0.0.1", nil).Warning
	want := `endpoint c1/ns/- 10.0.0.1: namespace label topology.istio.io/network on c1/istio-system="b" disagrees with meshNetworks fromRegistry c1 (network "a"); meshNetworks wins: fix the label or the rule`
	if got != want {
		t.Errorf("warning = %q, want %q", got, want)
	}
}

func TestClustersOf(t *testing.T) {
	mn := &MeshNetworks{Networks: map[NetworkID]MeshNetwork{
		"a": {Endpoints: []NetworkEndpoints{{FromRegistry: "c2"}, {FromRegistry: "c1"}}},
		"b": {Endpoints: []NetworkEndpoints{{FromCIDR: mustPrefix("10.0.0.0/8")}}},
	}}
	// c1 is labeled b but fromRegistry puts it in a; c3 is labeled b.
	nc := newNetConfig(mn, "istio-system", map[ClusterID]NetworkID{"c1": "b", "c3": "b"})
	type result struct {
		Clusters []ClusterID
		All      bool
	}
	tests := []struct {
		network NetworkID
		want    result
	}{
		{"a", result{Clusters: []ClusterID{"c1", "c2"}}},
		{"b", result{Clusters: []ClusterID{"c3"}}},
		{"c", result{All: true}},
	}
	for _, tt := range tests {
		t.Run(string(tt.network), func(t *testing.T) {
			cs, all := nc.clustersOf(tt.network)
			if diff := cmp.Diff(tt.want, result{cs, all}); diff != "" {
				t.Errorf("clustersOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodNetwork(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "other", Network: "ignored"})
	s.SetMeshNetworks(mustParse(t, `
networks:
  reg:
    endpoints:
    - fromRegistry: c3
    gateways:
    - address: 1.1.1.1
      port: 15443
`))
	for _, tc := range []struct {
		c     ClusterID
		label NetworkID
		want  NetworkID
	}{
		{"c1", "", "n1"},           // the system namespace's label
		{"c1", "podnet", "podnet"}, // the pod's label wins over it
		{"c2", "", ""},             // a cluster without either
		{"c3", "podnet", "reg"},    // meshNetworks fromRegistry wins over both
	} {
		if got := s.PodNetwork(tc.c, tc.label); got != tc.want {
			t.Errorf("PodNetwork(%s, %q) = %q, want %q", tc.c, tc.label, got, tc.want)
		}
	}
}
