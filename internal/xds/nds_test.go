package xds

import (
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/internal/envoy"
)

const (
	ndsType = envoy.NameTableType
	// unknownType is a type no one serves.
	unknownType = "type.googleapis.com/example.v1.NoSuchThing"
)

// nameTable decodes NDS resources into host -> addresses; it fails unless
// there is exactly one resource, unnamed, as istiod sends it.
func nameTable(t *testing.T, names []string, as []*anypb.Any) map[string][]string {
	t.Helper()
	if len(as) != 1 || len(names) != 1 || names[0] != "" {
		t.Fatalf("NDS resources %q: want one, unnamed", names)
	}
	if as[0].GetTypeUrl() != ndsType {
		t.Fatalf("NDS resource of type %s", as[0].GetTypeUrl())
	}
	m := envoy.NameTable(nil)
	if err := proto.Unmarshal(as[0].GetValue(), m); err != nil {
		t.Fatalf("decoding the name table: %v", err)
	}
	out := map[string][]string{}
	r := m.ProtoReflect()
	table := r.Get(r.Descriptor().Fields().ByName("table")).Map()
	table.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		info := v.Message()
		ips := info.Get(info.Descriptor().Fields().ByName("ips")).List()
		var list []string
		for i := range ips.Len() {
			list = append(list, ips.Get(i).String())
		}
		out[k.String()] = list
		return true
	})
	return out
}

// The rawMesh's name table for a sidecar of cluster1: its own cluster IPs.
var cluster1Names = map[string][]string{
	string(helloHost): {"10.1.100.1"},
	string(otherHost): {"10.1.100.2"},
	string(gwHost):    {"10.2.255.1"}, // cluster1 has no gateway Service: cluster2's address
}

// TestSotWNameTableAndUnknownTypes: one SotW stream of a sidecar asks for
// NDS, a type no one serves, a type this server does not serve (secrets)
// and CDS. It gets an empty answer for the unknown ones, the name table
// and the clusters, and the stream stays up: a new service then reaches
// it in CDS and NDS.
func TestSotWNameTableAndUnknownTypes(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))
	c := newSotW(t, cc, sidecarNode("dns-1", network1, cluster1))

	for _, typ := range []string{ndsType, unknownType, resource.SecretType, cdsType} {
		c.request(typ, nil, "", "", "")
	}
	got := map[string]*discoverygrpc.DiscoveryResponse{}
	for range 4 {
		r := c.recv()
		got[r.GetTypeUrl()] = r
	}
	if diff := cmp.Diff(cluster1Names, nameTable(t, anyNamesOrEmpty(got[ndsType].GetResources()), got[ndsType].GetResources())); diff != "" {
		t.Errorf("name table (-want +got):\n%s", diff)
	}
	for _, typ := range []string{unknownType, resource.SecretType} {
		if r := got[typ]; r == nil || len(r.GetResources()) != 0 {
			t.Errorf("answer to %s: %v, want an empty response", typ, r)
		}
	}
	if diff := cmp.Diff(allClusters, slices.Sorted(maps.Keys(decode[*clusterv3.Cluster](t, got[cdsType].GetResources())))); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	for _, r := range got {
		c.ack(r, nil)
	}

	m.service(cluster1, "sample", "late", "10.1.100.3", 7000)
	m.publish()
	after := map[string]*discoverygrpc.DiscoveryResponse{}
	for range 2 {
		r := c.recv()
		after[r.GetTypeUrl()] = r
	}
	want := maps.Clone(cluster1Names)
	want["late.sample.svc.cluster.local"] = []string{"10.1.100.3"}
	if diff := cmp.Diff(want, nameTable(t, anyNamesOrEmpty(after[ndsType].GetResources()), after[ndsType].GetResources())); diff != "" {
		t.Errorf("name table after a new service (-want +got):\n%s", diff)
	}
	if _, ok := decode[*clusterv3.Cluster](t, after[cdsType].GetResources())["outbound|7000||late.sample.svc.cluster.local"]; !ok {
		t.Errorf("CDS after a new service: %v", anyNames(after[cdsType].GetResources()))
	}
	for _, r := range after {
		c.ack(r, nil)
	}
}

// TestDeltaNameTableAndUnknownTypes is TestSotWNameTableAndUnknownTypes on
// a delta stream.
func TestDeltaNameTableAndUnknownTypes(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))
	c := newDelta(t, cc, sidecarNode("dns-2", network1, cluster1))

	for _, typ := range []string{ndsType, unknownType, resource.SecretType, cdsType} {
		c.subscribe(typ, nil, nil)
	}
	got := map[string]*discoverygrpc.DeltaDiscoveryResponse{}
	for range 4 {
		r := c.recv()
		got[r.GetTypeUrl()] = r
	}
	if diff := cmp.Diff(cluster1Names, nameTable(t, deltaNames(got[ndsType]), deltaAnys(got[ndsType]))); diff != "" {
		t.Errorf("name table (-want +got):\n%s", diff)
	}
	for _, typ := range []string{unknownType, resource.SecretType} {
		if r := got[typ]; r == nil || len(r.GetResources()) != 0 {
			t.Errorf("answer to %s: %v, want an empty response", typ, r)
		}
	}
	if diff := cmp.Diff(allClusters, deltaNames(got[cdsType])); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	for _, r := range got {
		c.ack(r)
	}

	m.service(cluster1, "sample", "late", "10.1.100.3", 7000)
	m.publish()
	after := map[string]*discoverygrpc.DeltaDiscoveryResponse{}
	for range 2 {
		r := c.recv()
		after[r.GetTypeUrl()] = r
	}
	want := maps.Clone(cluster1Names)
	want["late.sample.svc.cluster.local"] = []string{"10.1.100.3"}
	if diff := cmp.Diff(want, nameTable(t, deltaNames(after[ndsType]), deltaAnys(after[ndsType]))); diff != "" {
		t.Errorf("name table after a new service (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"outbound|7000||late.sample.svc.cluster.local"}, deltaNames(after[cdsType])); diff != "" {
		t.Errorf("CDS after a new service (-want +got):\n%s", diff)
	}
	for _, r := range after {
		c.ack(r)
	}
}

// anyNamesOrEmpty is anyNames for NDS, whose one resource has no name: the
// SotW Any carries none, so each resource counts as unnamed.
func anyNamesOrEmpty(as []*anypb.Any) []string {
	return make([]string, len(as))
}
