package model

// SetGatewayConfig replaces what Istio's Gateways and VirtualServices say
// to east-west gateways (read from the config cluster, as istiod reads
// them). A config equal to the stored one changes nothing; another is
// recorded in Changes.GatewayConfig. cfg is owned by the store afterwards.
func (s *Store) SetGatewayConfig(cfg GatewayConfig) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg.Sort()
	if s.gwCfg == nil && len(cfg.Gateways) == 0 && len(cfg.Routes) == 0 {
		return
	}
	if s.gwCfg != nil && s.gwCfg.Equal(&cfg) {
		return
	}
	s.gwCfg = &cfg
	s.changes.GatewayConfig = true
	s.sinceLast = true
}

// GatewayConfig is what Istio's Gateways and VirtualServices say to
// east-west gateways; shared, read-only. Never nil.
func (sn *Snapshot) GatewayConfig() *GatewayConfig {
	if sn.gwCfg == nil {
		return &GatewayConfig{}
	}
	return sn.gwCfg
}
