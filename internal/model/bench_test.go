package model

import (
	"fmt"
	"testing"
)

// benchMesh is the benchmark's mesh: 1,000 services x 10 endpoints over 2
// clusters on 2 networks, each with an east-west gateway.
var benchMesh = meshSpec{clusters: 2, services: 1000, perCluster: 5}

// BenchmarkUpsertEndpointSlice changes one endpoint of one slice, then takes
// the changes and a snapshot: the model's share of pushing one change.
func BenchmarkUpsertEndpointSlice(b *testing.B) {
	s := newMesh(b, Config{}, benchMesh)
	versions := [2]*EndpointSlice{meshSlice(1, 500, 5, 1), meshSlice(1, 500, 5, 0)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.UpsertEndpointSlice(versions[i%2])
		i++
		if c := s.TakeChanges(); len(c.Services) != 1 || c.Full {
			b.Fatalf("changes = %+v", c)
		}
		s.Snapshot()
	}
}

// BenchmarkView builds one service's view for a proxy of network n1: 5
// local endpoints, and n2's gateway standing for 5 endpoints in 4 zones.
func BenchmarkView(b *testing.B) {
	s := newMesh(b, Config{}, benchMesh)
	sn := s.Snapshot()
	h := svcHost(500)
	b.ReportAllocs()
	for b.Loop() {
		if v, ok := sn.View(h, 80, "n1"); !ok || len(v.Endpoints) != 9 {
			b.Fatalf("view = %+v", v)
		}
	}
}

// BenchmarkSnapshot publishes one changed service (Snapshot flushes it:
// rebuild and path copy) in meshes of growing size: the cost must not grow
// with the mesh.
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			s := newMesh(b, Config{}, meshSpec{clusters: 2, services: n, perCluster: 5})
			versions := [2]*EndpointSlice{meshSlice(2, 10, 5, 1), meshSlice(2, 10, 5, 0)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s.UpsertEndpointSlice(versions[i%2])
				i++
				s.Snapshot()
			}
		})
	}
}
