package testenv

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStopRestart(t *testing.T) {
	c := StartClusters(t, 1)[0]
	ctx := t.Context()
	if _, err := CreateNamespace(ctx, c.Client(), "kept", nil); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Client().CoreV1().Namespaces().Get(short, "kept", metav1.GetOptions{}); err == nil {
		t.Fatal("stopped apiserver still answers")
	}
	start := time.Now()
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %v", time.Since(start))
	if _, err := c.Client().CoreV1().Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("after restart, the namespace written before is gone: %v", err)
	}
}
