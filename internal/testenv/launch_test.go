package testenv

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestLaunchRejectsBadOptions(t *testing.T) {
	_, err := Launch(t.Context(), Options{ClusterIDs: []string{"a", "a"}})
	if err == nil || !strings.Contains(err.Error(), `"a" is given twice`) {
		t.Fatalf("Launch with a duplicate cluster id: error %v, want one naming the duplicate", err)
	}
}

// TestLaunchClose starts an Env outside of Start, as the load harness does,
// and checks that Close stops every process, removes the folder it made, and
// that a cluster cannot be restarted after it.
func TestLaunchClose(t *testing.T) {
	if _, err := FindBinaries(false); err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	env, err := Launch(t.Context(), Options{ClusterIDs: []string{"east", "west"}, EtcdInMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			env.Close()
		}
	})
	for _, c := range env.Clusters {
		if _, err := c.Client().CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
			t.Errorf("cluster %s does not answer: %v", c.ID, err)
		}
	}
	logs := env.Logs()
	testkit.ContainsAll(t, "Logs()", logs, "last lines of etcd", "last lines of kube-apiserver east", "last lines of kube-apiserver west")
	dir := env.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the Env's folder: %v", err)
	}
	shm := env.runner.shmDir
	if !strings.HasPrefix(shm, "/dev/shm/causeway-etcd-") {
		t.Errorf("EtcdInMemory: etcd's folder %q, want one in /dev/shm", shm)
	} else if _, err := os.Stat(shm + "/data/member"); err != nil {
		t.Errorf("EtcdInMemory: etcd's data: %v", err)
	}

	env.Close()
	env.Close() // twice is fine
	closed = true
	for _, d := range []string{dir, shm} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("folder %s after Close: %v, want it removed", d, err)
		}
	}
	short, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := env.Clusters[0].Client().CoreV1().Namespaces().Get(short, "default", metav1.GetOptions{}); err == nil {
		t.Error("an apiserver still answers after Close")
	}
	if err := env.Clusters[0].Restart(t.Context()); !errors.Is(err, errClosed) {
		t.Errorf("Restart after Close: %v, want %v", err, errClosed)
	}
}
