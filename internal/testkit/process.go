package testkit

import (
	"os"
	"syscall"
	"time"
)

// Stop ends a process a test started: SIGTERM, then SIGKILL if it has not
// exited within grace. done is closed once the caller's cmd.Wait returned;
// Stop returns after that. A process already gone is left alone.
func Stop(p *os.Process, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	_ = p.Kill()
	<-done
}
