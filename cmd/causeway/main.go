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

	"github.com/causeway-mesh/causeway/internal/cli"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx, which every command (and
	// every loop over outside input) watches; the second one, should a
	// command not stop, ends the process as if it were not caught.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := cli.NewRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "causeway:", err)
		os.Exit(1)
	}
}
