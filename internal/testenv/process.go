package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

const (
	// stopGrace is how long a process gets between SIGTERM and SIGKILL.
	stopGrace = time.Second
	// tailLines is how many lines of a process log a failure shows.
	tailLines = 40
	// pollInterval is how often readiness is polled.
	pollInterval = 50 * time.Millisecond
	// portAttempts is how many times a process is restarted on fresh ports
	// when another process took a port between picking and binding it.
	portAttempts = 3
)

// errPortTaken says a process exited because a port it was given was taken.
var errPortTaken = errors.New("port already in use")

// launcher starts child processes from one goroutine locked to its OS thread.
// Linux sends a child's Pdeathsig when the thread that forked it ends, not
// when the process does; Go ends threads whose goroutine exits while locked
// (tests of network namespaces do this on purpose), so children forked from
// an arbitrary thread could be killed at random. Forking from a thread that
// lives as long as the Env keeps Pdeathsig meaning "the test binary died",
// which is what stops orphans when a test times out before t.Cleanup runs.
type launcher struct {
	reqs chan launchRequest
	done chan struct{}
}

type launchRequest struct {
	cmd  *exec.Cmd
	errc chan error
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan launchRequest), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *launcher) run() {
	runtime.LockOSThread()
	// The goroutine returns still locked, so Go ends the thread; close is
	// called only after every child has stopped, so no Pdeathsig is sent.
	defer close(l.done)
	for r := range l.reqs {
		r.errc <- r.cmd.Start()
	}
}

func (l *launcher) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	l.reqs <- launchRequest{cmd: cmd, errc: errc}
	return <-errc
}

func (l *launcher) close() {
	close(l.reqs)
	<-l.done
}

// process is one child process the harness started.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited and been reaped
	waitErr error         // the result of Wait, set before done is closed
}

// startProcess runs bin with args, its stdout and stderr appended to logPath.
func startProcess(l *launcher, name, logPath, bin string, args []string) (*process, error) {
	return startProcessEnv(l, name, logPath, bin, args, nil)
}

// startProcessEnv is startProcess with env added to the process's
// environment (later entries win).
func startProcessEnv(l *launcher, name, logPath, bin string, args, env []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := l.start(cmd); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exitError returns why the process ended, or nil while it runs.
func (p *process) exitError() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	tail := p.tail()
	err := fmt.Errorf("%s exited with status 0", p.name)
	if p.waitErr != nil {
		err = fmt.Errorf("%s exited: %w", p.name, p.waitErr)
	}
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return fmt.Errorf("%w; last lines of %s:\n%s", err, p.logPath, tail)
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
func (p *process) stop() { testkit.Stop(p.cmd.Process, p.done, stopGrace) }

// tail returns the last tailLines lines of the process log.
func (p *process) tail() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer func() { _ = f.Close() }()
	const maxBytes = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-tailLines):]
	return string(bytes.Join(lines, []byte("\n")))
}

// waitFor polls ready until it returns true, the process exits, or ctx ends.
// The last error of ready is reported on timeout.
func waitFor(ctx context.Context, p *process, what string, ready func(context.Context) (bool, error)) error {
	// A check in flight ends when the process does: a port it was given
	// may belong to another process that accepts but never answers.
	checkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-checkCtx.Done():
		}
	}()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	last := errors.New("no answer yet")
	for {
		ok, err := ready(checkCtx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if exitErr := p.exitError(); exitErr != nil {
			return exitErr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not %s before the deadline (last error: %w); last lines of %s:\n%s",
				p.name, what, last, p.logPath, p.tail())
		case <-p.done:
		case <-ticker.C:
		}
	}
}
