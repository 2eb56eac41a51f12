package kube

import (
	"context"
	"testing"
)

func TestWaitSynced(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	open := make(chan struct{})
	done, cancel := context.WithCancel(t.Context())
	cancel()

	if !WaitSynced(t.Context(), closed) {
		t.Error("closed channel, live context: got false, want true")
	}
	if WaitSynced(done, open) {
		t.Error("open channel, done context: got true, want false")
	}
	// Both ready: select alone would pick either; the channel must win
	// every time.
	for i := range 200 {
		if !WaitSynced(done, closed) {
			t.Fatalf("closed channel, done context (try %d): got false, want true", i)
		}
	}

	later := make(chan struct{})
	go close(later)
	if !WaitSynced(t.Context(), later) {
		t.Error("channel closed while waiting: got false, want true")
	}
}
