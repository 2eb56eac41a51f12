package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/testreq"
)

// A command stuck where it cannot see its context (here, reading a standard
// input that never ends) used to ignore every SIGINT: main caught them all.
// The first one cancels the context; the next one ends the process.
func TestRepeatedInterruptEndsTheProcess(t *testing.T) {
	testreq.NotShort(t, "builds the causeway binary")
	bin := testkit.CausewayBinary(t)
	other := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(other, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "manifest", "diff", "-", other)
	stdin, err := cmd.StdinPipe() // never written to, never closed until the end
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Logf("causeway ended: %v", err)
			if _, ok := errors.AsType[*exec.ExitError](err); !ok {
				t.Fatalf("causeway ended with %v, want an exit by signal", err)
			}
			return
		case <-tick.C:
			_ = cmd.Process.Signal(syscall.SIGINT)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("causeway ignored repeated SIGINTs for 30s (then killed: %v)", <-done)
		}
	}
}
