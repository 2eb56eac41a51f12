package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNameTable: what a proxy's DNS name table holds, per cluster and
// network, as istiod builds it.
func TestNameTable(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"})
	s.UpsertNamespace(&Namespace{Cluster: "c2", Name: "istio-system", Network: "n2"})
	s.UpsertNamespace(&Namespace{Cluster: "c3", Name: "istio-system", Network: "n1"})
	// hello: a cluster IP in c1 and c2, none in c3.
	h1 := mkService("c1", "sample", "hello", sp("http", 5000))
	h1.ClusterIP = "10.1.0.1"
	h2 := mkService("c2", "sample", "hello", sp("http", 5000))
	h2.ClusterIP = "10.2.0.1"
	s.UpsertService(h1)
	s.UpsertService(h2)
	// only2: in c2 only.
	o2 := mkService("c2", "sample", "only2", sp("tcp", 9000))
	o2.ClusterIP = "10.2.0.2"
	s.UpsertService(o2)
	// db: headless in c1, c2 and c3, pods in each, two ports.
	for _, c := range []struct {
		id   ClusterID
		addr string
	}{{"c1", "10.1.5.1"}, {"c2", "10.2.5.1"}, {"c3", "10.3.5.1"}} {
		db := mkService(c.id, "sample", "db", sp("tcp-a", 3306), sp("tcp-b", 4000))
		db.ClusterIP = "None"
		s.UpsertService(db)
		s.UpsertEndpointSlice(mkSlice(c.id, "sample", "db-"+string(c.id), "db",
			[]EndpointPort{epp("tcp-a", 3306), epp("tcp-b", 4000)}, ready("", "", c.addr)))
	}
	// Extra address only on db's second port: not listed.
	s.UpsertEndpointSlice(mkSlice("c1", "sample", "db-b", "db", []EndpointPort{epp("tcp-b", 4000)}, ready("", "", "10.1.5.9")))
	// empty: headless without endpoints; ext: ExternalName.
	e := mkService("c1", "sample", "empty", sp("tcp", 1))
	e.ClusterIP = "None"
	s.UpsertService(e)
	ext := &Service{Cluster: "c1", Namespace: "sample", Name: "ext", Type: ServiceTypeExternalName}
	s.UpsertService(ext)
	snap := s.Snapshot()

	entry := func(host, name string, addrs ...string) NameEntry {
		return NameEntry{Host: Host(host), Addresses: addrs, Name: name, Namespace: "sample"}
	}
	tests := []struct {
		name    string
		cluster ClusterID
		network NetworkID
		want    []NameEntry
	}{{
		name:    "c1 (n1): own cluster IPs, c2's where c1 has none, db's n1 endpoints of c1 and c3",
		cluster: "c1", network: "n1",
		want: []NameEntry{
			entry("db.sample.svc.cluster.local", "db", "10.1.5.1", "10.3.5.1"),
			entry("hello.sample.svc.cluster.local", "hello", "10.1.0.1"),
			entry("only2.sample.svc.cluster.local", "only2", "10.2.0.2"),
		},
	}, {
		name: "c2 (n2)", cluster: "c2", network: "n2",
		want: []NameEntry{
			entry("db.sample.svc.cluster.local", "db", "10.2.5.1"),
			entry("hello.sample.svc.cluster.local", "hello", "10.2.0.1"),
			entry("only2.sample.svc.cluster.local", "only2", "10.2.0.2"),
		},
	}, {
		name: "c3 (n1), no hello of its own: the first cluster's (c1)", cluster: "c3", network: "n1",
		want: []NameEntry{
			entry("db.sample.svc.cluster.local", "db", "10.1.5.1", "10.3.5.1"),
			entry("hello.sample.svc.cluster.local", "hello", "10.1.0.1"),
			entry("only2.sample.svc.cluster.local", "only2", "10.2.0.2"),
		},
	}, {
		name: "no network: every headless endpoint", cluster: "c9", network: "",
		want: []NameEntry{
			entry("db.sample.svc.cluster.local", "db", "10.1.5.1", "10.2.5.1", "10.3.5.1"),
			entry("hello.sample.svc.cluster.local", "hello", "10.1.0.1"),
			entry("only2.sample.svc.cluster.local", "only2", "10.2.0.2"),
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, snap.NameTable(tc.cluster, tc.network)); diff != "" {
				t.Errorf("name table (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNameTableHeadlessAcrossNetworks: a headless service's name lists,
// for a proxy of one network, the pods of another network that it reaches
// through their gateways by a per-pod SNI (mesh mTLS, a network with
// gateways, a TCP first port); istiod lists only its own network's.
func TestNameTableHeadlessAcrossNetworks(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"})
	s.UpsertNamespace(&Namespace{Cluster: "c2", Name: "istio-system", Network: "n2"})
	s.UpsertService(lbGateway("c2", "n2", "192.0.2.2"))
	for _, c := range []ClusterID{"c1", "c2"} {
		db := mkService(c, "sample", "db", sp("tcp-db", 5432))
		db.ClusterIP = "None"
		s.UpsertService(db)
		web := mkService(c, "sample", "web", sp("http", 80))
		web.ClusterIP = "None"
		s.UpsertService(web)
	}
	s.UpsertPod(mkPod("c1", "sample", "db-0", "", true, "db"))
	s.UpsertPod(mkPod("c2", "sample", "db-1", "", true, "db"))
	s.UpsertPod(mkPod("c2", "sample", "db-2", "", false, "db"))
	s.UpsertPod(mkPod("c2", "sample", "web-1", "", true, "web"))
	s.UpsertEndpointSlice(mkSlice("c1", "sample", "db", "db", []EndpointPort{epp("tcp-db", 5432)}, ready("db-0", "", "10.1.0.60")))
	s.UpsertEndpointSlice(mkSlice("c2", "sample", "db", "db", []EndpointPort{epp("tcp-db", 5432)},
		ready("db-1", "", "10.2.0.60"), ready("db-2", "", "10.2.0.61")))
	s.UpsertEndpointSlice(mkSlice("c2", "sample", "web", "web", []EndpointPort{epp("http", 80)}, ready("web-1", "", "10.2.0.80")))
	snap := s.Snapshot()
	got := map[Host][]string{}
	for _, e := range snap.NameTable("c1", "n1") {
		got[e.Host] = e.Addresses
	}
	want := map[Host][]string{
		// db-1 through n2's gateway; db-2 (no mesh mTLS) cannot cross.
		"db.sample.svc.cluster.local": {"10.1.0.60", "10.2.0.60"},
		// An HTTP port gets no per-pod listener: n2's pod is not listed.
		"istio-eastwestgateway.istio-system.svc.cluster.local": {"172.20.0.9"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("c1 (n1) (-want +got):\n%s", diff)
	}
	got = map[Host][]string{}
	for _, e := range snap.NameTable("c2", "n2") {
		got[e.Host] = e.Addresses
	}
	want = map[Host][]string{
		// n1 has no gateway: its pod stays out, as istiod's.
		"db.sample.svc.cluster.local":                          {"10.2.0.60", "10.2.0.61"},
		"web.sample.svc.cluster.local":                         {"10.2.0.80"},
		"istio-eastwestgateway.istio-system.svc.cluster.local": {"172.20.0.9"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("c2 (n2) (-want +got):\n%s", diff)
	}
}
