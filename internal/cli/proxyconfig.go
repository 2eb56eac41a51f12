package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/xds"
)

func newProxyConfigCommand() *cobra.Command {
	var debugAddr, proxy, typ, output string
	cmd := &cobra.Command{
		Use:   "proxy-config",
		Short: "Print what the xDS server last sent a connected proxy",
		Long: `proxy-config asks a running causeway's debug server what it last sent one
connected proxy of one resource type (clusters, endpoints, listeners or
routes): exactly the resources the proxy holds from this control plane. The
default table has one line per resource (clusters: name, discovery type and
load balancing; endpoints: one line per endpoint; listeners: address, port
and filter chains; routes: virtual hosts and their domains); -o json or
-o yaml prints the whole resources, in Envoy's JSON form. Proxies are named by their xDS node id; if the one asked
for is not connected, the connected ones are listed.`,
		Example: `  causeway proxy-config --proxy sidecar~10.244.0.7~sleep-5d9f.sample~sample.svc.cluster.local --type eds
  causeway proxy-config --debug-addr http://istiod.example:15014 --proxy grpc-client-1 --type lds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return runProxyConfig(cmd, debugAddr, proxy, typ, output)
		},
	}
	cmd.Flags().StringVar(&debugAddr, "debug-addr", "http://localhost:15014", "URL (or host:port) of causeway's debug server")
	cmd.Flags().StringVar(&proxy, "proxy", "", "xDS node id of the proxy (see /debug/proxies)")
	cmd.Flags().StringVar(&typ, "type", "", "resource type: cds, eds, lds or rds")
	outputFlag(cmd.Flags(), &output)
	_ = cmd.MarkFlagRequired("proxy")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

// maxConfigDump bounds the answer proxy-config reads: the largest config
// dump of one type of one proxy, with room to spare.
const maxConfigDump = 256 << 20

func runProxyConfig(cmd *cobra.Command, debugAddr, proxy, typ, output string) error {
	typ = strings.ToLower(typ)
	switch typ {
	case "cds", "eds", "lds", "rds":
	default:
		return fmt.Errorf("--type %q: want cds, eds, lds or rds", typ)
	}
	base := debugAddr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/debug/config_dump")
	if err != nil {
		return fmt.Errorf("--debug-addr %q is not a URL: %w", debugAddr, err)
	}
	u.RawQuery = url.Values{"proxy": {proxy}, "type": {typ}}.Encode()

	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("building the request to %s: %w", u, err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking causeway's debug server at %s (is causeway running, and is --debug-addr right?): %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigDump+1))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", u, err)
	}
	if len(body) > maxConfigDump {
		return fmt.Errorf("the answer of %s is larger than %d MiB: not a config dump of causeway", u, maxConfigDump>>20)
	}

	switch resp.StatusCode {
	case http.StatusOK:
		var dump xds.ConfigDump
		if err := json.Unmarshal(body, &dump); err != nil {
			return fmt.Errorf("the answer of %s is not a config dump: %w", u, err)
		}
		if output != outputTable {
			return writeStructured(cmd.OutOrStdout(), output, dump)
		}
		return writeConfigDumpTable(cmd.OutOrStdout(), dump)
	case http.StatusNotFound:
		var unknown xds.UnknownProxy
		if err := json.Unmarshal(body, &unknown); err != nil || unknown.Error == "" {
			return fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
		}
		if len(unknown.Known) == 0 {
			return fmt.Errorf("proxy %q is not connected, and no proxy is", proxy)
		}
		return fmt.Errorf("proxy %q is not connected; connected proxies:\n  %s", proxy, strings.Join(unknown.Known, "\n  "))
	default:
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
}
