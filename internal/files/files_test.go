package files

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "is a device"},
		{link, "is a device"},
		{fifo, "is a FIFO"},
		{dir, "is a directory"},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			// A FIFO without a writer would block a plain read forever; the
			// test's own timeout is the bound.
			_, err := Read(t.Context(), tc.path, Manifest)
			if !errors.Is(err, ErrNotRegular) {
				t.Fatalf("Read(%s) = %v, want ErrNotRegular", tc.path, err)
			}
			if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s and say %q", err, tc.path, tc.want)
			}
			if err := Check(tc.path, Manifest); !errors.Is(err, ErrNotRegular) {
				t.Errorf("Check(%s) = %v, want ErrNotRegular", tc.path, err)
			}
		})
	}
}

func TestReadLimit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.pem")
	small := Kind{Name: "PEM file", Max: 10}
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Read(t.Context(), p, small)
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("Read at the limit = %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("0123456789a"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Read(t.Context(), p, small)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "10 bytes") {
		t.Fatalf("Read over the limit = %v, want ErrTooLarge naming the file and the limit", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(t.Context(), empty, small); err != nil || len(got) != 0 {
		t.Fatalf("Read(empty) = %q, %v", got, err)
	}
	fsys := fstest.MapFS{"a.yaml": {Data: []byte("0123456789ab")}, "d": {Mode: os.ModeDir}}
	if _, err := ReadFS(t.Context(), fsys, "a.yaml", small); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFS over the limit = %v", err)
	}
	if _, err := ReadFS(t.Context(), fsys, "d", small); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadFS(dir) = %v", err)
	}
}

func TestReadHonoursContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.yaml")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Read(ctx, p, Manifest); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a canceled context = %v, want context.Canceled", err)
	}
}
