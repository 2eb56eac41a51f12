package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long a process gets between SIGTERM and SIGKILL.
	stopGrace = 2 * time.Second
	// tailLines is how many lines of each log a failure prints.
	tailLines = 60
)

// procs starts the test's processes and stops every one of them, by PID,
// in t.Cleanup; when the test failed it prints the tail of each log.
//
// Processes are forked from one goroutine locked to its OS thread: Linux
// sends a child's Pdeathsig when the thread that forked it ends, and
// threads that ran in another network namespace may be ended by Go (see
// netns.do), so forking from a thread that lives as long as procs keeps
// Pdeathsig meaning "the test binary died".
type procs struct {
	t    *testing.T
	dir  string
	reqs chan startReq
	done chan struct{}

	mu   sync.Mutex
	list []*proc
}

type startReq struct {
	cmd  *exec.Cmd
	errc chan error
}

// proc is one process the test started.
type proc struct {
	name    string
	logPath string
	outPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// newProcs returns a process starter whose logs go to a temporary folder.
func newProcs(t *testing.T) *procs {
	t.Helper()
	ps := &procs{t: t, dir: t.TempDir(), reqs: make(chan startReq), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		defer close(ps.done)
		for r := range ps.reqs {
			r.errc <- r.cmd.Start()
		}
	}()
	t.Cleanup(func() {
		ps.stopAll()
		if t.Failed() {
			t.Log(ps.logs())
		}
		close(ps.reqs)
		<-ps.done
	})
	return ps
}

// start runs argv with extra environment variables. Its stderr goes to
// NAME.log and its stdout to NAME.out in the test's folder (a name used
// twice gets its files appended to).
func (ps *procs) start(name string, env []string, argv ...string) (*proc, error) {
	base := filepath.Join(ps.dir, strings.ReplaceAll(name, "/", "_"))
	p := &proc{name: name, logPath: base + ".log", outPath: base + ".out", exited: make(chan struct{})}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	outFile, err := os.OpenFile(p.outPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("output of %s: %w", name, err)
	}
	fmt.Fprintf(logFile, "### %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = outFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	ps.reqs <- startReq{cmd: cmd, errc: errc}
	if err := <-errc; err != nil {
		_ = logFile.Close()
		_ = outFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		_ = outFile.Close()
		close(p.exited)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// mustStart is start that fails the test on error.
func (ps *procs) mustStart(name string, env []string, argv ...string) *proc {
	ps.t.Helper()
	p, err := ps.start(name, env, argv...)
	if err != nil {
		ps.t.Fatal(err)
	}
	return p
}

// stopAll stops every process, in parallel.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// logs returns the tail of every process's log and output.
func (ps *procs) logs() string {
	ps.mu.Lock()
	list := ps.list
	ps.mu.Unlock()
	var b strings.Builder
	for _, p := range list {
		fmt.Fprintf(&b, "=== last lines of %s (%s):\n%s\n", p.name, p.logPath, tail(p.logPath))
		if out := tail(p.outPath); out != "" {
			fmt.Fprintf(&b, "=== stdout of %s (%s):\n%s\n", p.name, p.outPath, out)
		}
	}
	return b.String()
}

// pid is the process id (the ip netns exec wrapper execs the command, so
// it is also the command's).
func (p *proc) pid() int {
	return p.cmd.Process.Pid
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError says how the process ended, with its log's tail.
func (p *proc) exitError() error {
	err := fmt.Errorf("%s exited with status 0", p.name)
	if p.waitErr != nil {
		err = fmt.Errorf("%s exited: %w", p.name, p.waitErr)
	}
	return fmt.Errorf("%w; last lines of %s:\n%s", err, p.logPath, tail(p.logPath))
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
func (p *proc) stop() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-p.exited:
		return
	case <-timer.C:
	}
	p.kill()
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = syscall.Kill(p.pid(), syscall.SIGKILL)
	<-p.exited
}

// wait waits for the process to exit, or for ctx.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.exited:
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", p.name, ctx.Err())
	}
}

// output is what the process wrote to stdout.
func (p *proc) output() ([]byte, error) {
	return os.ReadFile(p.outPath)
}

// tail returns the last tailLines lines of a file ("" when it is empty).
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer func() { _ = f.Close() }()
	const maxBytes = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-tailLines):]
	return string(bytes.Join(lines, []byte("\n")))
}

// waitUntil polls check every 50 ms until it returns nil, p exits (when p
// is not nil), or ctx ends; the last error of check says why it timed out.
func waitUntil(ctx context.Context, p *proc, what string, check func(context.Context) error) error {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		last := check(ctx)
		if last == nil {
			return nil
		}
		if p != nil && !p.running() {
			return fmt.Errorf("%s: %w", what, p.exitError())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not before the deadline (last: %w)", what, last)
		case <-ticker.C:
		}
	}
}
