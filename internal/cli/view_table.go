package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/causeway-mesh/causeway/internal/model"
)

// orDash renders an empty field of a table.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// networkName renders a network for a table: the empty network has no name.
func networkName(n model.NetworkID) string {
	if n == "" {
		return "(none)"
	}
	return string(n)
}

// writeViewTable prints a view as a header and an aligned table. clusterIP
// is the service's cluster IP in the proxy's cluster, nil when no cluster
// was given.
func writeViewTable(w io.Writer, v model.View, cluster string, clusterIP *string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster:\t%s\n", v.Cluster)
	fmt.Fprintf(tw, "proxy network:\t%s\n", networkName(v.Network))
	if clusterIP != nil {
		ip := *clusterIP
		if ip == "" {
			ip = "none (the service has no cluster IP there)"
		}
		fmt.Fprintf(tw, "proxy cluster:\t%s (service cluster IP %s)\n", cluster, ip)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Endpoints) == 0 {
		_, err := fmt.Fprintln(w, "\nno endpoints")
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tPORT\tWEIGHT\tLOCALITY\tCLUSTER\tNETWORK\tGATEWAY")
	for i := range v.Endpoints {
		e := &v.Endpoints[i]
		gw := "no"
		if e.Gateway {
			gw = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", e.Address, e.Port, e.Weight, orDash(e.Locality), orDash(string(e.Cluster)), networkName(e.Network), gw)
	}
	return tw.Flush()
}
