package cli

import (
	"cmp"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	meshcheck "github.com/causeway-mesh/causeway/internal/check"
	"github.com/causeway-mesh/causeway/internal/clusters"
)

// checkFlags are the flags of `causeway check`.
type checkFlags struct {
	kubeconfigs        []string
	contexts           []string
	output             string
	systemNamespace    string
	discoveryAddresses []string
	timeout            time.Duration
	kubeconfigOptions  []string
}

func newCheckCommand() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check --kubeconfig K [--context C]...",
		Short: "Check a set of clusters before and after installing the mesh",
		Long: `Check every cluster of the mesh and print one line per finding, ok, warn or
fail, with the cluster and, when something is wrong, what to do:

  api            the API server answers (its version)
  clock          its clock is within 30s of this machine's (warn), 5m (fail)
  network        the system namespace exists and carries topology.istio.io/network;
                 clusters sharing a network are noted; mesh ids agree
  root-ca        every cluster's cacerts chains to the same root (missing
                 cacerts: warn, with the command that makes it)
  gateway        each network has a gateway Service with an address: a load
                 balancer's, externalIPs, or for NodePort the nodes that run
                 a ready gateway pod (from its EndpointSlices)
  remote-secret  every remote secret (label istio/multiCluster=true) parses
                 as a kubeconfig the control plane accepts and its cluster
                 answers, from this machine (a remote secret is untrusted
                 input: its exec plugins are never run nor its files read,
                 and the options serve refuses are refused here too)
  serving-cert   the control plane's serving certificate (standard names plus
                 its --custom-host args) covers the Services in front of it,
                 every --discovery-address, and istiod-remote; istiod-remote
                 points at a gateway that exposes 15012
  injection      the system namespace is not labeled istio-injection=disabled;
                 no Deployment that needs injection (gateway template,
                 sidecar.istio.io/inject=true, image auto) sits in a namespace
                 labeled istio-injection=disabled (fail)
  webhook        every namespace labeled istio-injection=enabled or
                 istio.io/rev=REV, and every Deployment whose pods are
                 labeled istio.io/rev=REV, has an injection webhook that
                 selects it, of its revision; every injection webhook's caBundle is the
                 mesh root (cacerts, else ConfigMap istio-ca-root-cert);
                 a remote cluster's webhook URL names a host the control
                 plane's serving certificate covers (not an IP)
  hpa            no HorizontalPodAutoscaler fights the replica count of the
                 control plane or gateway

Clusters: several --context of one kubeconfig, several --kubeconfig (each its
current context), or as many --kubeconfig as --context, paired in order.

Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed
or the clusters could not be checked. -o json prints the same report for CI.`,
		Example: `  causeway check --kubeconfig cluster1.kubeconfig --kubeconfig cluster2.kubeconfig
  causeway check --context cluster1 --context cluster2 --discovery-address istiod-1-11-4.istio-system.svc -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.kubeconfigs, "kubeconfig", nil, "kubeconfig file (repeatable; default: $KUBECONFIG, then ~/.kube/config)")
	fl.StringArrayVar(&f.contexts, "context", nil, "kubeconfig context, one per cluster (repeatable; default: the current context)")
	outputFlag(fl, &f.output)
	fl.StringVar(&f.systemNamespace, "system-namespace", "istio-system", "the control plane's namespace")
	fl.StringArrayVar(&f.discoveryAddresses, "discovery-address", nil, "a name proxies dial to reach the control plane, checked against its serving certificate (repeatable)")
	fl.DurationVar(&f.timeout, "timeout", meshcheck.DefaultTimeout, "limit of each request to an API server")
	fl.StringSliceVar(&f.kubeconfigOptions, "allow-kubeconfig-option", nil, kubeconfigOptionUsage)
	return cmd
}

// run checks the clusters of the flags, prints the report, and fails when a
// check failed.
func (f *checkFlags) run(cmd *cobra.Command) error {
	if err := checkOutput(f.output); err != nil {
		return err
	}
	clusters, err := f.clusters()
	if err != nil {
		return err
	}
	kcPolicy, err := kubeconfigPolicy(f.kubeconfigOptions)
	if err != nil {
		return err
	}
	report, err := meshcheck.Run(cmd.Context(), meshcheck.Config{
		Clusters:           clusters,
		SystemNamespace:    f.systemNamespace,
		DiscoveryAddresses: f.discoveryAddresses,
		Timeout:            f.timeout,
		KubeconfigPolicy:   kcPolicy,
	})
	if err != nil {
		return err
	}
	if f.output != outputTable {
		err = writeStructured(cmd.OutOrStdout(), f.output, report)
	} else {
		err = report.WriteTable(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	if report.Failed() {
		return fmt.Errorf("%d of %d checks failed", report.Summary.Fail, len(report.Results))
	}
	return nil
}

// clusters pairs the kubeconfigs and contexts into clusters, each named
// by its context.
func (f *checkFlags) clusters() ([]meshcheck.Cluster, error) {
	type pair struct{ kubeconfig, context string }
	var pairs []pair
	switch nk, nc := len(f.kubeconfigs), len(f.contexts); {
	case nk <= 1 && nc == 0:
		pairs = []pair{{kubeconfig: first(f.kubeconfigs)}}
	case nk <= 1:
		for _, c := range f.contexts {
			pairs = append(pairs, pair{first(f.kubeconfigs), c})
		}
	case nc == 0:
		for _, k := range f.kubeconfigs {
			pairs = append(pairs, pair{kubeconfig: k})
		}
	case nk == nc:
		for i := range f.kubeconfigs {
			pairs = append(pairs, pair{f.kubeconfigs[i], f.contexts[i]})
		}
	default:
		return nil, fmt.Errorf("%d --kubeconfig and %d --context: give one kubeconfig with several contexts, several kubeconfigs, or as many of each (paired in order)", nk, nc)
	}
	var out []meshcheck.Cluster
	seen := map[string]string{} // cluster name: its kubeconfig
	for _, p := range pairs {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = p.kubeconfig
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: p.context})
		raw, err := loader.RawConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cmp.Or(p.kubeconfig, "(default)"), err)
		}
		rc, err := loader.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s, context %s: %w", cmp.Or(p.kubeconfig, "(default)"), cmp.Or(p.context, raw.CurrentContext, "(current)"), err)
		}
		// Named by the context; by file and context when two files use
		// the same context name.
		name := cmp.Or(p.context, raw.CurrentContext, rc.Host)
		if file, dup := seen[name]; dup && file != p.kubeconfig {
			name = filepath.Base(p.kubeconfig) + ":" + name
		}
		if _, dup := seen[name]; dup {
			return nil, fmt.Errorf("cluster %s is given twice", name)
		}
		seen[name] = p.kubeconfig
		out = append(out, meshcheck.Cluster{Name: name, Config: rc})
	}
	return out, nil
}

// kubeconfigPolicy parses --allow-kubeconfig-option.
func kubeconfigPolicy(values []string) (clusters.KubeconfigPolicy, error) {
	p, err := clusters.ParseKubeconfigPolicy(values)
	if err != nil {
		return clusters.KubeconfigPolicy{}, fmt.Errorf("%s: %w", clusters.AllowOptionFlag, err)
	}
	return p, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
