package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// certsDataLink is the symlink, in an output folder, to the folder that
// holds the current set of files; each file's name is a symlink through it
// (ca-cert.pem -> ..data/ca-cert.pem). Replacing the one link replaces the
// whole set at once, as the kubelet's atomic writer does for projected
// volumes: a reader sees the old set or the new one, never a new certificate
// with an old key.
const certsDataLink = "..data"

// certsSetPrefix starts the names of the folders that hold sets.
const certsSetPrefix = "..set-"

// certsStep names a point of certsWriteSet, for tests that fail it there.
type certsStep string

const (
	certsStepAdopted certsStep = "adopted" // old plain files moved behind ..data
	certsStepWritten certsStep = "written" // new set written and synced in its own folder
	certsStepLinked  certsStep = "linked"  // every name is a symlink through ..data
	certsStepSwapped certsStep = "swapped" // ..data points at the new set
)

// certsWriteFiles writes files into dir (made if missing) as one set. Without
// force it refuses when any of them exists, before writing anything.
func certsWriteFiles(dir string, files []certsFile, force bool) error {
	return certsWriteSet(dir, files, force, nil)
}

// certsWriteSet is certsWriteFiles with a hook called after each step; an
// error from it stops the write there, as a crash would.
func certsWriteSet(dir string, files []certsFile, force bool, hook func(certsStep) error) error {
	if dir == "" {
		return errors.New("--out is empty: name the folder to write into")
	}
	if hook == nil {
		hook = func(certsStep) error { return nil }
	}
	if err := os.MkdirAll(dir, certsDirMode); err != nil {
		return fmt.Errorf("make folder for the certificates: %w", err)
	}
	if !force {
		var existing []string
		for _, f := range files {
			p := filepath.Join(dir, f.name)
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
	}
	fail := func(err error) error { return fmt.Errorf("write the certificates into %s: %w", dir, err) }

	// Plain files of an older layout (or written by hand) go behind ..data
	// first, unchanged: each is replaced by a symlink to the same content.
	cur, err := certsAdopt(dir, files)
	if err != nil {
		return fail(err)
	}
	if err := hook(certsStepAdopted); err != nil {
		return fail(err)
	}

	// The new set, complete and on disk, in a folder of its own; files of
	// the current set that this one does not replace are carried over.
	next, err := os.MkdirTemp(dir, certsSetPrefix)
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
	names := map[string]bool{}
	for _, f := range files {
		names[f.name] = true
		if err := certsWriteSynced(filepath.Join(next, f.name), f.data, f.mode); err != nil {
			return fail(err)
		}
	}
	if cur != "" {
		entries, err := os.ReadDir(filepath.Join(dir, cur))
		if err != nil {
			return fail(err)
		}
		for _, e := range entries {
			if !names[e.Name()] && e.Type().IsRegular() {
				if err := os.Link(filepath.Join(dir, cur, e.Name()), filepath.Join(next, e.Name())); err != nil {
					return fail(err)
				}
			}
		}
	}
	if err := certsSyncDir(next); err != nil {
		return fail(err)
	}
	if err := hook(certsStepWritten); err != nil {
		return fail(err)
	}

	// Every name a symlink through ..data (a new name points at nothing
	// until the swap, as it held nothing before).
	for _, f := range files {
		if err := certsEnsureLink(dir, f.name); err != nil {
			return fail(err)
		}
	}
	if err := certsSyncDir(dir); err != nil {
		return fail(err)
	}
	if err := hook(certsStepLinked); err != nil {
		return fail(err)
	}

	// The one step readers see: ..data now names the new set.
	if err := certsReplaceLink(dir, certsDataLink, nextName); err != nil {
		return fail(err)
	}
	committed = true
	if err := certsSyncDir(dir); err != nil {
		return fail(err)
	}
	if err := hook(certsStepSwapped); err != nil {
		return fail(err)
	}
	if cur != "" && cur != nextName {
		_ = os.RemoveAll(filepath.Join(dir, cur))
	}
	return nil
}

// certsAdopt moves plain files among files' names behind ..data (made if
// missing), and returns the folder ..data names ("" when there is none).
func certsAdopt(dir string, files []certsFile) (string, error) {
	cur, err := os.Readlink(filepath.Join(dir, certsDataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var plain []string
	for _, f := range files {
		if fi, err := os.Lstat(filepath.Join(dir, f.name)); err == nil && fi.Mode().IsRegular() {
			plain = append(plain, f.name)
		}
	}
	if len(plain) == 0 {
		return cur, nil
	}
	if cur == "" {
		d, err := os.MkdirTemp(dir, certsSetPrefix)
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
	if err := certsSyncDir(filepath.Join(dir, cur)); err != nil {
		return "", err
	}
	if err := certsReplaceLink(dir, certsDataLink, cur); err != nil {
		return "", err
	}
	for _, name := range plain {
		if err := certsReplaceLink(dir, name, filepath.Join(certsDataLink, name)); err != nil {
			return "", err
		}
	}
	return cur, certsSyncDir(dir)
}

// certsEnsureLink makes dir/name the symlink ..data/name, unless it is.
func certsEnsureLink(dir, name string) error {
	target := filepath.Join(certsDataLink, name)
	if t, err := os.Readlink(filepath.Join(dir, name)); err == nil && t == target {
		return nil
	}
	return certsReplaceLink(dir, name, target)
}

// certsReplaceLink atomically makes dir/name a symlink to target: a new
// link under a temporary name, renamed over the old one.
func certsReplaceLink(dir, name, target string) error {
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

// certsWriteSynced writes a new file with mode and syncs it.
func certsWriteSynced(path string, data []byte, mode fs.FileMode) error {
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

// certsSyncDir syncs a folder, so the names it holds survive a crash.
func certsSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
