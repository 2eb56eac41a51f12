// Package abuse plays hostile clients and hostile inputs against a real
// `causeway serve` (and the commands that read the same inputs, such as
// `causeway check`) on real API servers (internal/testenv), and asserts a
// bound for each: a remote secret's exec plugin never runs and a local
// token never leaves the machine, and the resource bounds the other files
// of this package state. The tests build the causeway binary into a
// temporary folder; they need the Kubernetes binaries of tools/kube/build.sh
// (CAUSEWAY_KUBE_BIN) and are skipped by -short, or fail under CI.
package abuse
