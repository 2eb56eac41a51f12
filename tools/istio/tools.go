//go:build tools

// Package tools records the istio.io/istio commands the tests build (istiod
// for the parity test, pilot-agent for the sidecar agent's test), so that
// `go mod tidy` keeps their dependencies in go.sum.
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
