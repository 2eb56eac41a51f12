package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// serveProcess is the `causeway serve` under measurement.
type serveProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startServe starts bin with args, its output appended to logPath. The
// child is forked from a goroutine locked to its OS thread for the child's
// whole life, so that its parent-death signal (SIGKILL) means "the harness
// died", not "some thread of the harness ended".
func startServe(bin string, args []string, logPath string) (*serveProcess, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the server log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sp := &serveProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(sp.done)
		defer func() { _ = logFile.Close() }()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		sp.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return sp, nil
}

func (sp *serveProcess) pid() int { return sp.cmd.Process.Pid }

// exited returns why the process ended, or nil while it runs.
func (sp *serveProcess) exited() error {
	select {
	case <-sp.done:
		if sp.waitErr != nil {
			return fmt.Errorf("causeway serve exited: %w (log: %s)", sp.waitErr, sp.logPath)
		}
		return fmt.Errorf("causeway serve exited with status 0 (log: %s)", sp.logPath)
	default:
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL after 10 s, and waits for the exit.
func (sp *serveProcess) stop() {
	select {
	case <-sp.done:
		return
	default:
	}
	_ = sp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sp.done:
	case <-time.After(10 * time.Second):
		_ = sp.cmd.Process.Kill()
		<-sp.done
	}
}
