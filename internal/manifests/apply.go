package manifests

import "github.com/causeway-mesh/causeway/internal/model"

// Apply feeds every object of the set into st, cluster by cluster: first
// namespaces and nodes, then pods, services and endpoint slices, the order
// in which the live informers sync. The store owns the objects afterwards;
// the set never changes them, so the same set may feed several stores.
func (s *Set) Apply(st *model.Store) {
	for _, c := range s.clusters {
		for _, ns := range c.namespaces {
			st.UpsertNamespace(ns)
		}
		for _, n := range c.nodes {
			st.UpsertNode(n)
		}
		for _, p := range c.pods {
			st.UpsertPod(p)
		}
		for _, svc := range c.services {
			st.UpsertService(svc)
		}
		for _, es := range c.slices {
			st.UpsertEndpointSlice(es)
		}
	}
}
