package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadIstioFile: a file of the oracle's folder is read from there, and
// one it lacks from the pinned module, where a missing module is an error
// that says how to get it.
func TestReadIstioFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "injection-template.yaml"), []byte("template"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CAUSEWAY_ISTIO_BIN", dir)
	t.Setenv("GOMODCACHE", t.TempDir())
	b, err := ReadIstioFile(t.Context(), "injection-template.yaml", "manifests/nope.yaml")
	if err != nil || string(b) != "template" {
		t.Fatalf("ReadIstioFile = %q, %v; want the folder's file", b, err)
	}
	if _, err := ReadIstioFile(t.Context(), "injection-values.yaml", "manifests/nope.yaml"); err == nil {
		t.Fatal("a file in neither place is read")
	}
}
