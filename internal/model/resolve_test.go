package model

import (
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestResolveAgain: a changed answer for a LoadBalancer hostname or a
// meshNetworks address hostname changes the gateways (a full change);
// the same answers change nothing. GatewayHostnames lists both names.
func TestResolveAgain(t *testing.T) {
	var mu sync.Mutex
	answers := map[string][]string{"elb.example.com": {"192.0.2.1"}, "mn.example.com": {"192.0.2.9"}}
	s := NewStore(Config{Resolve: func(h string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(answers[h]), nil
	}})
	gw := lbGateway("c2", "n2")
	gw.LoadBalancerHostnames = []string{"elb.example.com"}
	s.UpsertService(gw)
	s.SetMeshNetworks(mustParse(t, "networks:\n  n1:\n    gateways:\n    - address: mn.example.com\n      port: 15443\n"))
	if d := cmp.Diff([]string{"elb.example.com", "mn.example.com"}, s.GatewayHostnames()); d != "" {
		t.Errorf("GatewayHostnames (-want +got)\n%s", d)
	}
	addrs := func(n NetworkID) []string {
		var out []string
		for _, g := range s.Snapshot().Gateways(n) {
			out = append(out, g.Address)
		}
		return out
	}
	s.TakeChanges()
	if d := cmp.Diff([]string{"192.0.2.1"}, addrs("n2")); d != "" {
		t.Fatalf("n2 gateways (-want +got)\n%s", d)
	}

	s.ResolveAgain()
	if c := s.TakeChanges(); !c.Empty() {
		t.Errorf("the same answers changed %+v", c)
	}

	mu.Lock()
	answers["elb.example.com"] = []string{"192.0.2.2", "192.0.2.3"}
	answers["mn.example.com"] = []string{"192.0.2.8"}
	mu.Unlock()
	s.ResolveAgain()
	if c := s.TakeChanges(); !c.Full {
		t.Errorf("changed answers: changes %+v, want Full", c)
	}
	if d := cmp.Diff([]string{"192.0.2.2", "192.0.2.3"}, addrs("n2")); d != "" {
		t.Errorf("n2 gateways after the change (-want +got)\n%s", d)
	}
	if d := cmp.Diff([]string{"192.0.2.8"}, addrs("n1")); d != "" {
		t.Errorf("n1 gateways after the change (-want +got)\n%s", d)
	}
}

// TestRetainCluster: the objects keep refuses are removed, the others
// stay, and the removal is recorded as a change of their services.
func TestRetainCluster(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: DefaultSystemNamespace, Network: "n1"})
	s.UpsertService(mkService("c1", "app", "web", sp("http", 80)))
	s.UpsertService(mkService("c1", "app", "old", sp("http", 80)))
	s.UpsertEndpointSlice(mkSlice("c1", "app", "web-1", "web", []EndpointPort{epp("http", 8080)}, ready("p1", "node-a", "10.0.0.1")))
	s.UpsertEndpointSlice(mkSlice("c1", "app", "web-2", "web", []EndpointPort{epp("http", 8080)}, ready("p2", "node-a", "10.0.0.2")))
	s.UpsertService(mkService("c2", "app", "web", sp("http", 80)))
	s.TakeChanges()

	gone := map[ObjectKind]string{KindService: "app/old", KindEndpointSlice: "app/web-2"}
	s.RetainCluster("c1", func(k ObjectKind, nn NamespacedName) bool { return gone[k] != nn.String() })

	c := s.TakeChanges()
	if _, ok := c.Services[ServiceHost("app", "old", "")]; !ok {
		t.Errorf("changes %+v lack the removed service", c)
	}
	sn := s.Snapshot()
	v, ok := sn.View(ServiceHost("app", "web", ""), 80, "n1")
	if !ok || len(v.Endpoints) != 1 || v.Endpoints[0].Address != "10.0.0.1" {
		t.Errorf("web's view after RetainCluster: %+v, want 10.0.0.1 alone", v.Endpoints)
	}
	if _, ok := sn.View(ServiceHost("app", "old", ""), 80, "n1"); ok {
		t.Error("the removed service is still in the model")
	}
}
