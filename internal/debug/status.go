package debug

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/leader"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Report is one view of a running server's cluster set: what `causeway
// status` prints.
type Report struct {
	Server   string               `json:"server"`
	Ready    ReadyResponse        `json:"ready"`
	Clusters []clusters.Status    `json:"clusters"`
	Networks model.NetworksReport `json:"networks"`
	// Leader is the leader election as the server sees it, with the Lease
	// it read; nil for a server without the page (a static server).
	Leader *leader.Status `json:"leader,omitempty"`
}

// PathLeader is the page of the leader election.
const PathLeader = "/debug/leader"

// FetchReport reads /ready, /debug/clusters and /debug/networks of the
// debug server at base (e.g. http://localhost:15014).
func FetchReport(ctx context.Context, client *http.Client, base string) (*Report, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(base, "/")
	rep := &Report{Server: base}
	if err := getJSON(ctx, client, base+PathReady, &rep.Ready, http.StatusOK, http.StatusServiceUnavailable); err != nil {
		return nil, err
	}
	var cl ClustersResponse
	if err := getJSON(ctx, client, base+PathClusters, &cl, http.StatusOK); err != nil {
		return nil, err
	}
	rep.Clusters = cl.Clusters
	if err := getJSON(ctx, client, base+PathNetworks, &rep.Networks, http.StatusOK, http.StatusServiceUnavailable); err != nil {
		return nil, err
	}
	var ls leader.Status
	if err := getJSON(ctx, client, base+PathLeader, &ls, http.StatusOK, http.StatusNotFound); err != nil {
		return nil, err
	}
	if ls.Identity != "" || ls.Enabled {
		rep.Leader = &ls
	}
	return rep, nil
}

func getJSON(ctx context.Context, client *http.Client, url string, v any, okCodes ...int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w: is `causeway serve` running with that --debug-addr?", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if !slices.Contains(okCodes, resp.StatusCode) {
		var e ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, e.Error)
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.StatusCode == http.StatusServiceUnavailable && !strings.HasSuffix(url, PathReady) {
		return nil // no snapshot yet: left empty
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil // a page this server does not have: left empty
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: the answer is not the expected JSON: %w", url, err)
	}
	return nil
}

// WriteTable prints the report as tables: clusters, then networks and their
// gateways, then warnings. Ages are relative to now.
func WriteTable(w io.Writer, r *Report, now time.Time) error {
	ready := "ready"
	if !r.Ready.Ready {
		ready = "NOT READY: " + r.Ready.Reason
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server %s: %s\n", r.Server, ready)
	if r.Leader != nil {
		b.WriteString(leaderLine(r.Leader, now) + "\n")
	}
	b.WriteString("\n")
	if err := writeClusterTable(&b, r.Clusters, now); err != nil {
		return err
	}
	b.WriteString("\n")
	if err := writeNetworkTable(&b, r.Networks.Networks); err != nil {
		return err
	}
	if len(r.Networks.Warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, wn := range r.Networks.Warnings {
			b.WriteString("  - " + wn + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// writeClusterTable writes the table of clusters to w, ages relative to
// now.
func writeClusterTable(w io.Writer, cs []clusters.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSTATE\tNETWORK\tSYNCED\tLAST SEEN\tSTALE FOR\tENDPOINTS\tSERVICES\tPODS\tSOURCE\tERROR")
	for i := range cs {
		c := &cs[i]
		synced := "no"
		if c.SyncedAt != nil {
			synced = age(now.Sub(*c.SyncedAt)) + " ago"
		}
		seen := "-"
		if c.LastSeen != nil {
			seen = age(now.Sub(*c.LastSeen)) + " ago"
		}
		stale := "-"
		if c.StaleSeconds > 0 {
			stale = age(time.Duration(c.StaleSeconds * float64(time.Second)))
		}
		svcs, pods := "-", "-"
		if c.Objects != nil {
			svcs, pods = strconv.Itoa(c.Objects.Services), strconv.Itoa(c.Objects.Pods)
		}
		errText := c.Error
		if c.Credentials != "" {
			errText = "credentials " + c.Credentials + ": " + errText
		}
		if c.Pending != "" {
			errText = strings.TrimSpace(errText + " (" + c.Pending + ")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			c.ID, c.State, dash(string(c.Network)), synced, seen, stale, endpoints(c.Endpoints), svcs, pods, c.Source, dash(oneLine(errText)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// writeNetworkTable writes the table of networks and their gateways to w.
func writeNetworkTable(w io.Writer, nets []model.NetworkReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tCLUSTERS\tENDPOINTS\tGATEWAYS")
	for _, n := range nets {
		var cls []string
		for _, c := range n.Clusters {
			cls = append(cls, string(c))
		}
		var gws []string
		for _, g := range n.Gateways {
			gw := g.Address + ":" + strconv.FormatUint(uint64(g.Port), 10)
			if g.Cluster != "" {
				gw += " (" + string(g.Cluster) + ")"
			}
			gws = append(gws, gw)
		}
		name := string(n.Name)
		if name == "" {
			name = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", name, dash(strings.Join(cls, ",")), n.Endpoints, dash(strings.Join(gws, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// leaderLine says which replica leads and what this one does.
func leaderLine(l *leader.Status, now time.Time) string {
	if !l.Enabled {
		return "leader: election off; this replica (" + dash(l.Identity) + ") writes"
	}
	role := "following"
	if l.IsLeader {
		role = "leading"
	}
	holder := l.Holder
	switch {
	case l.LeaseError != "":
		return fmt.Sprintf("leader: %s as last observed (lease %s not read: %s); this replica %s is %s",
			dash(l.Leader), l.Lease, oneLine(l.LeaseError), l.Identity, role)
	case holder == "":
		holder = "none (the lease is free)"
	}
	renewed := ""
	if !l.RenewTime.IsZero() {
		renewed = ", renewed " + age(now.Sub(l.RenewTime)) + " ago"
	}
	return fmt.Sprintf("leader: %s (lease %s%s); this replica %s is %s", holder, l.Lease, renewed, l.Identity, role)
}

func endpoints(m map[model.NetworkID]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	total := 0
	for _, n := range slices.Sorted(maps.Keys(m)) {
		total += m[n]
		name := string(n)
		if name == "" {
			name = `""`
		}
		parts = append(parts, name+"="+strconv.Itoa(m[n]))
	}
	if len(parts) == 1 {
		return strconv.Itoa(total)
	}
	return strconv.Itoa(total) + " (" + strings.Join(parts, ",") + ")"
}

func age(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
