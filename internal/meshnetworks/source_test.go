package meshnetworks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// recorder is a Store that hands each MeshNetworks set to the test.
type recorder struct {
	mu  sync.Mutex
	cur *model.MeshNetworks
	set chan struct{}
}

func newRecorder() *recorder { return &recorder{set: make(chan struct{}, 16)} }

func (r *recorder) SetMeshNetworks(mn *model.MeshNetworks) {
	r.mu.Lock()
	r.cur = mn
	r.mu.Unlock()
}

func (r *recorder) changed() { r.set <- struct{}{} }

// networks returns the names of the networks in force, "" if none.
func (r *recorder) networks() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return ""
	}
	var names []string
	for n := range r.cur.Networks {
		names = append(names, string(n))
	}
	return strings.Join(names, ",")
}

// await waits for the next change and checks the networks then in force.
func (r *recorder) await(t *testing.T, want string) {
	t.Helper()
	select {
	case <-r.set:
	case <-time.After(30 * time.Second):
		t.Fatalf("no meshNetworks change; want networks %q, have %q", want, r.networks())
	}
	if got := r.networks(); got != want {
		t.Fatalf("networks in force: got %q, want %q", got, want)
	}
}

const (
	netx = "networks: {netx: {endpoints: [{fromRegistry: c1}]}}"
	nety = "networks: {nety: {endpoints: [{fromCidr: 10.1.0.0/16}]}}"
	bad  = "networks: {nety: {endpoints: [{fromCidr: not-a-cidr}]}}"
)

func TestSourceRefusalKeepsLastGood(t *testing.T) {
	r := newRecorder()
	src := NewSource(r, r.changed, testkit.DiscardLogger())
	if err := src.apply("test", []byte(netx), true); err != nil {
		t.Fatal(err)
	}
	r.await(t, "netx")
	if err := src.apply("test", []byte(bad), true); err == nil {
		t.Fatal("a bad meshNetworks was accepted")
	}
	if got := r.networks(); got != "netx" {
		t.Fatalf("after a refusal, networks %q in force, want netx", got)
	}
	if w := src.Warnings(); len(w) != 1 || !strings.Contains(w[0], "previous version stays in force") {
		t.Fatalf("warnings after a refusal: %q", w)
	}
	if err := src.apply("test", []byte(nety), true); err != nil {
		t.Fatal(err)
	}
	r.await(t, "nety")
	if w := src.Warnings(); len(w) != 0 {
		t.Fatalf("warnings after a fix: %q", w)
	}
	if err := src.apply("test", nil, false); err != nil {
		t.Fatal(err)
	}
	r.await(t, "")
}

func TestPollFileReloadsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meshnetworks.yaml")
	if err := os.WriteFile(path, []byte(netx), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	src := NewSource(r, r.changed, testkit.DiscardLogger())
	st, err := src.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.await(t, "netx")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); src.PollFile(ctx, path, 5*time.Millisecond, st) }()
	defer func() { cancel(); <-done }()
	// nety is longer than netx: the size differs whatever the clock.
	if err := os.WriteFile(path, []byte(nety), 0o600); err != nil {
		t.Fatal(err)
	}
	r.await(t, "nety")
}

func TestLoadFileRefusesMissingAndBad(t *testing.T) {
	dir := t.TempDir()
	src := NewSource(newRecorder(), func() {}, testkit.DiscardLogger())
	if _, err := src.LoadFile(filepath.Join(dir, "absent.yaml")); err == nil {
		t.Fatal("a missing file was accepted")
	}
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.LoadFile(path); err == nil {
		t.Fatal("a bad file was accepted")
	}
}

func TestConfigMapWatch(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "mesh-networks"},
		Data:       map[string]string{Key: netx},
	}
	client := fake.NewClientset(cm)
	r := newRecorder()
	src := NewSource(r, r.changed, testkit.DiscardLogger())
	cw, err := NewConfigMapWatch(src, client, "istio-system", "mesh-networks")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	r.await(t, "netx")
	<-cw.Done()

	cms := client.CoreV1().ConfigMaps("istio-system")
	cm.Data[Key] = nety
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.await(t, "nety")
	if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.await(t, "")
}
