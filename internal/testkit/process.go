package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
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

// Proc is a process a test started with Start.
type Proc struct {
	Cmd *exec.Cmd
	// Log holds the process's stdout and stderr (bounded).
	Log *LogBuffer

	done chan struct{}
	err  error // set before done is closed
}

// Start runs bin with args, its stdout and stderr into a bounded
// LogBuffer. When the test ends the process is stopped (SIGTERM, then
// SIGKILL after grace), and its output is logged if the test failed.
func Start(t testing.TB, grace time.Duration, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), Log: &LogBuffer{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Log, p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		Stop(p.Cmd.Process, p.done, grace)
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.Log.String())
		}
	})
	return p
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended; it is valid once Done is closed.
func (p *Proc) Err() error { return p.err }
