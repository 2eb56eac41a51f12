package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testreq"
)

// maxIstioFileBytes bounds a file read from Istio's module source (the
// injection template is about 20 KB, the chart's values about 30 KB).
const maxIstioFileBytes = 1 << 20

// ReadIstioModuleFile returns the file rel (a slash-separated path, such as
// manifests/charts/istio-control/istio-discovery/files/injection-template.yaml)
// of the istio.io/istio module source that tools/istio/go.mod pins, from
// the Go module cache, where tools/istio/build.sh downloaded it. Nothing of
// Istio is copied into this repository: a test reads Istio's own text at
// run time.
func ReadIstioModuleFile(ctx context.Context, rel string) ([]byte, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("testenv: read working directory: %w", err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	gomod := filepath.Join(root, "tools", "istio", "go.mod")
	data, err := readBounded(gomod, maxIstioFileBytes)
	if err != nil {
		return nil, fmt.Errorf("testenv: read the pinned Istio version: %w", err)
	}
	version, err := requiredVersion(data, istioModule)
	if err != nil {
		return nil, fmt.Errorf("testenv: %s: %w", gomod, err)
	}
	cache, err := goModCache(ctx)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cache, filepath.FromSlash(istioModule)+"@"+version, filepath.FromSlash(rel))
	b, err := readBounded(path, maxIstioFileBytes)
	if err != nil {
		return nil, fmt.Errorf("testenv: Istio's %s: %w; %s (it downloads the module)", rel, err, installIstio)
	}
	return b, nil
}

// ReadIstioFile returns the file name of the oracle's folder
// ([FindIstio]: tools/istio/build.sh copies there what a test needs from
// the module, such as injection-template.yaml), or, when a cache built
// before that file was added lacks it, the module's file rel
// ([ReadIstioModuleFile]).
func ReadIstioFile(ctx context.Context, name, rel string) ([]byte, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("testenv: read working directory: %w", err)
	}
	if dir, err := istioBinDir(os.Getenv, wd); err == nil {
		if b, err := readBounded(filepath.Join(dir, name), maxIstioFileBytes); err == nil {
			return b, nil
		}
	}
	return ReadIstioModuleFile(ctx, rel)
}

// RequireIstioFile is [ReadIstioFile] for a test: a missing file skips or
// fails it as [SkipOrFail] says.
func RequireIstioFile(t testing.TB, name, rel string) []byte {
	t.Helper()
	b, err := ReadIstioFile(t.Context(), name, rel)
	if err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	return b
}

// goModCache is `go env GOMODCACHE`.
func goModCache(ctx context.Context) (string, error) {
	if dir := os.Getenv("GOMODCACHE"); dir != "" {
		return dir, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("testenv: go env GOMODCACHE: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("testenv: go env GOMODCACHE is empty: set GOMODCACHE")
	}
	return dir, nil
}
