package server

import (
	"github.com/causeway-mesh/causeway/internal/gatewaydns"
)

// newGatewayDNS makes the resolver of gateway hostnames the model's
// Config.Resolve, unless the caller set one: answers come from its cache,
// it looks names up again on their TTL, and a changed answer makes the
// model resolve again and the publish loop push the affected views.
// Called by New before the store is built.
func (s *Server) newGatewayDNS(cfg *Config) error {
	if cfg.Model.Resolve != nil {
		return nil
	}
	dc := cfg.GatewayDNS
	dc.Wanted = func() []string { return s.store.GatewayHostnames() }
	dc.Changed = func() {
		s.store.ResolveAgain()
		s.pub.notify()
	}
	dc.Logger = cfg.Logger.With("component", "gatewaydns")
	r, err := gatewaydns.New(dc)
	if err != nil {
		return err
	}
	s.dns = r
	cfg.Model.Resolve = r.Lookup
	return nil
}

// warnings are /debug/networks' warnings beside the model's: a bad
// meshNetworks source, gateway hostnames that fail to resolve.
func (s *Server) warnings() []string {
	w := s.mn.Warnings()
	if s.dns != nil {
		w = append(w, s.dns.Warnings()...)
	}
	return w
}
