package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/causeway-mesh/causeway/internal/leader"
)

// LeaderElection configures the election of the replica that writes to the
// clusters (docs/replicas.md). Every replica watches and serves; only the
// leader publishes the root ConfigMaps.
type LeaderElection struct {
	// Enabled turns the election on; off, this replica always writes (one
	// replica only).
	Enabled bool
	// Identity names this replica in the Lease: unique among replicas
	// (the pod name). Required when Enabled.
	Identity string
	// LeaseName is the Lease of the system namespace of the config
	// cluster; default leader.DefaultLeaseName.
	LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod: see leader.Config.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// newLeader builds the elector (or an always-open gate) of a server that
// watches clusters, and its debug page.
func (s *Server) newLeader() error {
	le := s.cfg.LeaderElection
	if !le.Enabled {
		s.gate = leader.AlwaysOpen()
		return nil
	}
	var err error
	s.elector, err = leader.New(leader.Config{
		Client:        s.cfg.Local.Kube,
		Namespace:     s.cfg.SystemNamespace,
		Name:          le.LeaseName,
		Identity:      le.Identity,
		LeaseDuration: le.LeaseDuration,
		RenewDeadline: le.RenewDeadline,
		RetryPeriod:   le.RetryPeriod,
		Registerer:    s.registry,
		Logger:        s.cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.gate = s.elector.Gate()
	return nil
}

// leaderHandler serves the election's state, with the Lease read now.
func (s *Server) leaderHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := leader.Status{Enabled: false, IsLeader: true, Identity: s.cfg.LeaderElection.Identity}
		if s.elector != nil {
			st = s.elector.ReadLease(r.Context())
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
}

// runLeader takes part in the election until ctx ends; without one it
// returns at once.
func (s *Server) runLeader(ctx context.Context) {
	if s.elector != nil {
		s.elector.Run(ctx)
	}
}

// AsLeader runs fn while this replica leads (always, without leader
// election), until ctx ends: every writer to a cluster goes through it.
func (s *Server) AsLeader(ctx context.Context, fn func(ctx context.Context)) {
	s.gate.Do(ctx, fn)
}
