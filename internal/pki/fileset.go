package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/causeway-mesh/causeway/internal/files"
)

// DataLink is the symlink, in an output folder, to the folder that
// holds the current set of files; each file's name is a symlink through it
// (ca-cert.pem -> ..data/ca-cert.pem). Replacing the one link replaces the
// whole set at once, as the kubelet's atomic writer does for projected
// volumes: a reader sees the old set or the new one, never a new certificate
// with an old key.
const DataLink = "..data"

// SetPrefix starts the names of the folders that hold sets.
const SetPrefix = "..set-"

// File modes: keys readable by their owner only.
const (
	KeyMode  fs.FileMode = 0o600
	CertMode fs.FileMode = 0o644
	DirMode  fs.FileMode = 0o700
)

// File is one file of a set to write.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}

// WriteStep names a point of WriteFileSet, for tests that fail it there.
type WriteStep string

// The steps of WriteFileSet, in order.
const (
	StepAdopted WriteStep = "adopted" // old plain files moved behind ..data
	StepWritten WriteStep = "written" // new set written and synced in its own folder
	StepLinked  WriteStep = "linked"  // every name is a symlink through ..data
	StepSwapped WriteStep = "swapped" // ..data points at the new set
)

// WriteFiles writes files into dir (made if missing) as one set. Without
// force it refuses when any of them exists, before writing anything.
func WriteFiles(dir string, files []File, force bool) error {
	return WriteFileSet(dir, files, force, nil)
}

// WriteFileSet is WriteFiles with a hook called after each step; an
// error from it stops the write there, as a crash would.
//
// The steps: adopt plain files behind ..data (StepAdopted), write the new
// set in a folder of its own (StepWritten), make every name a symlink
// through ..data (StepLinked), and point ..data at the new set
// (StepSwapped), the one step readers see.
func WriteFileSet(dir string, files []File, force bool, hook func(WriteStep) error) error {
	if dir == "" {
		return errors.New("--out is empty: name the folder to write into")
	}
	if hook == nil {
		hook = func(WriteStep) error { return nil }
	}
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("make folder for the certificates: %w", err)
	}
	if !force {
		if err := refuseExisting(dir, files); err != nil {
			return err
		}
	}
	fail := func(err error) error { return fmt.Errorf("write the certificates into %s: %w", dir, err) }

	// Plain files of an older layout (or written by hand) go behind ..data
	// first, unchanged: each is replaced by a symlink to the same content.
	cur, err := adoptPlain(dir, files)
	if err != nil {
		return fail(err)
	}
	if err := hook(StepAdopted); err != nil {
		return fail(err)
	}

	next, err := writeNextSet(dir, cur, files)
	if err != nil {
		return fail(err)
	}
	nextName := filepath.Base(next)
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(next)
		}
	}()
	if err := hook(StepWritten); err != nil {
		return fail(err)
	}

	if err := linkNames(dir, files); err != nil {
		return fail(err)
	}
	if err := hook(StepLinked); err != nil {
		return fail(err)
	}

	// The one step readers see: ..data now names the new set.
	if err := replaceLink(dir, DataLink, nextName); err != nil {
		return fail(err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	if err := hook(StepSwapped); err != nil {
		return fail(err)
	}
	if cur != "" && cur != nextName {
		_ = os.RemoveAll(filepath.Join(dir, cur))
	}
	return nil
}

// refuseExisting refuses to write files into dir when any of them exists.
func refuseExisting(dir string, files []File) error {
	var existing []string
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if _, err := os.Lstat(p); err == nil {
			existing = append(existing, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	if len(existing) > 0 {
		return fmt.Errorf("refusing to overwrite %s: they hold a CA and its key; pass --force to replace them (the old key is lost), or write elsewhere with --out",
			strings.Join(existing, ", "))
	}
	return nil
}

// writeNextSet writes the new set, complete and on disk, in a folder of its
// own in dir, and returns its path; files of the current set (cur, if any)
// that this one does not replace are carried over. On error the folder is
// removed.
func writeNextSet(dir, cur string, files []File) (next string, err error) {
	next, err = os.MkdirTemp(dir, SetPrefix)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(next)
		}
	}()
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name] = true
		if err := writeSynced(filepath.Join(next, f.Name), f.Data, f.Mode); err != nil {
			return "", err
		}
	}
	if cur != "" {
		entries, err := os.ReadDir(filepath.Join(dir, cur))
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if !names[e.Name()] && e.Type().IsRegular() {
				if err := os.Link(filepath.Join(dir, cur, e.Name()), filepath.Join(next, e.Name())); err != nil {
					return "", err
				}
			}
		}
	}
	if err := syncDir(next); err != nil {
		return "", err
	}
	return next, nil
}

// linkNames makes every name a symlink through ..data (a new name points
// at nothing until the swap, as it held nothing before).
func linkNames(dir string, files []File) error {
	for _, f := range files {
		if err := ensureLink(dir, f.Name); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// adoptPlain moves plain files among files' names behind ..data (made if
// missing), and returns the folder ..data names ("" when there is none).
func adoptPlain(dir string, files []File) (string, error) {
	cur, err := os.Readlink(filepath.Join(dir, DataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var plain []string
	for _, f := range files {
		if fi, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil && fi.Mode().IsRegular() {
			plain = append(plain, f.Name)
		}
	}
	if len(plain) == 0 {
		return cur, nil
	}
	if cur == "" {
		d, err := os.MkdirTemp(dir, SetPrefix)
		if err != nil {
			return "", err
		}
		cur = filepath.Base(d)
	}
	for _, name := range plain {
		err := os.Link(filepath.Join(dir, name), filepath.Join(dir, cur, name))
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	if err := syncDir(filepath.Join(dir, cur)); err != nil {
		return "", err
	}
	if err := replaceLink(dir, DataLink, cur); err != nil {
		return "", err
	}
	for _, name := range plain {
		if err := replaceLink(dir, name, filepath.Join(DataLink, name)); err != nil {
			return "", err
		}
	}
	return cur, syncDir(dir)
}

// ensureLink makes dir/name the symlink ..data/name, unless it is.
func ensureLink(dir, name string) error {
	target := filepath.Join(DataLink, name)
	if t, err := os.Readlink(filepath.Join(dir, name)); err == nil && t == target {
		return nil
	}
	return replaceLink(dir, name, target)
}

// replaceLink atomically makes dir/name a symlink to target: a new
// link under a temporary name, renamed over the old one.
func replaceLink(dir, name, target string) error {
	tmp := filepath.Join(dir, ".."+name+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// writeSynced writes a new file with mode and syncs it.
func writeSynced(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // past the umask
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// syncDir syncs a folder, so the names it holds survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadBundle reads the four files of Istio's plug-in CA layout from dir
// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), each through
// the bounded reader for PEM files. It does not check the bundle: NewCA does.
func ReadBundle(ctx context.Context, dir string) (Bundle, error) {
	var b Bundle
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{FileCACert, &b.CACert}, {FileCAKey, &b.CAKey}, {FileRootCert, &b.RootCert}, {FileCertChain, &b.CertChain}} {
		data, err := files.Read(ctx, filepath.Join(dir, f.name), files.PEM)
		if err != nil {
			return Bundle{}, fmt.Errorf("CA bundle %s: %w", dir, err)
		}
		*f.dst = data
	}
	return b, nil
}
