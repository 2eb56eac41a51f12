package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// reportMesh: c1 in n1 by fromRegistry and its namespace label, with a
// labeled gateway; c2's pods labeled n2, no gateway; c3's endpoint in n3
// by fromCidr while c3's namespace says n9, a meshNetworks gateway; c4
// unlabeled (the empty network).
func reportMesh(t *testing.T, policy NoGatewayPolicy) *Snapshot {
	t.Helper()
	s := NewStore(Config{NoGatewayEndpoints: policy})
	s.SetMeshNetworks(mustParse(t, `networks:
  n1:
    endpoints:
    - fromRegistry: c1
  n3:
    endpoints:
    - fromCidr: 10.3.0.0/16
    gateways:
    - address: 192.0.2.3
      port: 15443
`))
	objs := []any{
		&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"},
		&Namespace{Cluster: "c3", Name: "istio-system", Network: "n9"},
		lbGateway("c1", "n1", "198.51.100.1"),
		mkPod("c1", "ns", "p1", "", true, "sa"),
		mkPod("c1", "ns", "p2", "", true, "sa"),
		mkPod("c2", "ns", "p3", "n2", true, "sa"),
		mkPod("c2", "ns", "p4", "n2", true, "sa"),
		mkPod("c3", "ns", "p5", "", true, "sa"),
	}
	for c, eps := range map[ClusterID][]SliceEndpoint{
		"c1": {ready("p1", "", "10.1.0.1"), ready("p2", "", "10.1.0.2")},
		"c2": {ready("p3", "", "10.2.0.1"), ready("p4", "", "10.2.0.2")},
		"c3": {ready("p5", "", "10.3.0.1")},
		"c4": {ready("p6", "", "10.4.0.1")},
	} {
		objs = append(objs, mkService(c, "ns", "a", sp("http", 80)), mkSlice(c, "ns", "a-1", "a", []EndpointPort{epp("http", 8080)}, eps...))
	}
	for _, o := range objs {
		apply(t, s, o)
	}
	return s.Snapshot()
}

func TestNetworksReport(t *testing.T) {
	lb := Gateway{Address: "198.51.100.1", Port: 15443, Network: "n1", Cluster: "c1", Source: "service c1/istio-system/istio-eastwestgateway (LoadBalancer ingress)"}
	mnGw := Gateway{Address: "192.0.2.3", Port: 15443, Network: "n3", Source: "meshNetworks address"}
	networks := []NetworkReport{
		{Name: "", Membership: []string{"no rule: endpoints that no rule placed in a network"}, Clusters: []ClusterID{"c4"}, Endpoints: 1, Gateways: []Gateway{}},
		{Name: "n1", Membership: []string{"fromRegistry: c1", "namespace label: c1/istio-system"}, Clusters: []ClusterID{"c1"}, Endpoints: 2, Gateways: []Gateway{lb}},
		{Name: "n2", Membership: []string{"pod label: 2 pods"}, Clusters: []ClusterID{"c2"}, Endpoints: 2, Gateways: []Gateway{}},
		{Name: "n3", Membership: []string{"fromCidr: 10.3.0.0/16"}, Clusters: []ClusterID{"c3"}, Endpoints: 1, Gateways: []Gateway{mnGw}},
		{Name: "n9", Membership: []string{"namespace label: c3/istio-system"}, Clusters: []ClusterID{}, Gateways: []Gateway{}},
	}
	disagree := `endpoint c3/ns/p5 10.3.0.1: namespace label topology.istio.io/network on c3/istio-system="n9" disagrees with meshNetworks fromCidr 10.3.0.0/16 (network "n3"); meshNetworks wins: fix the label or the rule`
	tests := []struct {
		policy NoGatewayPolicy
		want   NetworksReport
		stats  Stats
	}{
		{
			policy: NoGatewayDrop,
			want: NetworksReport{Networks: networks, Warnings: []string{
				disagree,
				`network "n2" has no gateway: its 2 endpoints are left out of the views of other networks (--no-gateway-endpoints=drop); label its east-west gateway Service topology.istio.io/network=n2 or list gateways in meshNetworks`,
			}},
			stats: Stats{
				Services:         2,
				Endpoints:        map[ClusterID]map[NetworkID]int{"c1": {"n1": 2}, "c2": {"n2": 2}, "c3": {"n3": 1}, "c4": {"": 1}},
				DroppedNoGateway: map[NetworkID]int{"n2": 2},
				Networks:         4,
				Gateways:         2,
			},
		},
		{
			policy: NoGatewayDirect,
			want: NetworksReport{Networks: networks, Warnings: []string{
				disagree,
				`network "n2" has no gateway: its 2 endpoints are handed to other networks as directly reachable (--no-gateway-endpoints=direct)`,
			}},
			stats: Stats{
				Services:         2,
				Endpoints:        map[ClusterID]map[NetworkID]int{"c1": {"n1": 2}, "c2": {"n2": 2}, "c3": {"n3": 1}, "c4": {"": 1}},
				DroppedNoGateway: map[NetworkID]int{},
				Networks:         4,
				Gateways:         2,
			},
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			sn := reportMesh(t, tt.policy)
			if diff := cmp.Diff(tt.want, sn.Networks()); diff != "" {
				t.Errorf("Networks (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.stats, sn.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDroppedNeedsAnotherNetwork(t *testing.T) {
	// One named network without gateways and no other: no proxy of another
	// network exists to drop anything for.
	s := NewStore(Config{})
	for _, o := range []any{
		&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"},
		mkService("c1", "ns", "a", sp("http", 80)),
		mkSlice("c1", "ns", "a-1", "a", []EndpointPort{epp("http", 8080)}, ready("p1", "", "10.1.0.1")),
	} {
		apply(t, s, o)
	}
	sn := s.Snapshot()
	if got := sn.Stats().DroppedNoGateway; len(got) != 0 {
		t.Errorf("DroppedNoGateway = %v, want none", got)
	}
	if got := sn.Networks().Warnings; len(got) != 0 {
		t.Errorf("Warnings = %v, want none", got)
	}
}
