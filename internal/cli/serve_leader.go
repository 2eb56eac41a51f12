package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/leader"
	"github.com/causeway-mesh/causeway/internal/server"
)

// leaderFlags are the flags of `causeway serve` that elect the replica
// that writes to the clusters (docs/replicas.md).
type leaderFlags struct {
	enabled       bool
	identity      string
	leaseName     string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
}

func (f *leaderFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.enabled, "leader-elect", true,
		"elect, through a Lease in the system namespace of the config cluster, the one replica that writes to the clusters "+
			"(the istio-ca-root-cert ConfigMaps); every replica watches and serves. false: this replica always writes (run one replica only)")
	fl.StringVar(&f.identity, "leader-identity", "",
		"this replica's name in the leader Lease, unique among the replicas (default: $POD_NAME, else the host name and a random suffix)")
	fl.StringVar(&f.leaseName, "leader-lease-name", leader.DefaultLeaseName,
		"name of the leader Lease (coordination.k8s.io) in the system namespace of the config cluster")
	fl.DurationVar(&f.leaseDuration, "leader-lease-duration", leader.DefaultLeaseDuration,
		"how long the other replicas wait after the leader's last renewal before one takes over (when the leader dies without giving the lease up)")
	fl.DurationVar(&f.renewDeadline, "leader-renew-deadline", leader.DefaultRenewDeadline,
		"how long the leader keeps trying to renew the lease before it stops writing; shorter than --leader-lease-duration")
	fl.DurationVar(&f.retryPeriod, "leader-retry-period", leader.DefaultRetryPeriod,
		"wait between two tries to take or renew the lease")
}

// apply sets the election in cfg; getenv and hostname find the default
// identity.
func (f *leaderFlags) apply(cfg *server.Config, getenv func(string) string, hostname func() (string, error)) error {
	le := server.LeaderElection{
		Enabled:       f.enabled,
		Identity:      strings.TrimSpace(f.identity),
		LeaseName:     f.leaseName,
		LeaseDuration: f.leaseDuration,
		RenewDeadline: f.renewDeadline,
		RetryPeriod:   f.retryPeriod,
	}
	if le.Enabled {
		if err := leader.CheckDurations(le.LeaseDuration, le.RenewDeadline, le.RetryPeriod); err != nil {
			return err
		}
	}
	if le.Identity == "" {
		le.Identity = strings.TrimSpace(getenv("POD_NAME"))
	}
	if le.Identity == "" {
		host, err := hostname()
		if err != nil {
			return fmt.Errorf("--leader-identity: no POD_NAME and no host name (%w): give --leader-identity", err)
		}
		var suffix [4]byte
		_, _ = rand.Read(suffix[:])
		le.Identity = host + "_" + hex.EncodeToString(suffix[:])
	}
	cfg.LeaderElection = le
	return nil
}
