package testenv

import (
	"context"
	"errors"
	"fmt"
)

// Stop kills the cluster's kube-apiserver (SIGTERM, then SIGKILL after a
// short grace), as when a remote API server becomes unreachable. Its data
// stays in etcd; Restart brings it back on the same address, so kubeconfigs
// and remote secrets made before keep working.
func (c *Cluster) Stop() {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Restart starts the cluster's kube-apiserver again, with the same flags
// and port, and waits until it is ready. It stops a running one first.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.runner == nil {
		return errors.New("testenv: cluster was not started by this harness")
	}
	c.Stop()
	p, err := c.runner.start("kube-apiserver "+c.ID, c.logPath, c.bin, c.args)
	if err != nil {
		return fmt.Errorf("restart cluster %s: %w", c.ID, err)
	}
	if err := waitReady(ctx, p, c); err != nil {
		p.stop()
		return fmt.Errorf("restart cluster %s: %w", c.ID, err)
	}
	c.mu.Lock()
	c.proc = p
	c.mu.Unlock()
	return nil
}
