package cli

import (
	"bytes"
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
	var debugAddr, proxy, typ string
	cmd := &cobra.Command{
		Use:   "proxy-config",
		Short: "Print what the xDS server last sent a connected proxy",
		Long: `proxy-config asks a running causeway's debug server what it last sent one
connected proxy of one resource type (clusters, endpoints, listeners or
routes) and prints it as JSON: exactly the resources the proxy holds from
this control plane. Proxies are named by their xDS node id; if the one asked
for is not connected, the connected ones are listed.`,
		Example: `  causeway proxy-config --proxy sidecar~10.244.0.7~sleep-5d9f.sample~sample.svc.cluster.local --type eds
  causeway proxy-config --debug-addr http://istiod.example:15014 --proxy grpc-client-1 --type lds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxyConfig(cmd, debugAddr, proxy, typ)
		},
	}
	cmd.Flags().StringVar(&debugAddr, "debug-addr", "http://localhost:15014", "URL (or host:port) of causeway's debug server")
	cmd.Flags().StringVar(&proxy, "proxy", "", "xDS node id of the proxy (see /debug/proxies)")
	cmd.Flags().StringVar(&typ, "type", "", "resource type: cds, eds, lds or rds")
	_ = cmd.MarkFlagRequired("proxy")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func runProxyConfig(cmd *cobra.Command, debugAddr, proxy, typ string) error {
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
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", u, err)
	}

	switch resp.StatusCode {
	case http.StatusOK:
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			return fmt.Errorf("the answer of %s is not JSON: %w", u, err)
		}
		out.WriteByte('\n')
		_, err := cmd.OutOrStdout().Write(out.Bytes())
		return err
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
