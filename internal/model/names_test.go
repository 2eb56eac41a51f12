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
