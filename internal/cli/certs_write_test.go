package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/internal/pki"
)

// newBundle makes a root and an intermediate CA for cluster.
func newBundle(t *testing.T, cluster string) pki.Bundle {
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

func bundleFiles(b pki.Bundle) []certsFile {
	return []certsFile{
		{pki.FileCACert, b.CACert, certsCertMode},
		{pki.FileCAKey, b.CAKey, certsKeyMode},
		{pki.FileRootCert, b.RootCert, certsCertMode},
		{pki.FileCertChain, b.CertChain, certsCertMode},
	}
}

// A crash between two steps of a write (a hook that fails there) leaves the
// old set whole: before, the files were renamed one by one and a kill in
// between left the new certificate with the old key.
func TestCertsWriteSetIsAtomic(t *testing.T) {
	old, next := newBundle(t, "c1"), newBundle(t, "c1")
	crash := errors.New("killed")
	for _, legacy := range []bool{false, true} {
		for _, step := range []certsStep{certsStepAdopted, certsStepWritten, certsStepLinked, certsStepSwapped} {
			name := string(step)
			if legacy {
				name = "plain files/" + name
			}
			t.Run(name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "c1")
				if legacy {
					// The layout of the file-by-file writer: plain files.
					for _, f := range bundleFiles(old) {
						writeFile(t, filepath.Join(dir, f.name), f.data)
					}
				} else if err := certsWriteFiles(dir, bundleFiles(old), false); err != nil {
					t.Fatal(err)
				}
				err := certsWriteSet(dir, bundleFiles(next), true, func(s certsStep) error {
					if s == step {
						return crash
					}
					return nil
				})
				if !errors.Is(err, crash) {
					t.Fatalf("certsWriteSet = %v, want the crash", err)
				}
				got := readBundle(t, dir)
				if _, err := pki.NewCA(got); err != nil {
					t.Fatalf("the set on disk is torn after a crash at %s: %v", step, err)
				}
				want := old
				if step == certsStepSwapped {
					want = next // the swap is the commit point
				}
				if !bytes.Equal(got.CAKey, want.CAKey) || !bytes.Equal(got.CACert, want.CACert) {
					t.Errorf("after a crash at %s the set is not the %s one", step, map[bool]string{true: "new", false: "old"}[step == certsStepSwapped])
				}
				// A write after the crash completes and leaves one set.
				if err := certsWriteFiles(dir, bundleFiles(next), true); err != nil {
					t.Fatal(err)
				}
				if got := readBundle(t, dir); !bytes.Equal(got.CAKey, next.CAKey) || !bytes.Equal(got.CertChain, next.CertChain) {
					t.Error("the write after the crash did not land")
				}
			})
		}
	}
}

// A folder written by the old writer and cut short: the new certificate
// with the old key. inspect says the set is torn and what to run.
func TestCertsInspectTornSet(t *testing.T) {
	old, next := newBundle(t, "c1"), newBundle(t, "c1")
	dir := filepath.Join(t.TempDir(), "c1")
	for _, f := range bundleFiles(old) {
		writeFile(t, filepath.Join(dir, f.name), f.data)
	}
	writeFile(t, filepath.Join(dir, pki.FileCACert), next.CACert)
	out := mustCauseway(t, "certs", "inspect", dir)
	for _, want := range []string{"THE SET IS TORN", "do not plug it in", "causeway certs intermediate --root ROOT --cluster ID --force --out " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a torn set lacks %q:\n%s", want, out)
		}
	}
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
	b := newBundle(t, "c1")
	p := filepath.Join(t.TempDir(), "chain.pem")
	writeFile(t, p, append(append([]byte{}, b.RootCert...), b.CACert...))
	out := mustCauseway(t, "certs", "inspect", p)
	if !strings.Contains(out, "chain: NOT IN ORDER") || !strings.Contains(out, "root last") {
		t.Errorf("inspect of a chain in the wrong order does not say so:\n%s", out)
	}
}

// Two sets in one folder (a root, then an intermediate with --out the same
// folder): the second keeps the first's files.
func TestCertsWriteSetKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if err := certsWriteFiles(dir, []certsFile{{pki.FileRootKey, []byte("root key"), certsKeyMode}}, false); err != nil {
		t.Fatal(err)
	}
	if err := certsWriteFiles(dir, []certsFile{{pki.FileCAKey, []byte("ca key"), certsKeyMode}}, false); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, pki.FileRootKey)); string(got) != "root key" {
		t.Errorf("%s = %q after a second set, want it kept", pki.FileRootKey, got)
	}
	fi, err := os.Stat(filepath.Join(dir, pki.FileCAKey))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != certsKeyMode {
		t.Errorf("%s has mode %v, want %v", pki.FileCAKey, fi.Mode().Perm(), certsKeyMode)
	}
}
