package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/manifests"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/server"
	"github.com/causeway-mesh/causeway/internal/xds"
)

// serveChoices are the serve flags that are parsed from text, checked.
type serveChoices struct {
	stale      clusters.StalePolicy
	noGateway  model.NoGatewayPolicy
	nodePort   model.NodePortMode
	sendBudget int64
	kubeconfig clusters.KubeconfigPolicy
}

// config turns the flags into the server's Config: it checks them, fills in
// the Config, applies the flag groups, then adds what is served: the
// manifests of --manifests, or the clusters --kubeconfig reaches.
func (f *serveFlags) config(ctx context.Context, log *slog.Logger) (server.Config, error) {
	choices, err := f.parse()
	if err != nil {
		return server.Config{}, err
	}
	cfg := f.baseConfig(choices, log)
	if err := f.applyGroups(&cfg); err != nil {
		return server.Config{}, err
	}
	if f.manifests != "" {
		return f.serveManifests(ctx, log, cfg)
	}
	return f.watchClusters(cfg)
}

// parse checks the flags that need it and parses those given as text.
func (f *serveFlags) parse() (serveChoices, error) {
	if f.manifests == "" && f.clusterID == "" {
		return serveChoices{}, fmt.Errorf("--cluster-id is required: the id of the cluster --kubeconfig reaches (e.g. cluster1)")
	}
	if err := model.CheckClusterID(f.clusterID); f.clusterID != "" && err != nil {
		return serveChoices{}, fmt.Errorf("--cluster-id: %w", err)
	}
	policy, err := clusters.ParseStalePolicy(f.stalePolicy)
	if err != nil {
		return serveChoices{}, fmt.Errorf("--stale-cluster-policy: %w", err)
	}
	ngw := model.NoGatewayPolicy(f.noGatewayEndpoints)
	if ngw != model.NoGatewayDrop && ngw != model.NoGatewayDirect {
		return serveChoices{}, fmt.Errorf("--no-gateway-endpoints %q: want drop or direct", f.noGatewayEndpoints)
	}
	npm := model.NodePortMode(f.nodePortGateways)
	if npm != model.NodePortEndpoints && npm != model.NodePortSelector {
		return serveChoices{}, fmt.Errorf("--nodeport-gateways %q: want endpoints or selector", f.nodePortGateways)
	}
	if f.meshNetworks != "" && f.meshNetworksCM != "" {
		return serveChoices{}, fmt.Errorf("--mesh-networks and --mesh-networks-configmap both given: use one")
	}
	budget, err := sendBudget(f.sendBudget)
	if err != nil {
		return serveChoices{}, err
	}
	kcPolicy, err := kubeconfigPolicy(f.kubeconfigOptions)
	if err != nil {
		return serveChoices{}, err
	}
	return serveChoices{stale: policy, noGateway: ngw, nodePort: npm, sendBudget: budget, kubeconfig: kcPolicy}, nil
}

// baseConfig is the Config of the plain flags and the parsed choices.
func (f *serveFlags) baseConfig(c serveChoices, log *slog.Logger) server.Config {
	return server.Config{
		SystemNamespace: f.systemNamespace,
		Model: model.Config{
			Domain:             f.domain,
			SystemNamespace:    f.systemNamespace,
			NoGatewayEndpoints: c.noGateway,
			NodePortGateways:   c.nodePort,
		},
		MeshNetworksFile:      f.meshNetworks,
		MeshNetworksPoll:      f.meshNetworksPoll,
		MeshNetworksConfigMap: f.meshNetworksCM,
		MeshConfigFile:        f.meshConfig,
		DebugAddr:             f.debugAddr,
		Profiling:             f.profiling,
		DebugRemote:           f.debugRemote,
		ProfileMaxSeconds:     f.profileMaxSeconds,
		StalePolicy:           c.stale,
		ProbeInterval:         f.probeInterval,
		ClusterSyncTimeout:    f.clusterSyncTimeout,
		Debounce:              f.debounce,
		XDSAddr:               f.xdsAddr,
		XDS:                   xds.Config{TrustDomain: f.trustDomain, SendBudget: c.sendBudget},
		XDSTLSAddr:            f.xdsTLSAddr,
		CA: ca.Config{
			TrustDomain:    f.trustDomain,
			WorkloadTTLMax: f.workloadCertTTLMax,
			Revision:       f.revision,
			CustomHosts:    f.customHosts,
			ReviewQPS:      f.reviewQPS,
			ReviewBurst:    f.reviewBurst,
		},
		NewClients: clusters.KubeconfigClientsWith(c.kubeconfig),
		Logger:     log,
	}
}

// applyGroups applies the flag groups (xDS limits, injection, drain,
// rotation DNS, leader election) to cfg.
func (f *serveFlags) applyGroups(cfg *server.Config) error {
	if err := f.xdsLimits.apply(&cfg.XDS); err != nil {
		return err
	}
	if err := f.inject.apply(cfg); err != nil {
		return err
	}
	if err := f.drain.apply(cfg); err != nil {
		return err
	}
	if err := f.rotationDNS.apply(cfg); err != nil {
		return err
	}
	return f.leader.apply(cfg, os.Getenv, os.Hostname)
}

// serveManifests completes cfg to serve the objects of --manifests, with no
// cluster watched.
func (f *serveFlags) serveManifests(ctx context.Context, log *slog.Logger, cfg server.Config) (server.Config, error) {
	if f.kubeconfig != "" || f.meshNetworksCM != "" {
		return server.Config{}, fmt.Errorf("--manifests serves files: it takes neither --kubeconfig nor --mesh-networks-configmap")
	}
	set, err := manifests.Load(ctx, f.manifests)
	if err != nil {
		return server.Config{}, fmt.Errorf("--manifests: %w", err)
	}
	if s := set.SkippedSummary(); s != "" {
		log.Info("--manifests: " + s)
	}
	cfg.Manifests = set
	return cfg, nil
}

// watchClusters completes cfg to watch the config cluster --kubeconfig
// reaches, as --cluster-id.
func (f *serveFlags) watchClusters(cfg server.Config) (server.Config, error) {
	restCfg, err := loadRESTConfig(f.kubeconfig)
	if err != nil {
		return server.Config{}, err
	}
	if cfg.Local, err = clusters.RESTClients(restCfg); err != nil {
		return server.Config{}, err
	}
	cfg.ClusterID = model.ClusterID(f.clusterID)
	return cfg, nil
}
