// Package cli builds Causeway's cobra command tree. Each subcommand lives in
// its own file and only parses flags, builds a Config and calls the package
// that does the work; no logic of the mesh lives here.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/version"
)

// NewRootCommand returns the `causeway` command with every subcommand.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "causeway",
		Short: "A multi-cluster, multi-network service-mesh control plane",
		Long: `Causeway joins several Kubernetes clusters on several L3 networks into one mesh.
It watches every cluster, decides which network each endpoint is in, discovers
each network's east-west gateways, and serves every proxy the view of each
service its network can reach (split-horizon EDS) over xDS. It keeps Istio's
labels, annotations, secret formats and xDS names.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("log-level", "info", "log level: debug or info")
	root.AddCommand(
		newVersionCommand(),
		newDemoCommand(),
		newViewCommand(),
		newNetworksCommand(),
		newCertsCommand(),
		newProxyConfigCommand(),
		newServeCommand(),
		newRemoteSecretCommand(),
		newStatusCommand(),
		newGatewayCommand(),
		newManifestCommand(),
		newCheckCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			rev := info.Revision
			if rev == "" {
				rev = "unknown"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "causeway %s (%s, revision %s)\n", info.Version, info.GoVersion, rev)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newLogger builds the process logger from the --log-level flag: the one
// place a *slog.Logger is made; packages only take one.
func newLogger(cmd *cobra.Command) (*slog.Logger, error) {
	lvl, _ := cmd.Flags().GetString("log-level")
	var level slog.Level
	switch lvl {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	default:
		return nil, fmt.Errorf("--log-level %q: want debug or info", lvl)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}
