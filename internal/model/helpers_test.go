package model

import (
	"net/netip"
	"testing"
)

// Builders for test objects. Each returns a fresh value: the store owns
// what it is given.

func mkService(c ClusterID, ns, name string, ports ...ServicePort) *Service {
	return &Service{Cluster: c, Namespace: ns, Name: name, Type: ServiceTypeClusterIP, ClusterIP: "172.20.0.1", Ports: ports}
}

func sp(name string, port uint32) ServicePort {
	return ServicePort{Name: name, Port: port, Protocol: "TCP"}
}

func epp(name string, port uint32) EndpointPort {
	return EndpointPort{Name: name, Port: port, Protocol: "TCP"}
}

func mkSlice(c ClusterID, ns, name, svc string, ports []EndpointPort, eps ...SliceEndpoint) *EndpointSlice {
	return &EndpointSlice{Cluster: c, Namespace: ns, Name: name, ServiceName: svc, Ports: ports, Endpoints: eps}
}

func ready(pod, node string, addrs ...string) SliceEndpoint {
	return SliceEndpoint{Addresses: addrs, Ready: true, NodeName: node, Pod: pod}
}

func mkPod(c ClusterID, ns, name string, network NetworkID, mtls bool, sa string) *Pod {
	p := &Pod{Cluster: c, Namespace: ns, Name: name, Network: network, ServiceAccount: sa}
	if mtls {
		p.TLSMode = TLSModeIstio
	}
	return p
}

func mkNode(c ClusterID, name string, labels map[string]string, external, internal []string) *Node {
	return &Node{Cluster: c, Name: name, Labels: labels, ExternalIPs: external, InternalIPs: internal}
}

// lbGateway is an east-west gateway Service of network n with LoadBalancer
// ingress IPs.
func lbGateway(c ClusterID, n NetworkID, ips ...string) *Service {
	return &Service{
		Cluster: c, Namespace: "istio-system", Name: "istio-eastwestgateway", Type: ServiceTypeLoadBalancer,
		ClusterIP: "172.20.0.9", Ports: []ServicePort{{Name: "tls", Port: 15443, NodePort: 31443}},
		LoadBalancerIPs: ips, Network: n,
	}
}

func mustParse(t *testing.T, y string) *MeshNetworks {
	t.Helper()
	mn, err := ParseMeshNetworks([]byte(y))
	if err != nil {
		t.Fatalf("ParseMeshNetworks: %v", err)
	}
	return mn
}

func hosts(hs ...Host) map[Host]struct{} {
	if len(hs) == 0 {
		return nil
	}
	m := map[Host]struct{}{}
	for _, h := range hs {
		m[h] = struct{}{}
	}
	return m
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
