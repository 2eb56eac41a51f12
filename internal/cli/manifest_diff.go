package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/files"
	"github.com/causeway-mesh/causeway/internal/install"
)

func newManifestDiffCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "diff A.yaml B.yaml",
		Short: "Compare two manifests object by object",
		Long: `Compare two manifests (YAML or JSON, several documents, "-" for standard
input) object by object, keyed by Kind:namespace:name, as "istioctl manifest
diff" does: the objects only one side has, then, for each object both have,
every changed value by its path, "a.b[#0].c: old -> new (ADDED|REMOVED|CHANGED)".
Lists are compared element by element; strings holding YAML (a ConfigMap's
mesh config) are compared as YAML.

Exit status: 0 when the manifests are the same, 1 when they differ (the
binary prints "causeway: manifests differ" on standard error) or when a
manifest cannot be read.`,
		Example: `  causeway manifest generate --profile primary --cluster-id cluster2 --network network2 > primary.yaml
  causeway manifest generate --profile remote --cluster-id cluster2 --network network2 --remote-pilot-address 192.168.1.1 > remote.yaml
  causeway manifest diff primary.yaml remote.yaml`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: want text or json", output)
			}
			a, err := readManifest(cmd.Context(), cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			b, err := readManifest(cmd.Context(), cmd.InOrStdin(), args[1])
			if err != nil {
				return err
			}
			d, err := install.Diff(a, b)
			if err != nil {
				return fmt.Errorf("%s vs %s: %w", args[0], args[1], err)
			}
			if output == "json" {
				err = writeJSON(cmd.OutOrStdout(), d)
			} else {
				err = d.Write(cmd.OutOrStdout(), args[0], args[1])
			}
			if err != nil {
				return err
			}
			if !d.Equal() {
				return errManifestsDiffer
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func readManifest(ctx context.Context, stdin io.Reader, path string) ([]byte, error) {
	var (
		data []byte
		err  error
	)
	if path == "-" {
		data, err = files.ReadFrom(ctx, "standard input", stdin, files.Manifest)
	} else {
		data, err = files.Read(ctx, path, files.Manifest)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return data, nil
}
