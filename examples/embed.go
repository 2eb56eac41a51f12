// Package examples bundles the example mesh setups with the binary, so that
// `causeway view`, `causeway networks` and `causeway serve` can run on them
// without a cluster.
//
// The "home" setup (folder home/) is two clusters on two networks: cluster1
// (network1) with a LoadBalancer east-west gateway, cluster2 (network2) with
// only a NodePort one, and the helloworld (v1 in cluster1, v2 in cluster2)
// and sleep samples in namespace sample. It holds one folder per cluster, as
// internal/manifests reads them, and an optional mesh-networks.yaml.
package examples

import "embed"

// Home holds the home setup under "home/": load it with
// manifests.LoadFS(ctx, examples.Home, "home"), and its meshNetworks from
// "home/mesh-networks.yaml".
//
//go:embed home
var Home embed.FS
