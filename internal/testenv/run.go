package testenv

import (
	"fmt"

	"path/filepath"
	"strings"
)

// Proc is a process an Env runs beside its clusters (a control plane
// under test, say): started with [Env.Run], stopped by its PID with the
// Env (before etcd) or by [Proc.Stop], its log's tail in [Env.Logs].
type Proc struct {
	p *process
}

// Run starts bin with args and env added to this process's environment,
// its stdout and stderr in NAME.log of the Env's folder. It does not wait
// for anything: poll what the process serves, and [Proc.Exited] for why it
// ended.
func (e *Env) Run(name, bin string, args, env []string) (*Proc, error) {
	logPath := filepath.Join(e.dir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".log")
	p, err := e.runner.startEnv(name, logPath, bin, args, env)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return &Proc{p: p}, nil
}

// Stop sends SIGTERM, then SIGKILL a second later, and waits for the exit.
func (p *Proc) Stop() { p.p.stop() }

// Exited returns why the process ended, with its log's tail, or nil while
// it runs.
func (p *Proc) Exited() error { return p.p.exitError() }

// Tail returns the last lines of the process's log.
func (p *Proc) Tail() string { return p.p.tail() }

// LogPath is the file of the process's output.
func (p *Proc) LogPath() string { return p.p.logPath }

// Pid is the process id.
func (p *Proc) Pid() int {
	if p.p.cmd.Process == nil {
		return 0
	}
	return p.p.cmd.Process.Pid
}
