package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGatewayConfigPlan(t *testing.T) {
	ew := map[string]string{"istio": "eastwestgateway", "app": "istio-eastwestgateway"}
	cross := IstioGateway{Namespace: "istio-system", Name: "cross", Selector: map[string]string{"istio": "eastwestgateway"},
		Servers: []GatewayServer{
			{Port: 15443, Protocol: "TLS", TLSMode: TLSAutoPassthrough, Hosts: []string{"*.local", "./x.example"}},
			{Port: 80, Protocol: "HTTP", Hosts: []string{"*"}}, // not an east-west gateway's: ignored
		}}
	expose := IstioGateway{Namespace: "istio-system", Name: "istiod-gateway", Selector: map[string]string{"istio": "eastwestgateway"},
		Servers: []GatewayServer{
			{Port: 15012, Protocol: "tls", TLSMode: TLSPassthrough, Hosts: []string{"*"}},
			{Port: 15017, Protocol: "tls", TLSMode: TLSPassthrough, Hosts: []string{"*"}},
			{Port: 15020, Protocol: "tls", TLSMode: TLSPassthrough, Hosts: []string{"*"}}, // no route: no listener
		}}
	ingress := IstioGateway{Namespace: "istio-system", Name: "ingress", Selector: map[string]string{"istio": "ingressgateway"},
		Servers: []GatewayServer{{Port: 15012, Protocol: "TLS", TLSMode: TLSPassthrough, Hosts: []string{"*"}}}}
	routes := []GatewayTLSRoute{
		{Namespace: "istio-system", Name: "vs", Gateways: []string{"istio-system/istiod-gateway"}, Port: 15012, SNIHosts: []string{"*"},
			Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 15012},
		// The same match again: Envoy would reject a second chain; dropped.
		{Namespace: "istio-system", Name: "vs2", Gateways: []string{"istio-system/istiod-gateway"}, Port: 15012,
			Destination: "other.istio-system.svc.cluster.local", DestinationPort: 15012},
		{Namespace: "istio-system", Name: "vs", Gateways: []string{"istio-system/istiod-gateway"}, Port: 15017, SNIHosts: []string{"*"},
			Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 443},
		// Bound to a Gateway that selects the proxy but has no PASSTHROUGH
		// server on the port: not served there.
		{Namespace: "istio-system", Name: "cross-vs", Gateways: []string{"istio-system/cross"}, Port: 15012, SNIHosts: []string{"b"},
			Destination: "b.b.svc.cluster.local", DestinationPort: 1},
		// Bound to a Gateway that does not select the proxy.
		{Namespace: "istio-system", Name: "ing", Gateways: []string{"istio-system/ingress"}, Port: 15017, SNIHosts: []string{"a"},
			Destination: "a.b.svc.cluster.local", DestinationPort: 1},
	}
	cfg := GatewayConfig{Gateways: []IstioGateway{cross, expose, ingress}, Routes: routes}
	want := GatewayPlan{
		Selected: true,
		AutoPassthrough: []AutoPassthroughPort{{Port: 15443, Hosts: []GatewayHost{
			{Host: "*.local"}, {Namespace: "istio-system", Host: "x.example"},
		}}},
		Passthrough: []PassthroughPort{
			{Port: 15012, Routes: []PassthroughRoute{{SNIHosts: []string{}, Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 15012}}},
			{Port: 15017, Routes: []PassthroughRoute{{SNIHosts: []string{}, Destination: "istiod.istio-system.svc.cluster.local", DestinationPort: 443}}},
		},
	}
	if diff := cmp.Diff(want, cfg.Plan(ew)); diff != "" {
		t.Errorf("plan of the east-west gateway (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(GatewayPlan{}, cfg.Plan(map[string]string{"app": "sleep"})); diff != "" {
		t.Errorf("plan of a proxy no Gateway selects (-want +got):\n%s", diff)
	}
	if got := (&GatewayConfig{}).Plan(ew); got.Selected {
		t.Errorf("an empty config selects the gateway: %+v", got)
	}
}

func TestGatewayHostAdmits(t *testing.T) {
	for _, tc := range []struct {
		g    GatewayHost
		h    Host
		ns   string
		want bool
	}{
		{GatewayHost{Host: "*"}, "a.b.svc.cluster.local", "b", true},
		{GatewayHost{Host: "*.local"}, "a.b.svc.cluster.local", "b", true},
		{GatewayHost{Host: "*.local"}, "a.b.svc.example.org", "b", false},
		{GatewayHost{Host: "a.b.svc.cluster.local"}, "a.b.svc.cluster.local", "b", true},
		{GatewayHost{Namespace: "c", Host: "*"}, "a.b.svc.cluster.local", "b", false},
		{GatewayHost{Namespace: "b", Host: "*"}, "a.b.svc.cluster.local", "b", true},
	} {
		if got := tc.g.Admits(tc.h, tc.ns); got != tc.want {
			t.Errorf("%+v admits %s of %s: %t, want %t", tc.g, tc.h, tc.ns, got, tc.want)
		}
	}
}

func TestSetGatewayConfigRecordsChanges(t *testing.T) {
	s := NewStore(Config{})
	s.TakeChanges()
	s.SetGatewayConfig(GatewayConfig{})
	if s.TakeChanges().GatewayConfig {
		t.Error("an empty config on an empty store is a change")
	}
	cfg := func() GatewayConfig {
		return GatewayConfig{Gateways: []IstioGateway{{Namespace: "b", Name: "g"}, {Namespace: "a", Name: "g"}}}
	}
	s.SetGatewayConfig(cfg())
	if !s.TakeChanges().GatewayConfig {
		t.Error("a new config is not a change")
	}
	if got := s.Snapshot().GatewayConfig().Gateways[0].Namespace; got != "a" {
		t.Errorf("gateways not sorted: first is of namespace %q", got)
	}
	s.SetGatewayConfig(cfg())
	if s.TakeChanges().GatewayConfig {
		t.Error("an equal config is a change")
	}
	s.SetGatewayConfig(GatewayConfig{})
	if !s.TakeChanges().GatewayConfig || len(s.Snapshot().GatewayConfig().Gateways) != 0 {
		t.Error("removing every Gateway is not a change")
	}
}

func TestResolveHost(t *testing.T) {
	if got := ResolveHost("istiod", "istio-system", ""); got != "istiod.istio-system.svc.cluster.local" {
		t.Errorf("short name: %s", got)
	}
	if got := ResolveHost("istiod.istio-system.svc.cluster.local", "x", "example.org"); got != "istiod.istio-system.svc.cluster.local" {
		t.Errorf("full name: %s", got)
	}
}
