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
	want := []EndpointAddr{{"10.1.0.60", 15432}, {"10.1.0.9", 15432}, {"10.2.0.60", 15432}}
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
