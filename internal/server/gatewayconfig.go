package server

import (
	"context"

	"github.com/causeway-mesh/causeway/internal/kube"
)

// newGatewayConfigWatch builds the watch of Istio's Gateways and
// VirtualServices of the config cluster (what configures Istio's Envoy
// east-west gateways; docs/eastwest-envoy.md), when the config cluster has
// an Istio client.
func (s *Server) newGatewayConfigWatch() error {
	if s.cfg.Local.Istio == nil {
		return nil
	}
	w, err := kube.NewGatewayConfigWatch(kube.GatewayConfigWatchConfig{
		Istio:   s.cfg.Local.Istio,
		Store:   s.store,
		Changed: s.pub.notify,
		Domain:  s.cfg.Model.Domain,
		Recheck: s.cfg.PeerAuthRecheck,
		Logger:  s.log.With("component", "istio-gateways"),
	})
	if err != nil {
		return err
	}
	s.gwWatch = w
	return nil
}

// runGatewayConfigWatch runs the watch, if any, until ctx is done.
func (s *Server) runGatewayConfigWatch(ctx context.Context) {
	if s.gwWatch != nil {
		s.gwWatch.Run(ctx)
	}
}
