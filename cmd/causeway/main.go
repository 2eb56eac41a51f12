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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "causeway:", err)
		os.Exit(1)
	}
}
