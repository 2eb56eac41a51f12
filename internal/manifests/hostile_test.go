package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/causeway-mesh/causeway/internal/files"
)

// writeCluster makes root/c1 with a valid manifest, and returns c1's path.
func writeCluster(t *testing.T, root string) string {
	t.Helper()
	c1 := filepath.Join(root, "c1")
	if err := os.MkdirAll(c1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c1, "sleep.yaml"), []byte(sleepYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return c1
}

// Without the bounded reader, /dev/zero behind a symlink fills memory and a
// FIFO blocks forever: each case must return an error naming the file.
func TestLoadRefusesDevicesAndFIFOs(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"symlink to /dev/zero", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, "is a device"},
		{"FIFO", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			bad := filepath.Join(writeCluster(t, root), "zz.yaml")
			tc.make(t, bad)
			_, err := Load(t.Context(), root)
			if !errors.Is(err, files.ErrNotRegular) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want a not-regular-file error naming %s", err, bad)
			}
		})
	}
}

func TestLoadMeshNetworksRefusesDevices(t *testing.T) {
	_, err := LoadMeshNetworks(t.Context(), "/dev/zero")
	if !errors.Is(err, files.ErrNotRegular) {
		t.Fatalf("LoadMeshNetworks(/dev/zero) = %v, want ErrNotRegular", err)
	}
}

// A load of many files stops once its context is canceled.
func TestLoadStopsWhenCanceled(t *testing.T) {
	root := t.TempDir()
	c1 := writeCluster(t, root)
	for i := range 200 {
		svc := strings.ReplaceAll(sleepYAML, "name: sleep", fmt.Sprintf("name: s%d", i))
		if err := os.WriteFile(filepath.Join(c1, fmt.Sprintf("s%03d.yaml", i)), []byte(svc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(t.Context(), root); err != nil {
		t.Fatalf("Load: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Load(ctx, root); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a canceled context = %v, want context.Canceled", err)
	}
	// Canceled half-way: the parser looks at the context between
	// documents, so a single huge file stops too.
	var big strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&big, "---\n%s", strings.ReplaceAll(sleepYAML, "name: sleep", fmt.Sprintf("name: b%d", i)))
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := parseManifest(ctx, "c1", []byte(big.String())); !errors.Is(err, context.Canceled) {
		t.Fatalf("parseManifest with a canceled context = %v, want context.Canceled", err)
	}
}
