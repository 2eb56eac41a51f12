package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/server"
)

// drainFlags are the flags of `causeway serve` that shape its drain on
// SIGTERM (docs/drain.md).
type drainFlags struct {
	duration time.Duration
}

func (f *drainFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&f.duration, "drain-duration", server.DefaultDrainDuration,
		"on SIGTERM (or SIGINT), the window over which connected proxies' xDS streams are ended, evenly spread, so that they reconnect "+
			"to another replica a few at a time (new streams are refused and /ready turns false at once); serve exits at the latest 5s after it. "+
			"0 ends every stream at once. Keep it under the pod's terminationGracePeriodSeconds minus 5s. A second signal ends the process at once")
}

// apply sets the drain window in cfg.
func (f *drainFlags) apply(cfg *server.Config) error {
	if f.duration < 0 {
		return fmt.Errorf("--drain-duration %s: want 0 (end every stream at once) or a positive duration such as 20s", f.duration)
	}
	cfg.DrainDuration = f.duration
	return nil
}
