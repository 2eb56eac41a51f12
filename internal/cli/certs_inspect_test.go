package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/internal/pki"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// testBundle makes a root and an intermediate CA for cluster.
func testBundle(t *testing.T, cluster string) pki.Bundle {
	t.Helper()
	rootCert, rootKey, err := pki.NewRoot(pki.RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.NewIntermediate(pki.IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A folder written by the old writer and cut short: the new certificate
// with the old key. inspect says the set is torn and what to run.
func TestCertsInspectTornSet(t *testing.T) {
	old, next := testBundle(t, "c1"), testBundle(t, "c1")
	dir := filepath.Join(t.TempDir(), "c1")
	writeFile(t, filepath.Join(dir, pki.FileCAKey), old.CAKey)
	writeFile(t, filepath.Join(dir, pki.FileCertChain), old.CertChain)
	writeFile(t, filepath.Join(dir, pki.FileRootCert), old.RootCert)
	writeFile(t, filepath.Join(dir, pki.FileCACert), next.CACert)
	out := mustCauseway(t, "certs", "inspect", dir)
	testkit.ContainsAll(t, "inspect of a torn set", out, "THE SET IS TORN", "do not plug it in", "causeway certs intermediate --root ROOT --cluster ID --force --out "+dir)
	// A chain from another CA is torn too.
	writeFile(t, filepath.Join(dir, pki.FileCACert), old.CACert)
	writeFile(t, filepath.Join(dir, pki.FileCertChain), next.CertChain)
	writeFile(t, filepath.Join(dir, pki.FileRootCert), next.RootCert)
	if out := mustCauseway(t, "certs", "inspect", dir); !strings.Contains(out, "THE SET IS TORN") {
		t.Errorf("inspect of a set with another CA's chain lacks the torn advice:\n%s", out)
	}
}

// A chain with the root first printed no chain line at all.
func TestCertsInspectChainOrder(t *testing.T) {
	b := testBundle(t, "c1")
	p := filepath.Join(t.TempDir(), "chain.pem")
	writeFile(t, p, append(append([]byte{}, b.RootCert...), b.CACert...))
	out := mustCauseway(t, "certs", "inspect", p)
	if !strings.Contains(out, "chain: NOT IN ORDER") || !strings.Contains(out, "root last") {
		t.Errorf("inspect of a chain in the wrong order does not say so:\n%s", out)
	}
}
