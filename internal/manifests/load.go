// Package manifests reads a directory of Kubernetes manifests, one folder
// per cluster, into the inputs of the mesh model: the offline stand-in for
// the live informers that `causeway view` and `causeway networks` use, and
// the embedded example. Every object goes through internal/kubeconv, as the
// live objects do; on top of that the loader checks what only a whole
// directory shows (duplicates, slices of missing Services) and reports every
// problem with its file, line, document and object.
package manifests

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Set is the content of a manifest directory: the converted objects of
// each cluster. A Set never changes after Load, so Apply may feed several
// stores.
type Set struct {
	clusters []*clusterSet // sorted by id
}

// clusterSet holds the objects of one cluster, each kind in file order.
type clusterSet struct {
	id         model.ClusterID
	namespaces []*model.Namespace
	nodes      []*model.Node
	pods       []*model.Pod
	services   []*model.Service
	slices     []*model.EndpointSlice
	// skipped counts the objects of kinds the model does not read, by kind.
	skipped map[string]int
}

// Clusters returns the cluster ids, sorted.
func (s *Set) Clusters() []model.ClusterID {
	out := make([]model.ClusterID, len(s.clusters))
	for i, c := range s.clusters {
		out[i] = c.id
	}
	return out
}

// Skipped counts the objects of every cluster that are of a kind the model
// does not read (ServiceAccount, Deployment, ConfigMap, Secret, Istio's CRs
// and CRDs, ...), by kind. They are valid input: a real folder, or the output
// of kubectl get -A -o yaml, holds them.
func (s *Set) Skipped() map[string]int {
	out := make(map[string]int)
	for _, c := range s.clusters {
		for k, n := range c.skipped {
			out[k] += n
		}
	}
	return out
}

// SkippedSummary is one line on the skipped objects, e.g. "skipped 7
// objects of kinds not read: Deployment x4, ServiceAccount x3", or "" when
// none was skipped.
func (s *Set) SkippedSummary() string {
	by := s.Skipped()
	if len(by) == 0 {
		return ""
	}
	kinds := make([]string, 0, len(by))
	total := 0
	for k, n := range by {
		kinds = append(kinds, k)
		total += n
	}
	// Most frequent first, then by name, so the line is stable.
	sort.Slice(kinds, func(i, j int) bool {
		if by[kinds[i]] != by[kinds[j]] {
			return by[kinds[i]] > by[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s x%d", k, by[k])
	}
	noun := "objects"
	if total == 1 {
		noun = "object"
	}
	return fmt.Sprintf("skipped %d %s of kinds not read: %s", total, noun, strings.Join(parts, ", "))
}

// Load reads the manifest directory dir: one folder per cluster, named by the
// cluster id, holding that cluster's Kubernetes objects in *.yaml, *.yml and
// *.json files (subfolders included; names starting with "." are skipped).
// Files directly in dir are not read, so a meshNetworks file may sit there.
// Each file must be a regular file (a symlink to one is followed) of at most
// files.Manifest's limit; Load stops with ctx's error once ctx is done.
func Load(ctx context.Context, dir string) (*Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("manifests directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("manifests directory %s is a file: give the directory that holds one folder per cluster", dir)
	}
	display := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	l := loader{ctx: ctx, fsys: os.DirFS(dir), root: ".", display: display,
		read: func(p string) ([]byte, error) { return files.Read(ctx, display(p), files.Manifest) }}
	return l.load()
}

// LoadFS is Load on a file system, for embedded examples: root is the
// directory inside fsys ("." for its top) that holds the cluster folders.
func LoadFS(ctx context.Context, fsys fs.FS, root string) (*Set, error) {
	l := loader{ctx: ctx, fsys: fsys, root: root, display: func(p string) string { return p },
		read: func(p string) ([]byte, error) { return files.ReadFS(ctx, fsys, p, files.Manifest) }}
	return l.load()
}

type loader struct {
	ctx  context.Context
	fsys fs.FS
	// read reads a file of fsys, bounded.
	read func(string) ([]byte, error)
	root string
	// display turns a path of fsys into the name a message shows.
	display func(string) string
}

func (l *loader) load() (*Set, error) {
	if !fs.ValidPath(l.root) {
		return nil, fmt.Errorf("manifests directory %q is not a valid path", l.root)
	}
	entries, err := fs.ReadDir(l.fsys, l.root)
	if err != nil {
		return nil, fmt.Errorf("manifests directory: %w", err)
	}
	var clusters []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := path.Join(l.root, e.Name())
		// Stat rather than e.IsDir(): follows a symlinked cluster folder.
		if info, err := fs.Stat(l.fsys, p); err == nil && info.IsDir() {
			clusters = append(clusters, e.Name())
		}
	}
	if len(clusters) == 0 {
		what := "holds no cluster folders"
		if len(entries) == 0 {
			what = "is empty"
		}
		return nil, fmt.Errorf("manifests directory %s %s: make one folder per cluster, named by its cluster id (e.g. %s), holding that cluster's Namespaces, Services, EndpointSlices, Pods and Nodes as YAML",
			l.display(l.root), what, l.display(path.Join(l.root, "cluster1")))
	}
	set := &Set{}
	for _, c := range clusters { // ReadDir sorts by name
		cs, err := l.loadCluster(c)
		if err != nil {
			return nil, err
		}
		set.clusters = append(set.clusters, cs)
	}
	return set, nil
}

// isManifest reports whether a file name is read as a manifest.
func isManifest(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func (l *loader) loadCluster(dirName string) (*clusterSet, error) {
	id := model.ClusterID(dirName)
	manifests, err := l.clusterFiles(id, path.Join(l.root, dirName))
	if err != nil {
		return nil, err
	}
	b := &clusterBuilder{cs: &clusterSet{id: id}, seen: make(map[string]string)}
	for _, f := range manifests {
		data, err := l.read(f)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", id, err)
		}
		objs, err := parseManifest(l.ctx, id, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.display(f), err)
		}
		for i := range objs {
			if err := b.add(&objs[i], l.display(f)+": "+objs[i].where()); err != nil {
				return nil, err
			}
		}
	}
	if err := b.checkSlices(); err != nil {
		return nil, err
	}
	return b.cs, nil
}

// clusterFiles lists the manifest files under the cluster folder dir,
// skipping hidden files and folders; a folder without one is an error.
func (l *loader) clusterFiles(id model.ClusterID, dir string) ([]string, error) {
	var manifests []string
	err := fs.WalkDir(l.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := l.ctx.Err(); err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && isManifest(d.Name()) {
			manifests = append(manifests, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", id, err)
	}
	if len(manifests) == 0 {
		return nil, fmt.Errorf("cluster folder %s holds no .yaml, .yml or .json files: add the cluster's objects or remove the folder", l.display(dir))
	}
	return manifests, nil
}

// clusterBuilder gathers the objects of one cluster folder into its
// clusterSet.
type clusterBuilder struct {
	cs *clusterSet
	// seen is where each object was first seen, by kind and name, for
	// duplicates.
	seen     map[string]string
	slicesAt []sliceAt
}

// sliceAt is an EndpointSlice and where it was read.
type sliceAt struct {
	es    *model.EndpointSlice
	where string
}

// add adds object o, read at where: an object of a kind not read is
// counted, one defined twice is an error.
func (b *clusterBuilder) add(o *object, where string) error {
	cs := b.cs
	if s, ok := o.value.(*Skipped); ok {
		if cs.skipped == nil {
			cs.skipped = make(map[string]int)
		}
		cs.skipped[s.Kind]++
		return nil
	}
	key := o.kind + " " + o.name
	if first, dup := b.seen[key]; dup {
		return fmt.Errorf("%s: %s is defined twice in cluster %s, first at %s: keep one", where, key, cs.id, first)
	}
	b.seen[key] = where
	switch v := o.value.(type) {
	case *model.Namespace:
		cs.namespaces = append(cs.namespaces, v)
	case *model.Node:
		cs.nodes = append(cs.nodes, v)
	case *model.Pod:
		cs.pods = append(cs.pods, v)
	case *model.Service:
		cs.services = append(cs.services, v)
	case *model.EndpointSlice:
		cs.slices = append(cs.slices, v)
		b.slicesAt = append(b.slicesAt, sliceAt{v, where})
	default:
		return fmt.Errorf("%s: internal error: unexpected %T", where, v)
	}
	return nil
}

// checkSlices checks that the Service of every EndpointSlice is in the
// cluster.
func (b *clusterBuilder) checkSlices() error {
	for _, s := range b.slicesAt {
		svc := s.es.Namespace + "/" + s.es.ServiceName
		if _, ok := b.seen["Service "+svc]; !ok {
			return fmt.Errorf("%s: EndpointSlice %s/%s belongs to Service %s (label kubernetes.io/service-name), which cluster %s does not have: add the Service or remove the slice",
				s.where, s.es.Namespace, s.es.Name, svc, b.cs.id)
		}
	}
	return nil
}
