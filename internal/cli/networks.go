package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/model"
)

func newNetworksCommand() *cobra.Command {
	var (
		flags  offlineFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "networks --manifests DIR",
		Short: "Print how the mesh splits into networks and each network's gateways, from manifests",
		Long: `networks builds the mesh model from a directory of Kubernetes manifests (one
folder per cluster, no cluster needed) and prints every network: why endpoints
and clusters belong to it (meshNetworks fromCidr or fromRegistry, the pod label
or the system namespace's label topology.istio.io/network), its clusters, its
number of ready endpoint addresses and its east-west gateways with where each
comes from. Then every warning: a label that meshNetworks overrides, a network
without gateways whose endpoints other networks cannot reach, a gateway
Service without usable addresses.

The JSON (and YAML) output, -o json or -o yaml, is the schema of /debug/networks.`,
		Example: `  # The networks of the bundled example
  causeway networks --manifests examples/home

  # With its meshNetworks file and Istio's NodePort gateway addresses, as JSON
  causeway networks --manifests examples/home --mesh-networks examples/home/mesh-networks.yaml \
    --nodeport-gateways selector`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			sn, _, err := flags.load(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep := sn.Networks()
			if output != outputTable {
				return writeStructured(cmd.OutOrStdout(), output, rep)
			}
			return writeNetworksTable(cmd.OutOrStdout(), rep)
		},
	}
	flags.register(cmd.Flags())
	outputFlag(cmd.Flags(), &output)
	return cmd
}

// writeNetworksTable prints one block per network, then the warnings.
func writeNetworksTable(w io.Writer, rep model.NetworksReport) error {
	if len(rep.Networks) == 0 {
		fmt.Fprintln(w, "no networks: the manifests have no ready endpoints and no gateways")
	}
	for i, n := range rep.Networks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "NETWORK %s\n", networkName(n.Name))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for j, m := range n.Membership {
			label := ""
			if j == 0 {
				label = "membership:"
			}
			fmt.Fprintf(tw, "  %s\t%s\n", label, m)
		}
		if len(n.Membership) == 0 {
			fmt.Fprintf(tw, "  membership:\t-\n")
		}
		clusters := make([]string, len(n.Clusters))
		for j, c := range n.Clusters {
			clusters[j] = string(c)
		}
		fmt.Fprintf(tw, "  clusters:\t%s\n", orDash(strings.Join(clusters, ", ")))
		fmt.Fprintf(tw, "  endpoints:\t%d\n", n.Endpoints)
		if len(n.Gateways) == 0 {
			fmt.Fprintf(tw, "  gateways:\tnone\n")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(n.Gateways) == 0 {
			continue
		}
		fmt.Fprintln(w, "  gateways:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "    ADDRESS\tPORT\tCLUSTER\tLOCALITY\tSOURCE")
		for _, g := range n.Gateways {
			fmt.Fprintf(tw, "    %s\t%d\t%s\t%s\t%s\n", g.Address, g.Port, orDash(string(g.Cluster)), orDash(g.Locality), g.Source)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(rep.Warnings) == 0 {
		_, err := fmt.Fprintln(w, "no warnings")
		return err
	}
	fmt.Fprintln(w, "WARNINGS")
	for _, msg := range rep.Warnings {
		fmt.Fprintf(w, "  - %s\n", msg)
	}
	return nil
}
