package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEndpointAddrs: every cluster's endpoints of a port, at their target
// port, once each, sorted; invalid addresses and unknown hosts or ports
// give none.
func TestEndpointAddrs(t *testing.T) {
	s := NewStore(Config{})
	for _, c := range []ClusterID{"c1", "c2"} {
		svc := mkService(c, "sample", "db", sp("tcp-postgres", 5432))
		svc.ClusterIP = "None"
		s.UpsertService(svc)
	}
	s.UpsertEndpointSlice(mkSlice("c1", "sample", "db-a", "db", []EndpointPort{epp("tcp-postgres", 15432)},
		ready("db-0", "", "10.1.0.60"), ready("db-1", "", "10.1.0.9")))
	s.UpsertEndpointSlice(mkSlice("c2", "sample", "db-a", "db", []EndpointPort{epp("tcp-postgres", 15432)},
		ready("db-0", "", "10.2.0.60"), ready("x", "", "not-an-ip")))
	sn := s.Snapshot()
	h := ServiceHost("sample", "db", DefaultDomain)
	want := []EndpointAddr{{Address: "10.1.0.60", Port: 15432}, {Address: "10.1.0.9", Port: 15432}, {Address: "10.2.0.60", Port: 15432}}
	if diff := cmp.Diff(want, sn.EndpointAddrs(h, 5432)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := sn.EndpointAddrs(h, 5433); got != nil {
		t.Errorf("unknown port: %v", got)
	}
	if got := sn.EndpointAddrs("nope.sample.svc.cluster.local", 5432); got != nil {
		t.Errorf("unknown host: %v", got)
	}
}

// TestServiceMTLSStrict: STRICT when some cluster's mesh or namespace
// policy (or a workload policy selecting every workload) makes the
// service's namespace STRICT on the port.
func TestServiceMTLSStrict(t *testing.T) {
	svc := &ServiceInfo{Host: "db.sample.svc.cluster.local", Namespace: "sample", Name: "db"}
	mesh := PeerAuthentication{Cluster: "c2", Namespace: DefaultSystemNamespace, Name: "default", Mode: MTLSStrict}
	permissiveNS := PeerAuthentication{Cluster: "c2", Namespace: "sample", Name: "ns", Mode: MTLSPermissive}
	selected := PeerAuthentication{Cluster: "c1", Namespace: "sample", Name: "legacy", Mode: MTLSStrict, Selector: map[string]string{"app": "legacy"}}
	all := PeerAuthentication{Cluster: "c1", Namespace: "sample", Name: "all", Mode: MTLSPermissive, Selector: map[string]string{},
		PortLevel: map[uint32]MTLSMode{5432: MTLSStrict}}
	for _, tt := range []struct {
		name     string
		policies []PeerAuthentication
		port     uint32
		want     bool
	}{
		{"none: PERMISSIVE", nil, 5432, false},
		{"mesh STRICT in another cluster", []PeerAuthentication{mesh}, 5432, true},
		{"namespace PERMISSIVE overrides", []PeerAuthentication{mesh, permissiveNS}, 5432, false},
		{"a workload selector is not the service's", []PeerAuthentication{selected}, 5432, false},
		{"an empty selector's port level", []PeerAuthentication{all}, 5432, true},
		{"an empty selector's other port", []PeerAuthentication{all}, 80, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(Config{})
			for i := range tt.policies {
				p := tt.policies[i]
				s.UpsertPeerAuthentication(&p)
			}
			if got := s.Snapshot().ServiceMTLSStrict(svc, tt.port); got != tt.want {
				t.Errorf("ServiceMTLSStrict = %t, want %t", got, tt.want)
			}
		})
	}
}

// TestPodGateways: an endpoint of a headless service is reached through
// its network's gateways (the per-pod route) only from another network,
// when that network has gateways, when it speaks mesh mTLS and when the
// host is not cluster-local; the gateway of its network passes it.
func TestPodGateways(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"})
	s.UpsertNamespace(&Namespace{Cluster: "c2", Name: "istio-system", Network: "n2"})
	s.UpsertNamespace(&Namespace{Cluster: "c3", Name: "istio-system", Network: "n3"})
	s.UpsertService(lbGateway("c2", "n2", "192.0.2.2", "192.0.2.3"))
	for _, c := range []ClusterID{"c1", "c2", "c3"} {
		for _, name := range []string{"db", "cache"} {
			svc := mkService(c, "sample", name, sp("tcp-postgres", 5432))
			svc.ClusterIP = "None"
			s.UpsertService(svc)
		}
	}
	s.UpsertPod(mkPod("c1", "sample", "db-0", "", true, "db"))
	s.UpsertPod(mkPod("c2", "sample", "db-1", "", true, "db"))
	s.UpsertPod(mkPod("c2", "sample", "db-2", "", false, "db"))
	s.UpsertPod(mkPod("c3", "sample", "db-3", "", true, "db"))
	s.UpsertEndpointSlice(mkSlice("c1", "sample", "db-a", "db", []EndpointPort{epp("tcp-postgres", 5432)}, ready("db-0", "", "10.1.0.60")))
	s.UpsertEndpointSlice(mkSlice("c2", "sample", "db-a", "db", []EndpointPort{epp("tcp-postgres", 5432)},
		ready("db-1", "", "10.2.0.60"), ready("db-2", "", "10.2.0.61")))
	s.UpsertEndpointSlice(mkSlice("c3", "sample", "db-a", "db", []EndpointPort{epp("tcp-postgres", 5432)}, ready("db-3", "", "10.3.0.60")))
	s.UpsertPod(mkPod("c2", "sample", "cache-0", "", true, "cache"))
	s.UpsertEndpointSlice(mkSlice("c2", "sample", "cache-a", "cache", []EndpointPort{epp("tcp-postgres", 5432)}, ready("cache-0", "", "10.2.0.70")))
	s.SetMeshConfig(&MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"cache.sample.svc.cluster.local"}, ClusterLocal: true}}})
	sn := s.Snapshot()
	db := ServiceHost("sample", "db", DefaultDomain)
	cache := ServiceHost("sample", "cache", DefaultDomain)

	addrs := sn.EndpointAddrs(db, 5432)
	want := []EndpointAddr{
		{Address: "10.1.0.60", Port: 5432, Network: "n1", MTLS: true},
		{Address: "10.2.0.60", Port: 5432, Network: "n2", MTLS: true},
		{Address: "10.2.0.61", Port: 5432, Network: "n2"},
		{Address: "10.3.0.60", Port: 5432, Network: "n3", MTLS: true},
	}
	if diff := cmp.Diff(want, addrs); diff != "" {
		t.Fatalf("EndpointAddrs (-want +got):\n%s", diff)
	}
	gws := func(h Host, e EndpointAddr, from NetworkID) []string {
		var out []string
		for _, g := range sn.PodGateways(h, e, from) {
			out = append(out, g.Address)
		}
		return out
	}
	n2 := []string{"192.0.2.2", "192.0.2.3"}
	for _, tt := range []struct {
		name string
		h    Host
		e    EndpointAddr
		from NetworkID
		want []string
	}{
		{"same network: directly", db, addrs[0], "n1", nil},
		{"other network with gateways, mTLS", db, addrs[1], "n1", n2},
		{"from no network", db, addrs[1], "", n2},
		{"other network, no mTLS", db, addrs[2], "n1", nil},
		{"other network without gateways", db, addrs[3], "n1", nil},
		{"own network of the gateway", db, addrs[1], "n2", nil},
		{"cluster-local host", cache, EndpointAddr{Address: "10.2.0.70", Port: 5432, Network: "n2", MTLS: true}, "n1", nil},
	} {
		if diff := cmp.Diff(tt.want, gws(tt.h, tt.e, tt.from)); diff != "" {
			t.Errorf("%s: PodGateways (-want +got):\n%s", tt.name, diff)
		}
	}

	if diff := cmp.Diff([]EndpointAddr{addrs[1]}, sn.GatewayPods(db, 5432, "n2")); diff != "" {
		t.Errorf("GatewayPods n2 (-want +got):\n%s", diff)
	}
	if got := sn.GatewayPods(cache, 5432, "n2"); got != nil {
		t.Errorf("GatewayPods of a cluster-local host: %v, want none", got)
	}
	if got := sn.GatewayPods(db, 5432, ""); got != nil {
		t.Errorf("GatewayPods of the empty network: %v, want none", got)
	}
	if got := PodHost(db, "fd00::1"); got != "fd00--1.db.sample.svc.cluster.local" {
		t.Errorf("PodHost of an IPv6 address: %q", got)
	}
}
