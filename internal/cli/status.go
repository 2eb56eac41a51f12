package cli

import (
	"context"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/debug"
)

func newStatusCommand() *cobra.Command {
	var (
		addr    string
		output  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster set of a running control plane",
		Long: `Read a running 'causeway serve' debug API and show, in one view, every
cluster (state, network, when it synced, when its API server last answered,
how stale its data is, endpoint and object counts, errors), every network
with its clusters, endpoints and gateways, and the model's warnings.

The server answers /debug/* only to loopback peers (unless it runs with
--debug-remote): for a control plane in a pod, forward its port first,
  kubectl -n istio-system port-forward deploy/istiod 15014
and run causeway status against http://localhost:15014. A remote secret
the server refused is listed in state error with the reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rep, err := debug.FetchReport(ctx, &http.Client{}, addr)
			if err != nil {
				return err
			}
			if output != outputTable {
				return writeStructured(cmd.OutOrStdout(), output, rep)
			}
			return debug.WriteTable(cmd.OutOrStdout(), rep, time.Now())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "debug-addr", "http://localhost:15014", "URL (or host:port) of the server's debug API")
	outputFlag(fl, &output)
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the server")
	return cmd
}
