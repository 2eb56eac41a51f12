package model

import (
	"fmt"
	"testing"
)

// meshSpec describes a synthetic mesh: clusters c1..cN, cluster ci in
// network ni (system namespace label) with one LoadBalancer east-west
// gateway, and services svc-0.. (at most 8,000) in namespace "default"
// with perCluster (at most 5) mTLS endpoints in every cluster.
type meshSpec struct {
	clusters   int
	services   int
	perCluster int
}

func clusterID(c int) ClusterID { return ClusterID(fmt.Sprintf("c%d", c)) }
func networkID(c int) NetworkID { return NetworkID(fmt.Sprintf("n%d", c)) }
func svcName(i int) string      { return fmt.Sprintf("svc-%d", i) }
func svcHost(i int) Host        { return ServiceHost("default", svcName(i), "") }
func gwIP(c int) string         { return fmt.Sprintf("198.51.100.%d", c) }
func podName(i, j int) string   { return fmt.Sprintf("svc-%d-%d", i, j) }
func sliceName(i int) string    { return svcName(i) + "-abcde" }
func nodeName(c, j int) string  { return fmt.Sprintf("node-%d-%d", c, j%4) }
func epAddr(c, i, j int) string { k := i*64 + j; return fmt.Sprintf("10.%d.%d.%d", c, k/250, k%250+1) }
func meshSlice(c, i, per int, variant int) *EndpointSlice {
	eps := make([]SliceEndpoint, per)
	for j := range per {
		eps[j] = ready(podName(i, j), nodeName(c, j), epAddr(c, i, j))
	}
	if variant != 0 && per > 0 {
		// Another address for the first endpoint: a pod replaced.
		eps[0].Addresses = []string{epAddr(c, i, 5+variant%3)}
	}
	return mkSlice(clusterID(c), "default", sliceName(i), svcName(i), []EndpointPort{epp("http", 8080)}, eps...)
}

func (m meshSpec) build(s *Store) {
	for c := 1; c <= m.clusters; c++ {
		s.UpsertNamespace(&Namespace{Cluster: clusterID(c), Name: "istio-system", Network: networkID(c)})
		s.UpsertService(lbGateway(clusterID(c), networkID(c), gwIP(c)))
		for j := range 4 {
			s.UpsertNode(mkNode(clusterID(c), nodeName(c, j), map[string]string{LabelRegion: "r", LabelZone: fmt.Sprintf("z%d", j)}, nil, []string{fmt.Sprintf("10.%d.255.%d", c, j)}))
		}
		for i := range m.services {
			s.UpsertService(mkService(clusterID(c), "default", svcName(i), sp("http", 80)))
			for j := range m.perCluster {
				s.UpsertPod(mkPod(clusterID(c), "default", podName(i, j), "", true, "sa-"+svcName(i)))
			}
			s.UpsertEndpointSlice(meshSlice(c, i, m.perCluster, 0))
		}
	}
}

func newMesh(tb testing.TB, cfg Config, m meshSpec) *Store {
	tb.Helper()
	s := NewStore(cfg)
	m.build(s)
	s.TakeChanges()
	s.Snapshot()
	return s
}
