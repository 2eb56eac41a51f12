// Package check runs the preflight and post-install checks of a
// multi-cluster mesh across a set of clusters: that the API servers answer
// with a sane clock, that every cluster's plug-in CA chains to one root,
// that the system namespaces carry consistent network labels, that each
// network has a gateway with an address (for NodePort gateways: nodes that
// run a ready gateway pod), that remote secrets parse and reach their
// clusters, that the control plane's serving certificate covers every
// discovery address in use, and that nothing left over (an
// istio-injection=disabled label, an HPA) fights the installation, and
// that sidecar injection works: every namespace labeled for injection has
// a webhook of its revision, whose caBundle is the mesh root, and no
// gateway that needs injection sits in a namespace that turns it off: the
// troubles the home lab ran into. Run reads each cluster once, in parallel;
// the rules are pure functions of what was read.
package check

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/clusters"
)

// Status is the outcome of one check.
type Status string

// The outcomes, from good to bad.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// The checks, in the order they are reported.
const (
	CheckAPI          = "api"
	CheckClock        = "clock"
	CheckNetwork      = "network"
	CheckRootCA       = "root-ca"
	CheckGateway      = "gateway"
	CheckRemoteSecret = "remote-secret"
	CheckServingCert  = "serving-cert"
	CheckInjection    = "injection"
	CheckWebhook      = "webhook"
	CheckHPA          = "hpa"
)

// checkOrder sorts results.
var checkOrder = map[string]int{
	CheckAPI: 0, CheckClock: 1, CheckNetwork: 2, CheckRootCA: 3, CheckGateway: 4,
	CheckRemoteSecret: 5, CheckServingCert: 6, CheckInjection: 7, CheckWebhook: 8, CheckHPA: 9,
}

// Clock skew thresholds between this machine and an API server.
const (
	SkewWarn = 30 * time.Second
	SkewFail = 5 * time.Minute
)

// LabelMultiCluster marks remote secrets (Istio's label).
const LabelMultiCluster = "istio/multiCluster"

// DefaultTimeout bounds each request to an API server.
const DefaultTimeout = 5 * time.Second

// Result is one line of the report.
type Result struct {
	Status Status `json:"status"`
	// Cluster is the cluster the line is about; several, comma-separated,
	// for what concerns a network.
	Cluster string `json:"cluster"`
	Check   string `json:"check"`
	Message string `json:"message"`
	// Fix says what to do; empty when there is nothing to do.
	Fix string `json:"fix,omitempty"`
}

// Summary counts results by status.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// Report is every result of a run.
type Report struct {
	Results []Result `json:"results"`
	Summary Summary  `json:"summary"`
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return r.Summary.Fail > 0 }

// WriteTable prints the report as an aligned table, one line per result
// (and one more, "-> fix", when there is something to do), then the
// summary.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCLUSTER\tCHECK\tMESSAGE")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", res.Status, res.Cluster, res.Check, res.Message)
		if res.Fix != "" {
			fmt.Fprintf(tw, "\t\t\t-> %s\n", res.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d ok, %d warn, %d fail\n", r.Summary.OK, r.Summary.Warn, r.Summary.Fail)
	return err
}

// Cluster is one cluster to check.
type Cluster struct {
	// Name is how the report names it (its kubeconfig context).
	Name string
	// Config reaches its API server.
	Config *rest.Config
}

// Config configures Run.
type Config struct {
	// Clusters to check; at least one.
	Clusters []Cluster
	// SystemNamespace is the control plane's namespace; default
	// istio-system.
	SystemNamespace string
	// DiscoveryAddresses are names proxies dial to reach a control plane
	// (host or host:port); each must be covered by the serving certificate
	// of every control plane found.
	DiscoveryAddresses []string
	// Now is the clock API servers are compared with; default time.Now.
	Now func() time.Time
	// Timeout bounds each request; default DefaultTimeout.
	Timeout time.Duration
	// KubeconfigPolicy is what the kubeconfigs of remote secrets may use
	// (they pass clusters.SanitizeKubeconfig before any is dialed). The
	// zero value is the default policy.
	KubeconfigPolicy clusters.KubeconfigPolicy
}

// Run checks the clusters and returns every result, sorted by check then
// cluster. It fails only when the configuration is unusable; what is wrong
// with the clusters is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Clusters) == 0 {
		return nil, errors.New("no cluster to check: give at least one kubeconfig or context")
	}
	seen := map[string]bool{}
	for _, c := range cfg.Clusters {
		if c.Config == nil {
			return nil, fmt.Errorf("cluster %q has no client configuration", c.Name)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("cluster %q is given twice", c.Name)
		}
		seen[c.Name] = true
	}
	cfg.SystemNamespace = cmp.Or(cfg.SystemNamespace, "istio-system")
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	snaps := make([]*snapshot, len(cfg.Clusters))
	var wg sync.WaitGroup
	for i, c := range cfg.Clusters {
		wg.Go(func() { snaps[i] = gather(ctx, cfg, c) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("check interrupted: %w", err)
	}

	results := evaluate(cfg, snaps)
	order := map[string]int{}
	for i, c := range cfg.Clusters {
		order[c.Name] = i
	}
	sortResults(results, order)
	r := &Report{Results: results}
	for _, res := range results {
		switch res.Status {
		case OK:
			r.Summary.OK++
		case Warn:
			r.Summary.Warn++
		case Fail:
			r.Summary.Fail++
		}
	}
	return r, nil
}

func sortResults(rs []Result, clusterOrder map[string]int) {
	first := func(s string) int {
		name, _, _ := strings.Cut(s, ",")
		return clusterOrder[name]
	}
	// Stable: the rules emit a cluster's lines in a meaningful order.
	slices.SortStableFunc(rs, func(a, b Result) int {
		return cmp.Or(
			cmp.Compare(checkOrder[a.Check], checkOrder[b.Check]),
			cmp.Compare(first(a.Cluster), first(b.Cluster)),
		)
	})
}
