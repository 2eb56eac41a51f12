//go:build tools

// Package tools records the istio.io/istio command the parity test builds, so
// that `go mod tidy` keeps its dependencies in go.sum.
package tools

import _ "istio.io/istio/pilot/cmd/pilot-discovery"
