package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/causeway-mesh/causeway/internal/xds"
)

// writeConfigDumpTable prints a config dump one line per resource (per
// endpoint for EDS), the way istioctl proxy-config lists them. The fields
// are read from Envoy's JSON form, so a field the resource lacks shows "-".
func writeConfigDumpTable(w io.Writer, d xds.ConfigDump) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var err error
	switch d.Type {
	case "cds":
		err = clusterRows(tw, d.Resources)
	case "eds":
		err = endpointRows(tw, d.Resources)
	case "lds":
		err = listenerRows(tw, d.Resources)
	case "rds":
		err = routeRows(tw, d.Resources)
	default:
		return fmt.Errorf("config dump of type %q: want cds, eds, lds or rds", d.Type)
	}
	if err != nil {
		return err
	}
	if len(d.Resources) == 0 {
		fmt.Fprintf(tw, "(proxy %s holds no %s resources)\n", d.Proxy, d.Type)
	}
	return tw.Flush()
}

func decodeResource(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("a resource of the dump is not Envoy JSON: %w", err)
	}
	return nil
}

func clusterRows(w io.Writer, res []json.RawMessage) error {
	fmt.Fprintln(w, "NAME\tTYPE\tLB POLICY\tTLS")
	for _, raw := range res {
		var c struct {
			Name                   string            `json:"name"`
			Type                   string            `json:"type"`
			ClusterType            *struct{}         `json:"clusterType"`
			LbPolicy               string            `json:"lbPolicy"`
			TransportSocket        json.RawMessage   `json:"transportSocket"`
			TransportSocketMatches []json.RawMessage `json:"transportSocketMatches"`
		}
		if err := decodeResource(raw, &c); err != nil {
			return err
		}
		typ := c.Type
		if typ == "" {
			// protojson leaves out the default type, STATIC.
			typ = "STATIC"
			if c.ClusterType != nil {
				typ = "custom"
			}
		}
		lb := c.LbPolicy
		if lb == "" {
			lb = "ROUND_ROBIN"
		}
		tls := "-"
		switch {
		case len(c.TransportSocketMatches) > 0:
			tls = "by endpoint (" + strconv.Itoa(len(c.TransportSocketMatches)) + " matches)"
		case len(c.TransportSocket) > 0:
			tls = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, typ, lb, tls)
	}
	return nil
}

// jsonAddress is an Envoy Address in protojson: the socket address the
// tables show.
type jsonAddress struct {
	SocketAddress struct {
		Address   string `json:"address"`
		PortValue uint32 `json:"portValue"`
	} `json:"socketAddress"`
}

func endpointRows(w io.Writer, res []json.RawMessage) error {
	fmt.Fprintln(w, "CLUSTER\tENDPOINT\tWEIGHT\tLOCALITY\tHEALTH")
	for _, raw := range res {
		var cla struct {
			ClusterName string `json:"clusterName"`
			Endpoints   []struct {
				Locality struct {
					Region  string `json:"region"`
					Zone    string `json:"zone"`
					SubZone string `json:"subZone"`
				} `json:"locality"`
				LbEndpoints []struct {
					Endpoint struct {
						Address jsonAddress `json:"address"`
					} `json:"endpoint"`
					HealthStatus        string  `json:"healthStatus"`
					LoadBalancingWeight *uint32 `json:"loadBalancingWeight"`
				} `json:"lbEndpoints"`
			} `json:"endpoints"`
		}
		if err := decodeResource(raw, &cla); err != nil {
			return err
		}
		if len(cla.Endpoints) == 0 {
			fmt.Fprintf(w, "%s\t(no endpoints)\t\t\t\n", cla.ClusterName)
		}
		for _, le := range cla.Endpoints {
			loc := strings.TrimRight(le.Locality.Region+"/"+le.Locality.Zone+"/"+le.Locality.SubZone, "/")
			for _, ep := range le.LbEndpoints {
				sa := ep.Endpoint.Address.SocketAddress
				weight := "1"
				if ep.LoadBalancingWeight != nil {
					weight = strconv.FormatUint(uint64(*ep.LoadBalancingWeight), 10)
				}
				health := ep.HealthStatus
				if health == "" {
					health = "UNKNOWN"
				}
				fmt.Fprintf(w, "%s\t%s:%d\t%s\t%s\t%s\n", cla.ClusterName, sa.Address, sa.PortValue, weight, orDash(loc), health)
			}
		}
	}
	return nil
}

func listenerRows(w io.Writer, res []json.RawMessage) error {
	fmt.Fprintln(w, "NAME\tADDRESS\tPORT\tFILTER CHAINS\tBINDS")
	for _, raw := range res {
		var l struct {
			Name         string            `json:"name"`
			Address      jsonAddress       `json:"address"`
			APIListener  json.RawMessage   `json:"apiListener"`
			FilterChains []json.RawMessage `json:"filterChains"`
			BindToPort   *bool             `json:"bindToPort"`
		}
		if err := decodeResource(raw, &l); err != nil {
			return err
		}
		sa := l.Address.SocketAddress
		addr, port := orDash(sa.Address), "-"
		if sa.PortValue != 0 {
			port = strconv.FormatUint(uint64(sa.PortValue), 10)
		}
		chains := strconv.Itoa(len(l.FilterChains))
		if len(l.APIListener) > 0 {
			chains = "api listener"
		}
		binds := "yes"
		if l.BindToPort != nil && !*l.BindToPort {
			binds = "no"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Name, addr, port, chains, binds)
	}
	return nil
}

func routeRows(w io.Writer, res []json.RawMessage) error {
	fmt.Fprintln(w, "NAME\tVIRTUAL HOST\tDOMAINS")
	for _, raw := range res {
		var rc struct {
			Name         string `json:"name"`
			VirtualHosts []struct {
				Name    string   `json:"name"`
				Domains []string `json:"domains"`
			} `json:"virtualHosts"`
		}
		if err := decodeResource(raw, &rc); err != nil {
			return err
		}
		if len(rc.VirtualHosts) == 0 {
			fmt.Fprintf(w, "%s\t(none)\t\n", rc.Name)
		}
		for _, vh := range rc.VirtualHosts {
			domains := strings.Join(vh.Domains, ",")
			const most = 80
			if len(domains) > most {
				domains = domains[:most] + "... (" + strconv.Itoa(len(vh.Domains)) + " domains)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", rc.Name, vh.Name, orDash(domains))
		}
	}
	return nil
}
