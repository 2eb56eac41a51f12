//go:build tools

// Package kube only records the commands built from the pinned Kubernetes
// module; see build.sh.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
