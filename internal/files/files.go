// Package files reads the files Causeway is given (manifests, meshNetworks
// files, PEM certificates and keys, kubeconfigs, tokens, values) with one
// bounded reader: only regular files (after symlinks are resolved), never
// more than a per-kind limit, and never past a canceled context. A device
// such as /dev/zero, a FIFO or a socket is refused at once, before a byte is
// read, so a careless or hostile path can neither fill memory nor hang the
// command.
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Kind is a kind of file with its size limit.
type Kind struct {
	// Name is what messages call the file ("manifest", "PEM file").
	Name string
	// Max is the largest size, in bytes, read.
	Max int64
}

// The kinds Causeway reads. Each limit is far above what a real file of the
// kind holds and far below what hurts the process.
var (
	// Manifest is a file of Kubernetes objects (one cluster's manifests, or
	// a rendered install manifest).
	Manifest = Kind{Name: "manifest", Max: 64 << 20}
	// MeshNetworks is an Istio meshNetworks file.
	MeshNetworks = Kind{Name: "meshNetworks file", Max: 4 << 20}
	// PEM is a PEM certificate, chain or key.
	PEM = Kind{Name: "PEM file", Max: 1 << 20}
	// Kubeconfig is a kubeconfig file.
	Kubeconfig = Kind{Name: "kubeconfig", Max: 16 << 20}
	// Token is a service-account token file.
	Token = Kind{Name: "token file", Max: 64 << 10}
	// Values is an install values file.
	Values = Kind{Name: "values file", Max: 4 << 20}
)

// ErrTooLarge is returned (wrapped) for a file over its kind's limit.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular is returned (wrapped) for a path that is not a regular file
// once symlinks are resolved: a directory, device, FIFO or socket.
var ErrNotRegular = errors.New("not a regular file")

// chunk is how much Read reads between two looks at the context.
const chunk = 1 << 20

// Read returns the content of the regular file at path, following symlinks.
// It refuses, naming the file and the limit, anything that is not a regular
// file and any file larger than k.Max, and stops with ctx's error when ctx
// is done.
func Read(ctx context.Context, path string, k Kind) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer. It changes
	// nothing for a regular file, the only kind read below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := check(path, fi, k); err != nil {
		return nil, err
	}
	return readAll(ctx, path, f, fi.Size(), k)
}

// ReadFS is Read on a file system (an embedded example): the same limits,
// the same refusal of what is not a regular file.
func ReadFS(ctx context.Context, fsys fs.FS, name string, k Kind) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := check(name, fi, k); err != nil {
		return nil, err
	}
	return readAll(ctx, name, f, fi.Size(), k)
}

// Check reports, without reading it, whether path names a regular file
// (after symlinks) within k's limit: for files a library reads itself (a
// kubeconfig that client-go loads).
func Check(path string, k Kind) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return check(path, fi, k)
}

func check(path string, fi fs.FileInfo, k Kind) error {
	if !fi.Mode().IsRegular() {
		what := "a special file"
		switch t := fi.Mode().Type(); {
		case t&fs.ModeDir != 0:
			what = "a directory"
		case t&fs.ModeNamedPipe != 0:
			what = "a FIFO"
		case t&fs.ModeSocket != 0:
			what = "a socket"
		case t&fs.ModeDevice != 0:
			what = "a device"
		}
		return fmt.Errorf("%s %s is %s, %w: give a regular file (or a symlink to one)", k.Name, path, what, ErrNotRegular)
	}
	if fi.Size() > k.Max {
		return tooLarge(path, k)
	}
	return nil
}

func tooLarge(path string, k Kind) error {
	return fmt.Errorf("%s %s is larger than the limit of %s: %w; is it the right file?", k.Name, path, size(k.Max), ErrTooLarge)
}

// readAll reads r to its end, at most k.Max bytes (a file that grows past
// its stat size is cut off there with an error), checking ctx every chunk.
func readAll(ctx context.Context, path string, r io.Reader, hint int64, k Kind) ([]byte, error) {
	buf := make([]byte, 0, min(hint, k.Max)+1)
	lr := io.LimitReader(r, k.Max+1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):min(cap(buf), len(buf)+chunk)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > k.Max {
			return nil, tooLarge(path, k)
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", k.Name, path, err)
		}
	}
}

// size prints a byte count in the largest whole binary unit.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// ReadFrom reads r (standard input, say) to its end like Read reads a file:
// at most k.Max bytes, checking ctx between chunks. name is for messages.
// A reader that blocks is only stopped once it returns.
func ReadFrom(ctx context.Context, name string, r io.Reader, k Kind) ([]byte, error) {
	return readAll(ctx, name, r, 64<<10, k)
}
