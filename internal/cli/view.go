package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/manifests"
	"github.com/causeway-mesh/causeway/internal/model"
)

// offlineFlags are the flags of the commands that build the mesh model from
// a manifest directory instead of live clusters: view and networks.
type offlineFlags struct {
	manifests       string
	meshNetworks    string
	noGateway       string
	nodePort        string
	domain          string
	systemNamespace string
}

func (f *offlineFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.manifests, "manifests", "", "directory with one folder per cluster id, each holding that cluster's objects as YAML or JSON: Namespaces, Services, EndpointSlices, Pods and Nodes are read, other kinds are skipped and counted (required)")
	fs.StringVar(&f.meshNetworks, "mesh-networks", "", "Istio meshNetworks file (YAML or JSON): fromCidr/fromRegistry membership and gateways")
	fs.StringVar(&f.noGateway, "no-gateway-endpoints", string(model.NoGatewayDrop), "endpoints of another network that has no gateway: drop (leave them out) or direct (hand them out as reachable, as Istio does)")
	fs.StringVar(&f.nodePort, "nodeport-gateways", string(model.NodePortEndpoints), "addresses of NodePort gateway Services: endpoints (nodes running a ready gateway pod) or selector (every node the traffic.istio.io/nodeSelector annotation matches, as Istio does)")
	fs.StringVar(&f.domain, "domain", model.DefaultDomain, "cluster domain of service hostnames")
	fs.StringVar(&f.systemNamespace, "system-namespace", model.DefaultSystemNamespace, "namespace whose topology.istio.io/network label is a cluster's default network")
}

// load checks the flags, loads the manifests (and meshNetworks) into a new
// store and returns its snapshot and the manifests' cluster ids. Objects of
// kinds the model does not read are skipped, with one line on stderr saying
// how many of which. It stops with ctx's error once ctx is done (Ctrl-C).
func (f *offlineFlags) load(ctx context.Context, stderr io.Writer) (*model.Snapshot, []model.ClusterID, error) {
	if f.manifests == "" {
		return nil, nil, errors.New("--manifests is required: give the directory with one folder per cluster (e.g. --manifests examples/home)")
	}
	cfg := model.Config{
		Domain:             f.domain,
		SystemNamespace:    f.systemNamespace,
		NoGatewayEndpoints: model.NoGatewayPolicy(f.noGateway),
		NodePortGateways:   model.NodePortMode(f.nodePort),
	}
	switch cfg.NoGatewayEndpoints {
	case model.NoGatewayDrop, model.NoGatewayDirect:
	default:
		return nil, nil, fmt.Errorf("--no-gateway-endpoints %q: want %s or %s", f.noGateway, model.NoGatewayDrop, model.NoGatewayDirect)
	}
	switch cfg.NodePortGateways {
	case model.NodePortEndpoints, model.NodePortSelector:
	default:
		return nil, nil, fmt.Errorf("--nodeport-gateways %q: want %s or %s", f.nodePort, model.NodePortEndpoints, model.NodePortSelector)
	}
	if f.domain == "" || strings.HasPrefix(f.domain, ".") || strings.HasSuffix(f.domain, ".") {
		return nil, nil, fmt.Errorf("--domain %q: want a domain such as %s", f.domain, model.DefaultDomain)
	}
	if f.systemNamespace == "" {
		return nil, nil, fmt.Errorf("--system-namespace is empty: want a namespace such as %s", model.DefaultSystemNamespace)
	}

	set, err := manifests.Load(ctx, f.manifests)
	if err != nil {
		return nil, nil, err
	}
	if s := set.SkippedSummary(); s != "" {
		fmt.Fprintln(stderr, s)
	}
	var mn *model.MeshNetworks
	if f.meshNetworks != "" {
		if mn, err = manifests.LoadMeshNetworks(ctx, f.meshNetworks); err != nil {
			return nil, nil, err
		}
	}
	st := model.NewStore(cfg)
	set.Apply(st)
	if mn != nil {
		st.SetMeshNetworks(mn)
	}
	return st.Snapshot(), set.Clusters(), nil
}

func newViewCommand() *cobra.Command {
	var (
		flags   offlineFlags
		host    string
		port    uint32
		network string
		cluster string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "view --manifests DIR --host HOST --port PORT --network NET",
		Short: "Print what a proxy of one network is told about one service port, from manifests",
		Long: `view builds the mesh model from a directory of Kubernetes manifests (one folder
per cluster, no cluster needed) and prints the view a proxy of network NET gets
of service HOST, port PORT: the EDS endpoints Causeway would serve it.

Endpoints of the proxy's own network (and of the empty network) appear as they
are: pod IP and target port. Endpoints of another network that has gateways
are replaced by that network's east-west gateways (GATEWAY yes), with Istio's
weights. Endpoints of another network without gateways are left out
(--no-gateway-endpoints=drop, the default) or handed out directly (direct).

--host is the service's hostname, NAME.NS.svc.DOMAIN, or NAME.NS for short.
--port is the Service port (not the target port). --network is the proxy's
network; --network "" is a proxy without one. --cluster is the proxy's
cluster: the view does not depend on it (a proxy's endpoints depend on its
network only); it is checked against the manifests' clusters and the table
shows the service's cluster IP there, the domain the proxy's routes carry.

The JSON (and YAML) output, -o json or -o yaml, is the schema of /debug/endpoints: {"cluster", "network",
"endpoints": [{"address", "port", "weight", "locality", "cluster", "network",
"gateway"}]}.`,
		Example: `  # What a proxy in network2 sees of helloworld:5000 in the bundled example
  causeway view --manifests examples/home --host helloworld.sample --port 5000 --network network2

  # The same with Istio's NodePort gateway addresses, as JSON
  causeway view --manifests examples/home --host helloworld.sample.svc.cluster.local --port 5000 \
    --network network1 --nodeport-gateways selector -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := requireViewFlags(cmd.Flags(), host); err != nil {
				return err
			}
			sn, clusters, err := flags.load(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("cluster") && !slices.Contains(clusters, model.ClusterID(cluster)) {
				return fmt.Errorf("--cluster %q is not a cluster of the manifests: want one of %s", cluster, joinIDs(clusters))
			}
			svc, v, err := lookupView(sn, expandHost(host, flags.domain), host, port, model.NetworkID(network))
			if err != nil {
				return err
			}
			if output != outputTable {
				return writeStructured(cmd.OutOrStdout(), output, v)
			}
			var clusterIP *string
			if cmd.Flags().Changed("cluster") {
				ip := svc.ClusterIPs[model.ClusterID(cluster)]
				clusterIP = &ip
			}
			return writeViewTable(cmd.OutOrStdout(), v, cluster, clusterIP)
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().StringVar(&host, "host", "", "service hostname: NAME.NS.svc.DOMAIN or NAME.NS (required)")
	cmd.Flags().Uint32Var(&port, "port", 0, "Service port, not the target port (required)")
	cmd.Flags().StringVar(&network, "network", "", `the proxy's network; "" for a proxy without one (required)`)
	cmd.Flags().StringVar(&cluster, "cluster", "", "the proxy's cluster: checked and shown with the service's cluster IP there; it does not change the view")
	outputFlag(cmd.Flags(), &output)
	return cmd
}

// requireViewFlags checks that view's required flags are given: --host
// (host), --port and --network, which may be "".
func requireViewFlags(fl *pflag.FlagSet, host string) error {
	switch {
	case host == "":
		return errors.New("--host is required: the service's NAME.NS or NAME.NS.svc.DOMAIN (e.g. --host helloworld.sample)")
	case !fl.Changed("port"):
		return errors.New("--port is required: a port of the Service (e.g. --port 5000)")
	case !fl.Changed("network"):
		return errors.New(`--network is required: the proxy's network (e.g. --network network1; --network "" for a proxy without one)`)
	}
	return nil
}

// lookupView finds the service h (given as host on the command line) and
// the view a proxy of network gets of its port: an error says which of the
// three is unknown.
func lookupView(sn *model.Snapshot, h model.Host, host string, port uint32, network model.NetworkID) (*model.ServiceInfo, model.View, error) {
	svc := sn.Service(h)
	if svc == nil {
		return nil, model.View{}, unknownHost(host, h, sn)
	}
	if !svc.HasPort(port) {
		return nil, model.View{}, fmt.Errorf("service %s has no port %d: its ports are %s", h, port, portList(svc))
	}
	v, ok := sn.View(h, port, network)
	if !ok {
		return nil, model.View{}, fmt.Errorf("service %s port %d has no view", h, port)
	}
	if v.Endpoints == nil {
		v.Endpoints = []model.ViewEndpoint{}
	}
	return svc, v, nil
}

// expandHost turns NAME.NS (or NAME.NS.svc) into NAME.NS.svc.DOMAIN; other
// names are taken as they are.
func expandHost(h, domain string) model.Host {
	h = strings.TrimSuffix(h, ".")
	switch {
	case strings.HasSuffix(h, ".svc."+domain):
	case strings.HasSuffix(h, ".svc") && strings.Count(h, ".") == 2:
		h += "." + domain
	case strings.Count(h, ".") == 1:
		h += ".svc." + domain
	}
	return model.Host(h)
}

func unknownHost(arg string, h model.Host, sn *model.Snapshot) error {
	svcs := sn.Services()
	if len(svcs) == 0 {
		return fmt.Errorf("unknown host %s: the manifests define no services", h)
	}
	hosts := make([]string, len(svcs))
	for i, s := range svcs {
		hosts[i] = string(s.Host)
	}
	read := ""
	if string(h) != arg {
		read = fmt.Sprintf(" (%q read as %s)", arg, h)
	}
	return fmt.Errorf("unknown host %s%s: the manifests have %s", h, read, strings.Join(hosts, ", "))
}

// portList renders a service's ports as "5000 (http), 8080".
func portList(svc *model.ServiceInfo) string {
	parts := make([]string, len(svc.Ports))
	for i, p := range svc.Ports {
		parts[i] = strconv.FormatUint(uint64(p.Port), 10)
		if p.Name != "" {
			parts[i] += " (" + p.Name + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func joinIDs(ids []model.ClusterID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}
