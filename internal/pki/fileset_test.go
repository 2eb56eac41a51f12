package pki

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// newBundle makes a root and an intermediate CA for cluster.
func newBundle(t *testing.T, cluster string) Bundle {
	t.Helper()
	rootCert, rootKey, err := NewRoot(RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewIntermediate(IntermediateOptions{RootCert: rootCert, RootKey: rootKey, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bundleFiles(b Bundle) []File {
	return []File{
		{Name: FileCACert, Data: b.CACert, Mode: CertMode},
		{Name: FileCAKey, Data: b.CAKey, Mode: KeyMode},
		{Name: FileRootCert, Data: b.RootCert, Mode: CertMode},
		{Name: FileCertChain, Data: b.CertChain, Mode: CertMode},
	}
}

// A crash between two steps of a write (a hook that fails there) leaves the
// old set whole: before, the files were renamed one by one and a kill in
// between left the new certificate with the old key.
func TestCertsWriteSetIsAtomic(t *testing.T) {
	old, next := newBundle(t, "c1"), newBundle(t, "c1")
	crash := errors.New("killed")
	for _, legacy := range []bool{false, true} {
		for _, step := range []WriteStep{StepAdopted, StepWritten, StepLinked, StepSwapped} {
			name := string(step)
			if legacy {
				name = "plain files/" + name
			}
			t.Run(name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "c1")
				if legacy {
					// The layout of the file-by-file writer: plain files.
					if err := os.MkdirAll(dir, DirMode); err != nil {
						t.Fatal(err)
					}
					for _, f := range bundleFiles(old) {
						if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o600); err != nil {
							t.Fatal(err)
						}
					}
				} else if err := WriteFiles(dir, bundleFiles(old), false); err != nil {
					t.Fatal(err)
				}
				err := WriteFileSet(dir, bundleFiles(next), true, func(s WriteStep) error {
					if s == step {
						return crash
					}
					return nil
				})
				if !errors.Is(err, crash) {
					t.Fatalf("WriteFileSet = %v, want the crash", err)
				}
				got, err := ReadBundle(t.Context(), dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := NewCA(got); err != nil {
					t.Fatalf("the set on disk is torn after a crash at %s: %v", step, err)
				}
				want := old
				if step == StepSwapped {
					want = next // the swap is the commit point
				}
				if !bytes.Equal(got.CAKey, want.CAKey) || !bytes.Equal(got.CACert, want.CACert) {
					t.Errorf("after a crash at %s the set is not the %s one", step, map[bool]string{true: "new", false: "old"}[step == StepSwapped])
				}
				// A write after the crash completes and leaves one set.
				if err := WriteFiles(dir, bundleFiles(next), true); err != nil {
					t.Fatal(err)
				}
				if got, err := ReadBundle(t.Context(), dir); err != nil || !bytes.Equal(got.CAKey, next.CAKey) || !bytes.Equal(got.CertChain, next.CertChain) {
					t.Error("the write after the crash did not land")
				}
			})
		}
	}
}

// Two sets in one folder (a root, then an intermediate with --out the same
// folder): the second keeps the first's files.
func TestCertsWriteSetKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFiles(dir, []File{{Name: FileRootKey, Data: []byte("root key"), Mode: KeyMode}}, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(dir, []File{{Name: FileCAKey, Data: []byte("ca key"), Mode: KeyMode}}, false); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, FileRootKey)); err != nil || string(got) != "root key" {
		t.Errorf("%s = %q after a second set, want it kept", FileRootKey, got)
	}
	fi, err := os.Stat(filepath.Join(dir, FileCAKey))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != KeyMode {
		t.Errorf("%s has mode %v, want %v", FileCAKey, fi.Mode().Perm(), KeyMode)
	}
}
