package model

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/causeway-mesh/causeway/internal/testreq"
)

func TestEndpointChangeReportsOnlyThatService(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 20, perCluster: 3})
	s.UpsertEndpointSlice(meshSlice(1, 7, 3, 1))
	want := Changes{Services: hosts(svcHost(7))}
	if diff := cmp.Diff(want, s.TakeChanges()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if c := s.TakeChanges(); !c.Empty() {
		t.Errorf("second TakeChanges = %+v, want empty", c)
	}
}

func TestNoOpUpdatesRecordNothing(t *testing.T) {
	m := meshSpec{clusters: 2, services: 5, perCluster: 2}
	const mn = "networks:\n  n1:\n    endpoints:\n    - fromRegistry: c1\n    gateways:\n    - address: 192.0.2.1\n      port: 15443\n"
	s := newMesh(t, Config{}, m)
	s.SetMeshNetworks(mustParse(t, mn))
	s.TakeChanges()
	before := s.Snapshot()
	// The same objects again, as an informer resync delivers them.
	m.build(s)
	s.SetMeshNetworks(mustParse(t, mn))
	if c := s.TakeChanges(); !c.Empty() {
		t.Errorf("changes after resync = %+v, want empty", c)
	}
	if after := s.Snapshot(); after != before {
		t.Errorf("Snapshot after a resync is a new value; want the previous one")
	}
}

// TestChanges walks a mesh through changes of every input kind and checks
// what each one reports: Full only when gateways, the scale or endpoint
// networks really changed.
func TestChanges(t *testing.T) {
	gwHost := ServiceHost("istio-system", "istio-eastwestgateway", "")
	nodePortGw := func(nodeA string) []any {
		return []any{
			&Service{
				Cluster: "c3", Namespace: "istio-system", Name: "istio-eastwestgateway", Type: ServiceTypeNodePort, Network: "n3",
				Ports: []ServicePort{{Name: "tls", Port: 15443, NodePort: 31443}},
			},
			mkSlice("c3", "istio-system", "gw-slice", "istio-eastwestgateway", []EndpointPort{epp("tls", 15443)}, ready("gw-pod", nodeA, "10.3.0.200")),
		}
	}
	steps := []struct {
		name string
		do   func(s *Store)
		want Changes
	}{
		{
			name: "gateway Service changed without changing gateways",
			do: func(s *Store) {
				g := lbGateway("c1", "n1", gwIP(1))
				g.ClusterIP = "172.20.9.9"
				s.UpsertService(g)
			},
			want: Changes{Services: hosts(gwHost)},
		},
		{
			name: "gateway Service gets another ingress IP",
			do: func(s *Store) {
				g := lbGateway("c1", "n1", gwIP(1), "198.51.100.99")
				g.ClusterIP = "172.20.9.9"
				s.UpsertService(g)
			},
			want: Changes{Full: true},
		},
		{
			name: "slice of a LoadBalancer gateway changes: its endpoints only",
			do: func(s *Store) {
				s.UpsertEndpointSlice(mkSlice("c1", "istio-system", "gw-slice", "istio-eastwestgateway", []EndpointPort{epp("tls", 15443)}, ready("gw-pod", "node-1-0", "10.1.0.200")))
			},
			want: Changes{Services: hosts(gwHost)},
		},
		{
			name: "a NodePort gateway appears in c3",
			do: func(s *Store) {
				s.UpsertNode(mkNode("c3", "a", nil, []string{"203.0.113.1"}, nil))
				s.UpsertNode(mkNode("c3", "b", nil, []string{"203.0.113.2"}, nil))
				for _, o := range nodePortGw("a") {
					apply(t, s, o)
				}
			},
			want: Changes{Full: true, Services: hosts(gwHost)},
		},
		{
			name: "NodePort gateway slice changes, gateway pod on the same node",
			do: func(s *Store) {
				s.UpsertEndpointSlice(mkSlice("c3", "istio-system", "gw-slice", "istio-eastwestgateway", []EndpointPort{epp("tls", 15443)}, ready("gw-pod-2", "a", "10.3.0.201")))
			},
			want: Changes{Services: hosts(gwHost)},
		},
		{
			name: "NodePort gateway pod moves to node b",
			do: func(s *Store) {
				s.UpsertEndpointSlice(nodePortGw("b")[1].(*EndpointSlice))
			},
			want: Changes{Full: true, Services: hosts(gwHost)},
		},
		{
			name: "node without gateway pod changes address",
			do:   func(s *Store) { s.UpsertNode(mkNode("c3", "a", nil, []string{"203.0.113.111"}, nil)) },
			want: Changes{},
		},
		{
			name: "gateway node changes address",
			do:   func(s *Store) { s.UpsertNode(mkNode("c3", "b", nil, []string{"203.0.113.222"}, nil)) },
			want: Changes{Full: true},
		},
		{
			name: "node of a cluster without NodePort gateways changes a label not used",
			do: func(s *Store) {
				s.UpsertNode(mkNode("c1", "node-1-0", map[string]string{LabelRegion: "r", LabelZone: "z0", "other": "x"}, nil, []string{"10.1.255.0"}))
			},
			want: Changes{},
		},
		{
			name: "node zone changes: services with endpoints on it, not Full",
			do: func(s *Store) {
				s.UpsertNode(mkNode("c2", "node-2-1", map[string]string{LabelRegion: "r", LabelZone: "z9"}, nil, []string{"10.2.255.1"}))
			},
			// Endpoint j=1 of every service in c2 runs on node-2-1.
			want: Changes{Services: hosts(svcHost(0), svcHost(1), svcHost(2))},
		},
		{
			name: "label of a namespace other than the system namespace",
			do:   func(s *Store) { s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "default", Network: "n9"}) },
			want: Changes{},
		},
		{
			name: "system namespace updated with the same label",
			do:   func(s *Store) { s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"}) },
			want: Changes{},
		},
		{
			name: "meshNetworks with a rule no endpoint matches: nothing moves",
			do: func(s *Store) {
				s.SetMeshNetworks(mustParse(t, "networks:\n  n7:\n    endpoints:\n    - fromCidr: 192.168.0.0/16\n"))
			},
			want: Changes{},
		},
		{
			name: "the same meshNetworks again (a ConfigMap resync)",
			do: func(s *Store) {
				s.SetMeshNetworks(mustParse(t, "networks:\n  n7:\n    endpoints:\n    - fromCidr: 192.168.0.0/16\n"))
			},
			want: Changes{},
		},
		{
			name: "meshNetworks moves c2's endpoints to n1",
			do: func(s *Store) {
				s.SetMeshNetworks(mustParse(t, "networks:\n  n1:\n    endpoints:\n    - fromCidr: 10.2.0.0/16\n"))
			},
			want: Changes{Full: true, Services: hosts(svcHost(0), svcHost(1), svcHost(2))},
		},
		{
			name: "meshNetworks adds a gateway",
			do: func(s *Store) {
				s.SetMeshNetworks(mustParse(t, "networks:\n  n1:\n    endpoints:\n    - fromCidr: 10.2.0.0/16\n    gateways:\n    - address: 192.0.2.1\n      port: 15443\n"))
			},
			want: Changes{Full: true},
		},
		{
			name: "meshNetworks cleared: c2's endpoints back in n2, the gateway gone",
			do:   func(s *Store) { s.SetMeshNetworks(nil) },
			want: Changes{Full: true, Services: hosts(svcHost(0), svcHost(1), svcHost(2))},
		},
		{
			name: "system namespace label of c1 changes: its endpoints (the gateway's pod too) move to n2",
			do:   func(s *Store) { s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n2"}) },
			want: Changes{Full: true, Services: hosts(svcHost(0), svcHost(1), svcHost(2), gwHost)},
		},
		{
			name: "system namespace deleted in a cluster with no endpoints: nothing moves",
			do: func(s *Store) {
				s.UpsertNamespace(&Namespace{Cluster: "c9", Name: "istio-system", Network: "n9"})
				s.DeleteNamespace("c9", "istio-system")
			},
			want: Changes{},
		},
	}
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 3, perCluster: 2})
	for _, st := range steps {
		st.do(s)
		got := s.TakeChanges()
		if diff := cmp.Diff(st.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s: changes (-want +got):\n%s", st.name, diff)
		}
		s.Snapshot()
	}
}

func TestPodChangeReportsServicesReferencingIt(t *testing.T) {
	s := NewStore(Config{})
	for _, name := range []string{"a", "b", "c"} {
		s.UpsertService(mkService("c1", "ns", name, sp("http", 80)))
	}
	// Pods p1 backs services a and b; p2 backs c.
	s.UpsertEndpointSlice(mkSlice("c1", "ns", "a-1", "a", []EndpointPort{epp("http", 8080)}, ready("p1", "", "10.0.0.1")))
	s.UpsertEndpointSlice(mkSlice("c1", "ns", "b-1", "b", []EndpointPort{epp("http", 8080)}, ready("p1", "", "10.0.0.1")))
	s.UpsertEndpointSlice(mkSlice("c1", "ns", "c-1", "c", []EndpointPort{epp("http", 8080)}, ready("p2", "", "10.0.0.2")))
	s.UpsertPod(mkPod("c1", "ns", "p1", "", false, "sa"))
	s.UpsertPod(mkPod("c1", "ns", "p2", "", false, "sa"))
	s.TakeChanges()

	steps := []struct {
		name string
		pod  *Pod
		want Changes
	}{
		{"network label", mkPod("c1", "ns", "p1", "n1", false, "sa"), Changes{Services: hosts("a.ns.svc.cluster.local", "b.ns.svc.cluster.local")}},
		{"tlsMode label", mkPod("c1", "ns", "p1", "n1", true, "sa"), Changes{Services: hosts("a.ns.svc.cluster.local", "b.ns.svc.cluster.local")}},
		{"service account", mkPod("c1", "ns", "p2", "", false, "sa2"), Changes{Services: hosts("c.ns.svc.cluster.local")}},
		{"nothing the model reads", func() *Pod { p := mkPod("c1", "ns", "p2", "", false, "sa2"); p.IPs = []string{"10.0.0.2"}; return p }(), Changes{}},
		{"pod nobody references", mkPod("c1", "ns", "p3", "n1", true, "sa"), Changes{}},
	}
	for _, st := range steps {
		s.UpsertPod(st.pod)
		if diff := cmp.Diff(st.want, s.TakeChanges(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: changes (-want +got):\n%s", st.name, diff)
		}
	}
	s.DeletePod(ObjectKey{Cluster: "c1", NamespacedName: NamespacedName{Namespace: "ns", Name: "p1"}})
	if diff := cmp.Diff(Changes{Services: hosts("a.ns.svc.cluster.local", "b.ns.svc.cluster.local")}, s.TakeChanges()); diff != "" {
		t.Errorf("delete pod: changes (-want +got):\n%s", diff)
	}
}

func TestRemoveCluster(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 3, services: 4, perCluster: 2})
	s.RemoveCluster("c2")
	got := s.TakeChanges()
	want := Changes{Full: true, Services: hosts(svcHost(0), svcHost(1), svcHost(2), svcHost(3), ServiceHost("istio-system", "istio-eastwestgateway", ""))}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	sn := s.Snapshot()
	for i := range 4 {
		for _, n := range []NetworkID{"", "n1", "n2", "n3"} {
			for _, local := range []bool{false, true} {
				var v View
				var ok bool
				if local {
					v, ok = sn.LocalView(svcHost(i), 80, n)
				} else {
					v, ok = sn.View(svcHost(i), 80, n)
				}
				if !ok {
					t.Fatalf("View(%s, 80, %q) unknown", svcHost(i), n)
				}
				for _, e := range v.Endpoints {
					if e.Cluster == "c2" || e.Network == "n2" {
						t.Errorf("View(%s, %q, local=%v) still has %+v", svcHost(i), n, local, e)
					}
				}
			}
		}
		if _, ok := sn.Service(svcHost(i)).ClusterIPs["c2"]; ok {
			t.Errorf("service %s still has a cluster IP in c2", svcHost(i))
		}
	}
	if gws := sn.Gateways("n2"); len(gws) != 0 {
		t.Errorf("Gateways(n2) = %v, want none", gws)
	}
	if _, ok := sn.Stats().Endpoints["c2"]; ok {
		t.Errorf("Stats still counts endpoints of c2")
	}
	// Removing it again is a no-op.
	s.RemoveCluster("c2")
	if c := s.TakeChanges(); !c.Empty() {
		t.Errorf("second RemoveCluster: %+v", c)
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 50, perCluster: 2})
	old := s.Snapshot()
	type record struct {
		Services []ServiceInfo
		Views    map[string]View
		Networks NetworksReport
		Stats    Stats
		Gateways []Gateway
	}
	take := func(sn *Snapshot) record {
		r := record{Views: map[string]View{}, Networks: sn.Networks(), Stats: sn.Stats(), Gateways: sn.Gateways("n2")}
		for _, si := range sn.Services() {
			r.Services = append(r.Services, *si)
			for _, n := range []NetworkID{"", "n1", "n2"} {
				v, _ := sn.View(si.Host, 80, n)
				r.Views[string(si.Host)+"/"+string(n)] = v
			}
		}
		return r
	}
	before := take(old)

	// Every kind of mutation.
	for i := range 50 {
		s.UpsertEndpointSlice(meshSlice(1, i, 2, i+1))
	}
	s.DeleteService(ObjectKey{Cluster: "c1", NamespacedName: NamespacedName{Namespace: "default", Name: svcName(3)}})
	s.DeleteService(ObjectKey{Cluster: "c2", NamespacedName: NamespacedName{Namespace: "default", Name: svcName(3)}})
	s.UpsertService(mkService("c1", "default", "new", sp("http", 80)))
	s.UpsertService(lbGateway("c2", "n2", gwIP(2), "198.51.100.77"))
	s.UpsertPod(mkPod("c1", "default", podName(5, 1), "n2", false, "other"))
	s.UpsertNode(mkNode("c1", nodeName(1, 1), map[string]string{LabelRegion: "elsewhere"}, nil, []string{"10.1.255.1"}))
	s.SetMeshNetworks(mustParse(t, "networks:\n  n2:\n    endpoints:\n    - fromCidr: 10.1.0.0/24\n"))
	s.RemoveCluster("c2")
	s.TakeChanges()
	now := s.Snapshot()

	if diff := cmp.Diff(before, take(old)); diff != "" {
		t.Errorf("old snapshot changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(before, take(now)); diff == "" {
		t.Errorf("new snapshot equals the old one: the mutations did nothing")
	}
}

// TestSnapshotCostDoesNotGrowWithMesh checks the package's promise: after a
// one-service change, TakeChanges + Snapshot allocate about as much for
// 5,000 services as for 50.
func TestSnapshotCostDoesNotGrowWithMesh(t *testing.T) {
	testreq.NotShort(t, "builds a 5,000-service mesh")
	allocs := func(services int) float64 {
		s := newMesh(t, Config{}, meshSpec{clusters: 2, services: services, perCluster: 5})
		slicesAB := [2]*EndpointSlice{meshSlice(1, services/2, 5, 1), meshSlice(1, services/2, 5, 0)}
		i := 0
		return testing.AllocsPerRun(200, func() {
			s.UpsertEndpointSlice(slicesAB[i%2])
			i++
			if c := s.TakeChanges(); len(c.Services) != 1 {
				t.Fatalf("changes = %+v, want one service", c)
			}
			s.Snapshot()
		})
	}
	small, large := allocs(50), allocs(5000)
	t.Logf("allocations per change + snapshot: %v with 50 services, %v with 5,000", small, large)
	// The key's path in the trie may be a few levels deeper (its depth
	// depends on the random hash seed): two allocations per level. Anything
	// proportional to the mesh would be thousands more.
	if large > small+8 {
		t.Errorf("allocations grow with the mesh: %v for 50 services, %v for 5,000", small, large)
	}
}

func TestServiceInfoAndEndpoints(t *testing.T) {
	s := NewStore(Config{})
	a1 := mkService("c1", "ns", "a", sp("http", 80), sp("grpc", 9000))
	a2 := mkService("c2", "ns", "a", ServicePort{Name: "http", Port: 80, Protocol: "TCP", TargetPort: 8081}, sp("metrics", 70))
	a2.ClusterIP = "172.21.0.1"
	a3 := mkService("c3", "ns", "a", sp("http", 80))
	a3.ClusterIP = "None"
	for _, o := range []any{
		a1, a2, a3,
		mkPod("c1", "ns", "p1", "", true, "sa-b"),
		mkPod("c1", "ns", "p2", "", true, "sa-a"),
		mkPod("c2", "ns", "p3", "", false, "sa-a"),
		mkPod("c1", "ns", "p4", "", true, "sa-z"),
		// c1: two slices; 10.0.0.1:8080 is in both (kept once); p4 is not
		// ready; the slice port "other" is no port of the Service.
		mkSlice("c1", "ns", "a-1", "a", []EndpointPort{epp("http", 8080), epp("grpc", 9090), epp("other", 1)},
			ready("p1", "", "10.0.0.1"), ready("p2", "", "10.0.0.2"),
			SliceEndpoint{Addresses: []string{"10.0.0.4"}, Pod: "p4"}),
		mkSlice("c1", "ns", "a-2", "a", []EndpointPort{epp("http", 8080)}, ready("p1", "", "10.0.0.1")),
		// c2: the same address as in c1 (another cluster: kept), on 8081.
		mkSlice("c2", "ns", "a-1", "a", []EndpointPort{epp("http", 8081), epp("metrics", 7070)}, ready("p3", "", "10.0.0.1")),
		// c4 has a slice but no Service: left out.
		mkSlice("c4", "ns", "a-1", "a", []EndpointPort{epp("http", 8080)}, ready("p9", "", "10.4.0.1")),
	} {
		apply(t, s, o)
	}
	sn := s.Snapshot()
	wantInfo := &ServiceInfo{
		Host: "a.ns.svc.cluster.local", Namespace: "ns", Name: "a",
		ClusterIPs:      map[ClusterID]string{"c1": "172.20.0.1", "c2": "172.21.0.1"},
		Ports:           []ServicePort{sp("metrics", 70), sp("http", 80), sp("grpc", 9000)},
		ServiceAccounts: []NamespacedName{{Namespace: "ns", Name: "sa-a"}, {Namespace: "ns", Name: "sa-b"}},
	}
	if diff := cmp.Diff(wantInfo, sn.Service("a.ns.svc.cluster.local")); diff != "" {
		t.Errorf("ServiceInfo (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]*ServiceInfo{wantInfo}, sn.Services()); diff != "" {
		t.Errorf("Services (-want +got):\n%s", diff)
	}
	tests := []struct {
		port uint32
		want []ViewEndpoint
	}{
		{80, []ViewEndpoint{
			{Address: "10.0.0.1", Port: 8080, Weight: 1, Cluster: "c1", TLSMode: TLSModeIstio},
			{Address: "10.0.0.1", Port: 8081, Weight: 1, Cluster: "c2"},
			{Address: "10.0.0.2", Port: 8080, Weight: 1, Cluster: "c1", TLSMode: TLSModeIstio},
		}},
		{9000, []ViewEndpoint{
			{Address: "10.0.0.1", Port: 9090, Weight: 1, Cluster: "c1", TLSMode: TLSModeIstio},
			{Address: "10.0.0.2", Port: 9090, Weight: 1, Cluster: "c1", TLSMode: TLSModeIstio},
		}},
		{70, []ViewEndpoint{
			{Address: "10.0.0.1", Port: 7070, Weight: 1, Cluster: "c2"},
		}},
	}
	for _, tt := range tests {
		v, ok := sn.View("a.ns.svc.cluster.local", tt.port, "")
		if !ok {
			t.Fatalf("View(port %d) unknown", tt.port)
		}
		want := View{Cluster: ClusterName("a.ns.svc.cluster.local", tt.port, ""), Endpoints: tt.want}
		if diff := cmp.Diff(want, v); diff != "" {
			t.Errorf("View(port %d) (-want +got):\n%s", tt.port, diff)
		}
	}
}

func TestViewUnknown(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 1, services: 1, perCluster: 1})
	sn := s.Snapshot()
	tests := []struct {
		name string
		host Host
		port uint32
		ok   bool
	}{
		{"known", svcHost(0), 80, true},
		{"unknown host", "nope.default.svc.cluster.local", 80, false},
		{"unknown port (the target port is not a Service port)", svcHost(0), 8080, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := sn.View(tt.host, tt.port, "n1"); ok != tt.ok {
				t.Errorf("View ok = %v, want %v", ok, tt.ok)
			}
			if _, ok := sn.LocalView(tt.host, tt.port, "n1"); ok != tt.ok {
				t.Errorf("LocalView ok = %v, want %v", ok, tt.ok)
			}
			if got := sn.Service(tt.host) != nil; got != (tt.host == svcHost(0)) {
				t.Errorf("Service known = %v", got)
			}
		})
	}
}

// TestStoreViews checks a view end to end: namespace labels, pod labels,
// node localities and gateways from objects.
func TestStoreViews(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 1, perCluster: 2})
	sn := s.Snapshot()
	v, ok := sn.View(svcHost(0), 80, "n1")
	if !ok {
		t.Fatal("View unknown")
	}
	want := View{Cluster: ClusterName(svcHost(0), 80, ""), Network: "n1", Endpoints: []ViewEndpoint{
		{Address: "10.1.0.1", Port: 8080, Weight: 1, Locality: "r/z0/", Cluster: "c1", Network: "n1", TLSMode: TLSModeIstio, Loc: Locality{Region: "r", Zone: "z0"}},
		{Address: "10.1.0.2", Port: 8080, Weight: 1, Locality: "r/z1/", Cluster: "c1", Network: "n1", TLSMode: TLSModeIstio, Loc: Locality{Region: "r", Zone: "z1"}},
		{Address: gwIP(2), Port: 15443, Weight: 1, Locality: "r/z0/", Cluster: "c2", Network: "n2", Gateway: true, TLSMode: TLSModeIstio, Loc: Locality{Region: "r", Zone: "z0"}},
		{Address: gwIP(2), Port: 15443, Weight: 1, Locality: "r/z1/", Cluster: "c2", Network: "n2", Gateway: true, TLSMode: TLSModeIstio, Loc: Locality{Region: "r", Zone: "z1"}},
	}}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("View (-want +got):\n%s", diff)
	}
}

func TestDeletes(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 3, perCluster: 2})
	key := func(c int, name string) ObjectKey {
		return ObjectKey{Cluster: clusterID(c), NamespacedName: NamespacedName{Namespace: "default", Name: name}}
	}
	steps := []struct {
		name string
		do   func()
		want Changes
	}{
		{"slice of c1", func() { s.DeleteEndpointSlice(key(1, sliceName(0))) }, Changes{Services: hosts(svcHost(0))}},
		{"unknown slice", func() { s.DeleteEndpointSlice(key(1, "nope")) }, Changes{}},
		{"service in one cluster", func() { s.DeleteService(key(1, svcName(1))) }, Changes{Services: hosts(svcHost(1))}},
		{"service in the other", func() { s.DeleteService(key(2, svcName(1))) }, Changes{Services: hosts(svcHost(1))}},
		{"node with endpoints", func() { s.DeleteNode("c2", nodeName(2, 0)) }, Changes{Services: hosts(svcHost(0), svcHost(2))}},
		{"unknown node", func() { s.DeleteNode("c2", "nope") }, Changes{}},
		{"gateway service", func() {
			s.DeleteService(ObjectKey{Cluster: "c2", NamespacedName: NamespacedName{Namespace: "istio-system", Name: "istio-eastwestgateway"}})
		}, Changes{Full: true, Services: hosts(ServiceHost("istio-system", "istio-eastwestgateway", ""))}},
		{"system namespace of c2: its endpoints go to the empty network", func() { s.DeleteNamespace("c2", "istio-system") }, Changes{Full: true, Services: hosts(svcHost(0), svcHost(2))}},
	}
	for _, st := range steps {
		st.do()
		if diff := cmp.Diff(st.want, s.TakeChanges(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: changes (-want +got):\n%s", st.name, diff)
		}
	}
	sn := s.Snapshot()
	if sn.Service(svcHost(1)) != nil {
		t.Errorf("service deleted from every cluster is still known")
	}
	if got := len(sn.Services()); got != 3 { // svc-0, svc-2 and c1's gateway
		t.Errorf("len(Services()) = %d, want 3", got)
	}
}

func TestChangesMergeEmpty(t *testing.T) {
	var c Changes
	if !c.Empty() {
		t.Error("zero Changes not empty")
	}
	c.Merge(Changes{Services: hosts("a")})
	c.Merge(Changes{})
	c.Merge(Changes{Full: true, Services: hosts("b")})
	if diff := cmp.Diff(Changes{Full: true, Services: hosts("a", "b")}, c); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	if c.Empty() {
		t.Error("merged Changes empty")
	}
	if !(Changes{Services: map[Host]struct{}{}}).Empty() {
		t.Error("Changes with an empty set not empty")
	}
}

// TestConcurrentUse runs mutators and readers together; run with -race.
func TestConcurrentUse(t *testing.T) {
	s := newMesh(t, Config{}, meshSpec{clusters: 2, services: 20, perCluster: 2})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 1; c <= 2; c++ {
		wg.Go(func() {
			for k := range 300 {
				i := k % 20
				s.UpsertEndpointSlice(meshSlice(c, i, 2, k))
				s.UpsertPod(mkPod(clusterID(c), "default", podName(i, 0), "", k%2 == 0, "sa"))
				s.UpsertNode(mkNode(clusterID(c), nodeName(c, k), map[string]string{LabelZone: fmt.Sprint(k % 3)}, nil, []string{"10.9.9.9"}))
				if k%50 == 0 {
					s.UpsertService(lbGateway(clusterID(c), networkID(c), gwIP(c), fmt.Sprintf("198.51.100.%d", 100+k%7)))
					s.UpsertNamespace(&Namespace{Cluster: clusterID(c), Name: "istio-system", Network: networkID(c + k%2)})
				}
			}
		})
	}
	wg.Go(func() {
		for k := range 20 {
			if k%2 == 0 {
				s.SetMeshNetworks(mustParse(t, "networks:\n  n1:\n    endpoints:\n    - fromRegistry: c1\n"))
			} else {
				s.SetMeshNetworks(nil)
			}
		}
	})
	var readers sync.WaitGroup
	var changes Changes
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			changes.Merge(s.TakeChanges())
			sn := s.Snapshot()
			for _, si := range sn.Services() {
				for _, n := range []NetworkID{"", "n1", "n2"} {
					sn.View(si.Host, 80, n)
				}
			}
			sn.Networks()
			sn.Stats()
		}
	})
	var snaps []*Snapshot
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			snaps = append(snaps, s.Snapshot())
			if len(snaps) > 50 {
				// Old snapshots stay readable while the store moves on.
				for _, sn := range snaps[:10] {
					sn.View(svcHost(1), 80, "n2")
					sn.Services()
				}
				snaps = slices.Delete(snaps, 0, 10)
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	changes.Merge(s.TakeChanges())
	if changes.Empty() {
		t.Error("no changes seen")
	}
}
