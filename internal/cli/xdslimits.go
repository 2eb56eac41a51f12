package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/causeway-mesh/causeway/internal/xds"
)

// xdsLimitFlags are the flags of `causeway serve` that bound what one xDS
// client can make the control plane hold (docs/xds-limits.md).
type xdsLimitFlags struct {
	connSendBudget  string
	sendBudgetWait  time.Duration
	maxViews        int
	viewGrace       time.Duration
	maxRequestBytes string
	maxRequestNames int
	namesCacheBytes string
	resendRate      float64
	resendBurst     int
}

func (f *xdsLimitFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.connSendBudget, "xds-conn-send-budget", "auto",
		"share of --xds-send-budget the streams of one client connection may hold at once (a size such as 8Mi, auto: an eighth of the budget, or none); "+
			"a client whose streams do not read then delays only itself")
	fl.DurationVar(&f.sendBudgetWait, "xds-send-budget-wait", xds.DefaultSendBudgetWait,
		"how long a large xDS response may wait for the send budget before its stream is closed with ResourceExhausted (the client reconnects)")
	fl.IntVar(&f.maxViews, "xds-max-views", xds.DefaultMaxViews,
		"number of xDS views (one resource type for one network, namespace and cluster that proxies claim) from which a proxy whose "+
			"NETWORK or CLUSTER_ID is unknown to the mesh is refused with ResourceExhausted; views of known networks and clusters are still made; negative: no bound")
	fl.DurationVar(&f.viewGrace, "xds-view-grace", xds.DefaultViewGrace,
		"how long an xDS view that no proxy uses any more is kept (a proxy that reconnects within it finds it built) before it is freed")
	fl.StringVar(&f.maxRequestBytes, "xds-max-request-bytes", "4Mi",
		"largest xDS request accepted (a size); a larger one ends its stream with ResourceExhausted. Envoy's largest request, "+
			"its EDS subscription, is about 55 bytes per cluster: 4Mi holds 75,000")
	fl.IntVar(&f.maxRequestNames, "xds-max-request-names", xds.DefaultMaxRequestNames,
		"most resource names one xDS request may carry; more ends the stream with ResourceExhausted before any name is decoded")
	fl.StringVar(&f.namesCacheBytes, "xds-names-cache-bytes", "64Mi",
		"memory (a size) of the resource-name lists shared between xDS requests that carry the same list; past it the cache starts over")
	fl.Float64Var(&f.resendRate, "xds-resend-rate", xds.DefaultResendRate,
		"requests per second of one type that one xDS stream may have answered at once, after --xds-resend-burst; a faster "+
			"client waits (publishes are not limited); negative: no limit")
	fl.IntVar(&f.resendBurst, "xds-resend-burst", xds.DefaultResendBurst,
		"requests of one type one xDS stream may have answered at once before --xds-resend-rate applies")
}

// apply sets the limits in cfg; cfg.SendBudget is already set.
func (f *xdsLimitFlags) apply(cfg *xds.Config) error {
	switch v := strings.TrimSpace(f.connSendBudget); {
	case strings.EqualFold(v, "auto"):
	case strings.EqualFold(v, "none"):
		cfg.ConnSendBudget = -1
	default:
		n, err := positiveSize("--xds-conn-send-budget", v)
		if err != nil {
			return err
		}
		cfg.ConnSendBudget = n
	}
	if f.sendBudgetWait <= 0 {
		return fmt.Errorf("--xds-send-budget-wait %s: want a positive duration such as 2m", f.sendBudgetWait)
	}
	cfg.SendBudgetWait = f.sendBudgetWait
	if f.maxViews == 0 {
		return fmt.Errorf("--xds-max-views 0: want a positive number, or -1 for no bound")
	}
	cfg.MaxViews = f.maxViews
	if f.viewGrace <= 0 {
		return fmt.Errorf("--xds-view-grace %s: want a positive duration such as 2m", f.viewGrace)
	}
	cfg.ViewGrace = f.viewGrace
	n, err := positiveSize("--xds-max-request-bytes", f.maxRequestBytes)
	if err != nil {
		return err
	}
	if n > 1<<30 {
		return fmt.Errorf("--xds-max-request-bytes %s: at most 1Gi", f.maxRequestBytes)
	}
	cfg.MaxRequestBytes = int(n)
	if f.maxRequestNames <= 0 {
		return fmt.Errorf("--xds-max-request-names %d: want a positive number", f.maxRequestNames)
	}
	cfg.MaxRequestNames = f.maxRequestNames
	if cfg.NamesCacheBytes, err = positiveSize("--xds-names-cache-bytes", f.namesCacheBytes); err != nil {
		return err
	}
	if f.resendRate == 0 {
		return fmt.Errorf("--xds-resend-rate 0: want a positive rate, or -1 for no limit")
	}
	cfg.ResendRate = f.resendRate
	if f.resendBurst <= 0 {
		return fmt.Errorf("--xds-resend-burst %d: want a positive number", f.resendBurst)
	}
	cfg.ResendBurst = f.resendBurst
	return nil
}

// positiveSize parses a size flag such as 4Mi.
func positiveSize(flag, v string) (int64, error) {
	q, err := resource.ParseQuantity(strings.TrimSpace(v))
	if err != nil || q.Sign() <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive size such as 4Mi", flag, v)
	}
	return q.Value(), nil
}
