// Command causeway is Causeway's one binary: the control plane (serve), the
// east-west gateway (gateway) and the operator's tools (view, networks,
// certs, remote-secret, status, ...). Run `causeway --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/internal/cli"
)

func main() {
	ctx := signalContext()
	err := cli.NewRootCommand().ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "causeway:", err)
		os.Exit(1)
	}
}

// signalContext returns a context that the first SIGINT or SIGTERM
// cancels; every command (and every loop over outside input) watches it.
// The second signal, should a command not stop (a drain that is too slow
// for the operator), ends the process as if it were not caught. The
// signals are queued, so a second one that comes before the first is
// handled still counts.
func signalContext() context.Context {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sigs
		cancel()
		sig := <-sigs
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		if s, ok := sig.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), s) // delivered asynchronously
		}
		time.Sleep(time.Second)
		os.Exit(1) // the signal's default action did not end the process
	}()
	return ctx
}
