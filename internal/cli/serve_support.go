package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// loadRESTConfig loads a client configuration as kubectl does: the given
// file, else $KUBECONFIG or ~/.kube/config, else the in-cluster config.
func loadRESTConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	if err := checkKubeconfigFiles(rules); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("no Kubernetes client configuration: %w: give --kubeconfig", err)
		}
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// demote is a slog.Handler that logs every record at debug level: for
// libraries whose own logs repeat what Causeway reports itself.
type demote struct{ slog.Handler }

func (d demote) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.Handler.Enabled(ctx, slog.LevelDebug)
}

func (d demote) Handle(ctx context.Context, r slog.Record) error {
	r.Level = slog.LevelDebug
	return d.Handler.Handle(ctx, r)
}

func (d demote) WithAttrs(attrs []slog.Attr) slog.Handler { return demote{d.Handler.WithAttrs(attrs)} }

func (d demote) WithGroup(name string) slog.Handler { return demote{d.Handler.WithGroup(name)} }

// sendBudget parses --xds-send-budget: a size, or none (-1: no bound).
func sendBudget(v string) (int64, error) {
	if strings.EqualFold(strings.TrimSpace(v), "none") {
		return -1, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 {
		return 0, fmt.Errorf("--xds-send-budget %q: want a positive size such as 64Mi, or none", v)
	}
	return q.Value(), nil
}
