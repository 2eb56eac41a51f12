package model

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGatewaysOfService(t *testing.T) {
	nodes := map[string]*Node{
		"node-a": mkNode("c2", "node-a", map[string]string{"gw": "true"}, []string{"203.0.113.1"}, []string{"10.0.0.1"}),
		"node-b": mkNode("c2", "node-b", nil, nil, []string{"10.0.0.2", "fd00::2"}),
		"node-c": mkNode("c2", "node-c", map[string]string{"gw": "true"}, []string{"203.0.113.3"}, nil),
		"node-d": mkNode("c2", "node-d", nil, nil, nil),
	}
	nodePort := func(sel map[string]string) *Service {
		return &Service{
			Cluster: "c2", Namespace: "istio-system", Name: "eastwest", Type: ServiceTypeNodePort,
			Ports:        []ServicePort{{Name: "status", Port: 15021, NodePort: 31021}, {Name: "tls", Port: 15443, NodePort: 31443}},
			NodeSelector: sel,
		}
	}
	spec := gwSpec{network: "n2", port: 15443, source: "service c2/istio-system/eastwest"}
	gw := func(addr string, port uint32, how string) Gateway {
		return Gateway{Address: addr, Port: port, Network: "n2", Cluster: "c2", Source: "service c2/istio-system/eastwest (" + how + ")"}
	}
	tests := []struct {
		name     string
		entry    *svcEntry
		spec     gwSpec
		mode     NodePortMode
		ready    []string
		want     []Gateway
		warnings []string
	}{
		{
			name:  "LoadBalancer ingress IPs",
			entry: &svcEntry{svc: &Service{Cluster: "c2", Type: ServiceTypeLoadBalancer, LoadBalancerIPs: []string{"198.51.100.1", "198.51.100.2"}}},
			spec:  spec,
			want:  []Gateway{gw("198.51.100.1", 15443, "LoadBalancer ingress"), gw("198.51.100.2", 15443, "LoadBalancer ingress")},
		},
		{
			name:  "externalIPs on any type",
			entry: &svcEntry{svc: &Service{Cluster: "c2", Type: ServiceTypeClusterIP, ExternalIPs: []string{"198.51.100.9"}}},
			spec:  spec,
			want:  []Gateway{gw("198.51.100.9", 15443, "externalIPs")},
		},
		{
			name: "LoadBalancer hostnames: resolved ones give their IPs, the others a warning",
			entry: &svcEntry{
				svc: &Service{Cluster: "c2", Type: ServiceTypeLoadBalancer, LoadBalancerHostnames: []string{"a.elb.example.com", "b.elb.example.com", "c.elb.example.com"}},
				lb: map[string]resolution{
					"a.elb.example.com": {IPs: []string{"198.51.100.3", "198.51.100.4"}},
					"b.elb.example.com": {Err: "cannot resolve: no such host"},
				},
			},
			spec: spec,
			want: []Gateway{gw("198.51.100.3", 15443, "LoadBalancer ingress hostname a.elb.example.com"), gw("198.51.100.4", 15443, "LoadBalancer ingress hostname a.elb.example.com")},
			warnings: []string{
				"service c2/istio-system/eastwest: LoadBalancer hostname b.elb.example.com left out: cannot resolve: no such host",
				"service c2/istio-system/eastwest: LoadBalancer hostname c.elb.example.com left out: not resolved",
			},
		},
		{
			name:  "NodePort, endpoints mode: nodes running a ready gateway endpoint; ExternalIP preferred, else InternalIP; node-c has no gateway pod",
			entry: &svcEntry{svc: nodePort(nil)},
			spec:  spec, mode: NodePortEndpoints, ready: []string{"node-a", "node-b", "node-unknown"},
			want: []Gateway{gw("203.0.113.1", 31443, "NodePort 31443 on node node-a"), gw("10.0.0.2", 31443, "NodePort 31443 on node node-b")},
		},
		{
			name:  "NodePort, endpoints mode, the annotation narrows",
			entry: &svcEntry{svc: nodePort(map[string]string{"gw": "true"})},
			spec:  spec, mode: NodePortEndpoints, ready: []string{"node-a", "node-b"},
			want: []Gateway{gw("203.0.113.1", 31443, "NodePort 31443 on node node-a")},
		},
		{
			name:  "NodePort, selector mode: every node matching the annotation, with a gateway pod or not",
			entry: &svcEntry{svc: nodePort(map[string]string{"gw": "true"})},
			spec:  spec, mode: NodePortSelector, ready: []string{"node-b"},
			want: []Gateway{gw("203.0.113.1", 31443, "NodePort 31443 on node node-a"), gw("203.0.113.3", 31443, "NodePort 31443 on node node-c")},
		},
		{
			name:  "NodePort, selector mode, empty selector: every node with an address",
			entry: &svcEntry{svc: nodePort(map[string]string{})},
			spec:  spec, mode: NodePortSelector,
			want: []Gateway{
				gw("203.0.113.1", 31443, "NodePort 31443 on node node-a"),
				gw("10.0.0.2", 31443, "NodePort 31443 on node node-b"),
				gw("203.0.113.3", 31443, "NodePort 31443 on node node-c"),
			},
		},
		{
			name:  "NodePort, selector mode without annotation: none, as Istio",
			entry: &svcEntry{svc: nodePort(nil)},
			spec:  spec, mode: NodePortSelector, ready: []string{"node-a"},
			warnings: []string{"service c2/istio-system/eastwest: NodePort gateway without annotation traffic.istio.io/nodeSelector: no node address is handed out (--nodeport-gateways=selector)"},
		},
		{
			name:  "NodePort without the gateway port",
			entry: &svcEntry{svc: nodePort(nil)},
			spec:  gwSpec{network: "n2", port: 443, source: "service c2/istio-system/eastwest"},
			mode:  NodePortEndpoints, ready: []string{"node-a"},
			warnings: []string{"service c2/istio-system/eastwest: NodePort Service has no port 443 with a node port: no NodePort gateway; set label networking.istio.io/gatewayPort to one of its ports"},
		},
		{
			name:     "no external address at all",
			entry:    &svcEntry{svc: &Service{Cluster: "c2", Type: ServiceTypeLoadBalancer}},
			spec:     spec,
			warnings: []string{`service c2/istio-system/eastwest: no external address (externalIPs, LoadBalancer ingress or NodePort on a qualifying node): no gateway for network "n2" from it`},
		},
		{
			name:  "locality and source of a meshNetworks entry are carried",
			entry: &svcEntry{svc: &Service{Cluster: "c2", Type: ServiceTypeLoadBalancer, LoadBalancerIPs: []string{"198.51.100.1"}}},
			spec:  gwSpec{network: "n2", port: 15443, locality: "r/z/s", source: "meshNetworks registryServiceName gw.ns.svc.cluster.local"},
			want:  []Gateway{{Address: "198.51.100.1", Port: 15443, Network: "n2", Cluster: "c2", Source: "meshNetworks registryServiceName gw.ns.svc.cluster.local (LoadBalancer ingress)", Locality: "r/z/s"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings := gatewaysOfService(tt.entry, tt.spec, tt.mode, nodes, tt.ready)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("gateways (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadyNodeNames(t *testing.T) {
	slices := map[string]*EndpointSlice{
		"a": mkSlice("c", "ns", "a", "gw", nil, ready("p1", "node-b", "10.0.0.1"), ready("p2", "node-a", "10.0.0.2"), SliceEndpoint{Addresses: []string{"10.0.0.3"}, NodeName: "node-c"}),
		"b": mkSlice("c", "ns", "b", "gw", nil, ready("p3", "node-a", "10.0.0.4"), ready("p4", "", "10.0.0.5")),
	}
	if diff := cmp.Diff([]string{"node-a", "node-b"}, readyNodeNames(slices)); diff != "" {
		t.Errorf("readyNodeNames (-want +got):\n%s", diff)
	}
}

// TestStoreGateways checks gateway discovery as a whole: objects and
// meshNetworks in, every network's gateways and the warnings out.
func TestStoreGateways(t *testing.T) {
	resolver := func(h string) ([]string, error) {
		switch h {
		case "gw.example.com":
			return []string{"192.0.2.50"}, nil
		case "lb.example.com":
			return []string{"192.0.2.60", "not-an-ip"}, nil
		}
		return nil, errors.New("no such host")
	}
	np := &Service{
		Cluster: "c2", Namespace: "istio-system", Name: "istio-eastwestgateway", Type: ServiceTypeNodePort, Network: "n2",
		Ports: []ServicePort{{Name: "tls", Port: 15443, NodePort: 31443}},
	}
	npSlice := mkSlice("c2", "istio-system", "istio-eastwestgateway-x", "istio-eastwestgateway", []EndpointPort{epp("tls", 15443)},
		ready("gw-1", "node-a", "10.2.0.100"))
	nodeA := mkNode("c2", "node-a", nil, []string{"203.0.113.1"}, []string{"10.2.255.1"})
	nodeB := mkNode("c2", "node-b", nil, []string{"203.0.113.2"}, nil)
	registryGw := func(c ClusterID, ips ...string) *Service {
		s := lbGateway(c, "", ips...)
		s.Ports = []ServicePort{{Name: "tls", Port: 443}}
		return s
	}
	type obj = any
	tests := []struct {
		name     string
		mn       string
		objs     []obj
		want     map[NetworkID][]Gateway
		warnings []string
	}{
		{
			name: "label, default port 15443",
			objs: []obj{lbGateway("c1", "n1", "198.51.100.1")},
			want: map[NetworkID][]Gateway{"n1": {{Address: "198.51.100.1", Port: 15443, Network: "n1", Cluster: "c1", Source: "service c1/istio-system/istio-eastwestgateway (LoadBalancer ingress)"}}},
		},
		{
			name: "label, gatewayPort overrides",
			objs: []obj{func() *Service { s := lbGateway("c1", "n1", "198.51.100.1"); s.GatewayPort = 443; return s }()},
			want: map[NetworkID][]Gateway{"n1": {{Address: "198.51.100.1", Port: 443, Network: "n1", Cluster: "c1", Source: "service c1/istio-system/istio-eastwestgateway (LoadBalancer ingress)"}}},
		},
		{
			name: "label, NodePort in endpoints mode: only the node running the gateway pod",
			objs: []obj{np, npSlice, nodeA, nodeB},
			want: map[NetworkID][]Gateway{"n2": {{Address: "203.0.113.1", Port: 31443, Network: "n2", Cluster: "c2", Source: "service c2/istio-system/istio-eastwestgateway (NodePort 31443 on node node-a)"}}},
		},
		{
			name: "LoadBalancer hostname resolved with Config.Resolve; invalid answers dropped; unresolved warned",
			objs: []obj{func() *Service {
				s := lbGateway("c1", "n1")
				s.LoadBalancerHostnames = []string{"lb.example.com", "gone.example.com"}
				return s
			}()},
			want:     map[NetworkID][]Gateway{"n1": {{Address: "192.0.2.60", Port: 15443, Network: "n1", Cluster: "c1", Source: "service c1/istio-system/istio-eastwestgateway (LoadBalancer ingress hostname lb.example.com)"}}},
			warnings: []string{"service c1/istio-system/istio-eastwestgateway: LoadBalancer hostname gone.example.com left out: cannot resolve: no such host"},
		},
		{
			name: "meshNetworks address with locality, and a hostname address resolved",
			mn: `networks:
  n1:
    gateways:
    - address: 192.0.2.1
      port: 15443
      locality: r1/z1/s1
    - address: gw.example.com
      port: 15443
    - address: nowhere.example.com
      port: 15443
`,
			want: map[NetworkID][]Gateway{"n1": {
				{Address: "192.0.2.1", Port: 15443, Network: "n1", Source: "meshNetworks address", Locality: "r1/z1/s1"},
				{Address: "192.0.2.50", Port: 15443, Network: "n1", Source: "meshNetworks address gw.example.com"},
			}},
			warnings: []string{`meshNetworks network "n1" gateways[2]: address nowhere.example.com left out: cannot resolve: no such host`},
		},
		{
			name: "meshNetworks registryServiceName: the Service in the network's clusters, the entry's port and locality",
			mn: `networks:
  n1:
    endpoints:
    - fromRegistry: c1
    gateways:
    - registryServiceName: istio-eastwestgateway.istio-system.svc.cluster.local
      port: 443
      locality: r1/z1/
`,
			// c3's Service of the same name is not in n1.
			objs: []obj{registryGw("c1", "198.51.100.1"), registryGw("c3", "198.51.100.3")},
			want: map[NetworkID][]Gateway{"n1": {{Address: "198.51.100.1", Port: 443, Network: "n1", Cluster: "c1", Source: "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (LoadBalancer ingress)", Locality: "r1/z1/"}}},
		},
		{
			name: "meshNetworks registryServiceName of a NodePort Service: the entry's port is the Service port",
			mn: `networks:
  n2:
    endpoints:
    - fromRegistry: c2
    gateways:
    - registryServiceName: istio-eastwestgateway.istio-system.svc.cluster.local
      port: 15443
`,
			objs: []obj{func() *Service { s := *np; s.Network = ""; return &s }(), npSlice, nodeA, nodeB},
			want: map[NetworkID][]Gateway{"n2": {{Address: "203.0.113.1", Port: 31443, Network: "n2", Cluster: "c2", Source: "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (NodePort 31443 on node node-a)"}}},
		},
		{
			name: "meshNetworks registryServiceName matching nothing is warned about",
			mn:   "networks:\n  n1:\n    gateways:\n    - registryServiceName: missing.ns.svc.cluster.local\n      port: 1\n",
			want: map[NetworkID][]Gateway{},
			warnings: []string{
				`meshNetworks network "n1" gateways[0]: registryServiceName missing.ns.svc.cluster.local matches no Service in any cluster: no gateway from it`,
			},
		},
		{
			name: "de-duplication by address and port: the meshNetworks entry wins",
			mn: `networks:
  n1:
    gateways:
    - address: 198.51.100.1
      port: 15443
      locality: r/z/s
`,
			objs: []obj{lbGateway("c1", "n1", "198.51.100.1", "198.51.100.1"), lbGateway("c2", "n1", "198.51.100.1")},
			want: map[NetworkID][]Gateway{"n1": {{Address: "198.51.100.1", Port: 15443, Network: "n1", Source: "meshNetworks address", Locality: "r/z/s"}}},
		},
		{
			name: "one address in two networks is kept in both and warned about",
			objs: []obj{lbGateway("c1", "n1", "198.51.100.1"), lbGateway("c2", "n2", "198.51.100.1")},
			want: map[NetworkID][]Gateway{
				"n1": {{Address: "198.51.100.1", Port: 15443, Network: "n1", Cluster: "c1", Source: "service c1/istio-system/istio-eastwestgateway (LoadBalancer ingress)"}},
				"n2": {{Address: "198.51.100.1", Port: 15443, Network: "n2", Cluster: "c2", Source: "service c2/istio-system/istio-eastwestgateway (LoadBalancer ingress)"}},
			},
			warnings: []string{"gateway 198.51.100.1:15443 is a gateway of networks [n1 n2]: a gateway leads into one network; fix the labels or meshNetworks"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(Config{Resolve: resolver})
			if tt.mn != "" {
				s.SetMeshNetworks(mustParse(t, tt.mn))
			}
			for _, o := range tt.objs {
				apply(t, s, o)
			}
			sn := s.Snapshot()
			got := map[NetworkID][]Gateway{}
			for n, gws := range sn.gw.byNetwork {
				got[n] = sn.Gateways(n)
				if diff := cmp.Diff(gws, got[n]); diff != "" {
					t.Errorf("Gateways(%q) differs from the set (-set +Gateways):\n%s", n, diff)
				}
			}
			if tt.want == nil {
				tt.want = map[NetworkID][]Gateway{}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("gateways (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, sn.gw.warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// apply stores one object of any input type.
func apply(t *testing.T, s *Store, o any) {
	t.Helper()
	switch o := o.(type) {
	case *Service:
		s.UpsertService(o)
	case *EndpointSlice:
		s.UpsertEndpointSlice(o)
	case *Pod:
		s.UpsertPod(o)
	case *Node:
		s.UpsertNode(o)
	case *Namespace:
		s.UpsertNamespace(o)
	default:
		t.Fatalf("apply: unknown object %T", o)
	}
}

// TestRegistryServiceResolvedLater: a Service named by registryServiceName
// after it was stored gets its LoadBalancer hostnames resolved then, and
// the resolver runs outside the store's lock (it may read the store).
func TestRegistryServiceResolvedLater(t *testing.T) {
	var s *Store
	calls := 0
	s = NewStore(Config{Resolve: func(h string) ([]string, error) {
		calls++
		s.Snapshot() // would deadlock if called under the lock
		return []string{"192.0.2.77"}, nil
	}})
	gw := lbGateway("c1", "")
	gw.LoadBalancerHostnames = []string{"elb.example.com"}
	s.UpsertService(gw)
	if calls != 0 {
		t.Fatalf("a Service that is no gateway was resolved")
	}
	s.SetMeshNetworks(mustParse(t, "networks:\n  n1:\n    gateways:\n    - registryServiceName: istio-eastwestgateway.istio-system.svc.cluster.local\n      port: 15443\n"))
	if c := s.TakeChanges(); !c.Full {
		t.Errorf("changes = %+v, want Full", c)
	}
	want := []Gateway{{Address: "192.0.2.77", Port: 15443, Network: "n1", Cluster: "c1", Source: "meshNetworks registryServiceName istio-eastwestgateway.istio-system.svc.cluster.local (LoadBalancer ingress hostname elb.example.com)"}}
	if diff := cmp.Diff(want, s.Snapshot().Gateways("n1")); diff != "" {
		t.Errorf("gateways (-want +got):\n%s", diff)
	}
	if calls != 1 {
		t.Errorf("resolver called %d times, want 1", calls)
	}
}
