package clusters

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// A changed remote secret entry (a rotated token or CA, a moved server) is
// rotated hitlessly: the new kubeconfig gets a watch of its own, started
// paused, while the previous watch keeps the model up to date. Once the new
// watch has synced, swapLocked moves the cluster to it in place. If it does
// not sync within Config.SwapTimeout (it cannot connect or authenticate),
// or the kubeconfig fails sanitizing, the change is refused: the previous
// watch stays, the cluster's credentials show as failing, and the refusal
// is logged once. A credential the API server refuses (401) is refused as
// soon as the new watch's first probe says so.

// awaitSwap refuses the change that started in when the API server refuses
// in's credentials, or when in has not synced within the swap timeout; the
// swap itself is onSynced's.
func (s *Set) awaitSwap(in *instance) {
	t := time.NewTimer(s.cfg.SwapTimeout)
	defer t.Stop()
	var refused error
	select {
	case <-in.watcher.Synced():
		return
	case <-in.done:
		return
	case <-in.unauthorized:
		refused = errors.New("the API server refuses its credentials (401 Unauthorized): give a valid token or client certificate, then update the secret again")
	case <-t.C:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[in.id]
	if c == nil || c.next != in || s.closed {
		return
	}
	if refused == nil {
		why := "it did not connect"
		in.mu.Lock()
		if in.err != "" {
			why = "last error: " + in.err
		}
		in.mu.Unlock()
		refused = fmt.Errorf("its watch did not sync within %s (%s): check the new server address, CA data and credentials, then update the secret again", s.cfg.SwapTimeout, why)
	}
	s.refuseChangeLocked(c, in.hash, refused)
}

// refuseChangeLocked keeps c on its current kubeconfig, stops the watch of
// the refused one (hash h) and records why; a refusal of another
// kubeconfig than the previous refusal is logged and counted. Called with
// s.mu held.
func (s *Set) refuseChangeLocked(c *cluster, h [sha256.Size]byte, err error) {
	if c.next != nil {
		c.next.stop()
		c.next = nil
	}
	c.updateErr = "the changed kubeconfig was refused, the previous one is still used: " + err.Error()
	if c.refusedHash == h {
		return
	}
	c.refusedHash = h
	s.metrics.secretErrors.Inc()
	s.log.Info("remote secret change refused; the cluster keeps its previous kubeconfig", "cluster", string(c.id), "source", c.source(), "err", err)
}
