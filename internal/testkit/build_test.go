package testkit

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

func TestBuildOnceSharesOneBinary(t *testing.T) {
	b := &builder{dir: t.TempDir()}
	var wg sync.WaitGroup
	bins := make([]string, 3)
	errs := make([]error, 3)
	for i := range bins {
		wg.Go(func() { bins[i], errs[i] = b.get("./testdata/hello") })
	}
	wg.Wait()
	for i := range bins {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		if bins[i] != bins[0] {
			t.Fatalf("builds return %q and %q, want one binary", bins[0], bins[i])
		}
	}
	out, err := exec.Command(bins[0]).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("the built binary says %q, %v; want hello", out, err)
	}
	// A later call does not build again: the removed binary stays removed.
	if err := os.Remove(bins[0]); err != nil {
		t.Fatal(err)
	}
	again, err := b.get("./testdata/hello")
	if err != nil || again != bins[0] {
		t.Fatalf("second get: %q, %v; want %q", again, err, bins[0])
	}
	if _, err := os.Stat(again); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second get built again (stat: %v)", err)
	}
}

func TestBuildFailureCarriesTheCompilerOutput(t *testing.T) {
	b := &builder{dir: t.TempDir()}
	_, err := b.get("./testdata/broken")
	if err == nil || !strings.Contains(err.Error(), "undefinedName") {
		t.Fatalf("build of a broken package: %v; want the compiler's complaint about undefinedName", err)
	}
	if _, again := b.get("./testdata/broken"); again == nil || again.Error() != err.Error() {
		t.Fatalf("second get: %v; want the first build's error", again)
	}
}

func TestBuildWithoutMainSaysWhatToDo(t *testing.T) {
	b := &builder{}
	if _, err := b.get("./testdata/hello"); !errors.Is(err, errNoMain) {
		t.Fatalf("build without a folder: %v; want %v", err, errNoMain)
	}
}
