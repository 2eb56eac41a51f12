package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/causeway-mesh/causeway/internal/files"
)

// Each of these read /dev/zero until the kernel killed the process, or
// blocked forever on a FIFO, before the bounded reader.
func TestOfflineCommandsRefuseSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	manifests := filepath.Join(dir, "m")
	c1 := filepath.Join(manifests, "c1")
	if err := os.MkdirAll(c1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(c1, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipe.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	certsDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(certsDir, "root-cert.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"certs", "inspect", "/dev/zero"},
		{"certs", "inspect", fifo},
		{"certs", "inspect", certsDir},
		{"networks", "--manifests", manifests},
		{"view", "--manifests", manifests, "--host", "a.b", "--port", "80", "--network", "n"},
		{"networks", "--manifests", exampleDir, "--mesh-networks", fifo},
		{"certs", "intermediate", "--root", certsDir, "--cluster", "c1", "--out", filepath.Join(dir, "out")},
		{"manifest", "diff", fifo, fifo},
	} {
		t.Run(strings.Join(args[:2], " "), func(t *testing.T) {
			_, err := causeway(t, args...)
			if !errors.Is(err, files.ErrNotRegular) {
				t.Fatalf("causeway %s = %v, want a not-a-regular-file error", strings.Join(args, " "), err)
			}
		})
	}
}

// The context from main (canceled by SIGINT or SIGTERM) stops the offline
// commands.
func TestOfflineCommandsStopWhenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, args := range [][]string{
		{"networks", "--manifests", exampleDir},
		{"view", "--manifests", exampleDir, "--host", "helloworld.sample", "--port", "5000", "--network", "network1"},
	} {
		cmd := NewRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		if err := cmd.ExecuteContext(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("causeway %s with a canceled context = %v, want context.Canceled", args[0], err)
		}
	}
}
