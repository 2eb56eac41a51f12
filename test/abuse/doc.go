// Package abuse plays hostile and careless clients and inputs against the
// real `causeway` binary (built from the working tree into a temporary
// folder) on real API servers (internal/testenv), and the commands that read
// the same inputs, such as `causeway check`. Each attack stays within a bound
// written in its test: a remote secret's exec plugin never runs and a local
// token never leaves the machine; memory comes back after the attacker
// leaves; a normal proxy or client is served within a time during the
// attack; an attacker draws at most a rate of responses. The bounds were
// chosen from measurements, recorded beside them. The tests need the
// Kubernetes binaries of tools/kube/build.sh (CAUSEWAY_KUBE_BIN) and skip
// only under -short outside CI (testreq.NotShort).
package abuse
