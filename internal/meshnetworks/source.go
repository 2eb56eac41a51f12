// Package meshnetworks is the source of the store's MeshNetworks: a
// meshNetworks YAML file, polled for changes, or a ConfigMap of the config
// cluster, watched with an informer. A version that does not parse is
// refused: the last good one stays in force and the refusal is reported by
// Source.Warnings until fixed.
package meshnetworks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Key is the ConfigMap key that holds meshNetworks, as in Istio's mesh
// networks ConfigMap.
const Key = "meshNetworks"

// Store is where a Source puts the MeshNetworks it reads (model.Store).
type Store interface {
	SetMeshNetworks(mn *model.MeshNetworks)
}

// Source feeds the store's MeshNetworks from a file (polled) or a
// ConfigMap (watched). A refused version leaves the last good one in place
// and is reported by Warnings (the server shows it in /debug/networks)
// until fixed.
type Source struct {
	store   Store
	changed func()
	log     *slog.Logger
	warning atomic.Pointer[string]
	last    []byte // content of the last version applied (or refused); loop-owned
}

// NewSource returns a Source that sets store's MeshNetworks and calls
// changed after each change it applies.
func NewSource(store Store, changed func(), log *slog.Logger) *Source {
	return &Source{store: store, changed: changed, log: log}
}

// apply parses data and sets it; what names the source in messages.
func (m *Source) apply(what string, data []byte, present bool) error {
	if present && m.last != nil && bytes.Equal(data, m.last) {
		return nil
	}
	if !present {
		m.last = nil
		m.store.SetMeshNetworks(nil)
		m.warning.Store(nil)
		m.changed()
		m.log.Info("meshNetworks cleared", "source", what)
		return nil
	}
	m.last = bytes.Clone(data)
	mn, err := model.ParseMeshNetworks(data)
	if err != nil {
		w := fmt.Sprintf("meshNetworks from %s refused, the previous version stays in force: %v", what, err)
		m.warning.Store(&w)
		m.log.Info("meshNetworks refused; the previous version stays in force", "source", what, "err", err)
		return fmt.Errorf("meshNetworks from %s: %w", what, err)
	}
	m.store.SetMeshNetworks(mn)
	m.warning.Store(nil)
	m.changed()
	m.log.Info("meshNetworks loaded", "source", what)
	return nil
}

// Warnings returns the current warning, if any.
func (m *Source) Warnings() []string {
	if w := m.warning.Load(); w != nil {
		return []string{*w}
	}
	return nil
}

// FileState is what the poller compares to notice a change: LoadFile
// returns it, PollFile starts from it.
type FileState struct {
	mod  time.Time
	size int64
}

// LoadFile reads path once; a missing or bad file is an error (at startup
// the server refuses to run on it).
func (m *Source) LoadFile(path string) (FileState, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileState{}, fmt.Errorf("meshNetworks file: %w", err)
	}
	data, err := files.Read(context.Background(), path, files.MeshNetworks)
	if err != nil {
		return FileState{}, fmt.Errorf("meshNetworks file: %w", err)
	}
	return FileState{mod: fi.ModTime(), size: fi.Size()}, m.apply("file "+path, data, true)
}

// PollFile reloads path when its modification time or size changes and
// then holds for one more interval (so a file being written is not read
// half-way), checking every interval until ctx is done. A file that disappears keeps the last
// version (and warns); one that comes back is read again.
func (m *Source) PollFile(ctx context.Context, path string, interval time.Duration, st FileState) {
	t := time.NewTicker(interval)
	defer t.Stop()
	pending := st
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			if st != (FileState{}) {
				w := fmt.Sprintf("meshNetworks file %s cannot be read, the previous version stays in force: %v", path, err)
				m.warning.Store(&w)
				m.log.Info("meshNetworks file cannot be read; the previous version stays in force", "path", path, "err", err)
				st = FileState{}
			}
			continue
		}
		now := FileState{mod: fi.ModTime(), size: fi.Size()}
		if now == st {
			continue
		}
		// A file being written (truncated, then filled) must not be read
		// half-way: apply a change only once two polls in a row see the
		// same size and modification time.
		if now != pending {
			pending = now
			continue
		}
		st = now
		data, err := files.Read(ctx, path, files.MeshNetworks)
		if err != nil {
			m.log.Info("meshNetworks file cannot be read", "path", path, "err", err)
			continue
		}
		_ = m.apply("file "+path, data, true) // refusals are logged and warned
	}
}

// ConfigMapWatch watches one ConfigMap of the config cluster for src. Its
// event handler only signals; sync reads the lister.
type ConfigMapWatch struct {
	src       *Source
	namespace string
	name      string
	factory   informers.SharedInformerFactory
	synced    cache.DoneChecker
	lister    func() (*corev1.ConfigMap, error)
	signal    chan struct{}
	// done is closed once the ConfigMap's initial state was applied.
	done     chan struct{}
	doneOnce sync.Once
}

// NewConfigMapWatch watches the ConfigMap namespace/name through client,
// feeding src with its key Key once Run is called.
func NewConfigMapWatch(src *Source, client kubernetes.Interface, namespace, name string) (*ConfigMapWatch, error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}),
	)
	inf := f.Core().V1().ConfigMaps()
	cw := &ConfigMapWatch{
		src:       src,
		namespace: namespace,
		name:      name,
		factory:   f,
		signal:    make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	lister := inf.Lister()
	cw.lister = func() (*corev1.ConfigMap, error) { return lister.ConfigMaps(namespace).Get(name) }
	poke := func(any) {
		select {
		case cw.signal <- struct{}{}:
		default:
		}
	}
	reg, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    poke,
		UpdateFunc: func(_, n any) { poke(n) },
		DeleteFunc: poke,
	})
	if err != nil {
		return nil, fmt.Errorf("watch meshNetworks ConfigMap %s/%s: %w", namespace, name, err)
	}
	cw.synced = reg.HasSyncedChecker()
	return cw, nil
}

// Run starts the informer and applies the ConfigMap's state on each change
// until ctx is done.
func (cw *ConfigMapWatch) Run(ctx context.Context) {
	cw.factory.Start(ctx.Done())
	defer cw.factory.Shutdown()
	if !cache.WaitFor(ctx, "", cw.synced) {
		return
	}
	cw.sync()
	cw.doneOnce.Do(func() { close(cw.done) })
	for {
		select {
		case <-ctx.Done():
			return
		case <-cw.signal:
			cw.sync()
		}
	}
}

// Done is closed once the ConfigMap's initial state was applied.
func (cw *ConfigMapWatch) Done() <-chan struct{} { return cw.done }

func (cw *ConfigMapWatch) sync() {
	what := "ConfigMap " + cw.namespace + "/" + cw.name
	cm, err := cw.lister()
	switch {
	case apierrors.IsNotFound(err):
		if cw.src.last != nil {
			_ = cw.src.apply(what, nil, false)
		} else {
			w := fmt.Sprintf("meshNetworks %s does not exist", what)
			cw.src.warning.Store(&w)
		}
		return
	case err != nil:
		cw.src.log.Info("meshNetworks ConfigMap lister failed", "err", err)
		return
	}
	data, ok := cm.Data[Key]
	if !ok {
		err := errors.New("it has no key " + Key)
		w := fmt.Sprintf("meshNetworks from %s refused, the previous version stays in force: %v", what, err)
		cw.src.warning.Store(&w)
		cw.src.log.Info("meshNetworks refused; the previous version stays in force", "source", what, "err", err)
		return
	}
	_ = cw.src.apply(what, []byte(data), true)
}
