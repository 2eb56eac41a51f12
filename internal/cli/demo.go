package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/examples"
	"github.com/causeway-mesh/causeway/internal/manifests"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/server"
)

type demoFlags struct {
	xdsAddr   string
	debugAddr string
	duration  time.Duration
	host      string
	port      uint32
}

func newDemoCommand() *cobra.Command {
	f := demoFlags{host: "helloworld.sample.svc.cluster.local", port: 5000}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the bundled two-cluster example as a live control plane (no Kubernetes needed)",
		Long: `Run the control plane on the example built into the binary (examples/home):
cluster1 on network1 with a LoadBalancer east-west gateway, cluster2 on
network2 with only a NodePort gateway, helloworld v1 in cluster1 and v2 in
cluster2. It serves xDS on --xds-addr and the debug API on --debug-addr, then
connects to its own xDS server as a sidecar of each network, prints the
endpoints of helloworld each one receives over ADS, and says how to query it.
It runs until interrupted, or for --duration.`,
		Example: `  causeway demo
  causeway demo --xds-addr 127.0.0.1:25010 --debug-addr 127.0.0.1:25014 --duration 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xdsAddr, "xds-addr", "127.0.0.1:15010", "listen address of the xDS server")
	fl.StringVar(&f.debugAddr, "debug-addr", "127.0.0.1:15014", "listen address of the debug API")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (0: run until interrupted)")
	return cmd
}

func runDemo(cmd *cobra.Command, f demoFlags) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	set, err := manifests.LoadFS(cmd.Context(), examples.Home, "home")
	if err != nil {
		return fmt.Errorf("the embedded example: %w", err)
	}
	srv, err := server.New(server.Config{
		Manifests: set,
		DebugAddr: f.debugAddr,
		XDSAddr:   f.xdsAddr,
		Logger:    log,
	})
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if f.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()

	xdsAddr, err := waitServing(ctx, srv, errc)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Causeway is serving the bundled example (clusters %s).\n\n", strings.Join(clusterIDs(srv), ", "))
	host := model.Host(f.host)
	clusterName := model.ClusterName(host, f.port, "")
	for _, nw := range []struct {
		network model.NetworkID
		cluster model.ClusterID
	}{{"network1", "cluster1"}, {"network2", "cluster2"}} {
		cla, err := fetchEDS(ctx, xdsAddr.String(), nw.network, nw.cluster, clusterName)
		if err != nil {
			return fmt.Errorf("asking the xDS server as a sidecar of %s: %w", nw.network, err)
		}
		printCLA(out, nw.network, nw.cluster, cla)
	}
	dbg := srv.DebugAddr()
	fmt.Fprintf(out, `How to query it:
  xDS (ADS, SotW and delta):  %[1]s   node metadata NETWORK=network1|network2, CLUSTER_ID=cluster1|cluster2
  what a network sees:        curl '%[2]s/debug/endpoints?host=%[3]s&port=%[4]d&network=network2'
  networks and gateways:      curl %[2]s/debug/networks
  clusters:                   curl %[2]s/debug/clusters
  connected proxies:          curl %[2]s/debug/proxies
  metrics:                    curl %[2]s/metrics
  the same, offline:          causeway view --manifests examples/home --host helloworld.sample --port 5000 --network network2 -o table

`, xdsAddr, "http://"+dbg.String(), f.host, f.port)
	if f.duration > 0 {
		fmt.Fprintf(out, "Stopping after %v.\n", f.duration)
	} else {
		fmt.Fprintln(out, "Press Ctrl-C to stop.")
	}
	return <-errc
}

func clusterIDs(srv *server.Server) []string {
	sts := srv.Clusters()
	ids := make([]string, len(sts))
	for i := range sts {
		ids[i] = string(sts[i].ID)
	}
	return ids
}

// waitServing waits until the server listens and is ready.
func waitServing(ctx context.Context, srv *server.Server, errc <-chan error) (net.Addr, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr := srv.XDSAddr(); addr != nil && srv.DebugAddr() != nil {
			if ok, _ := srv.Ready(); ok && srv.Snapshot() != nil {
				return addr, nil
			}
		}
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("the server stopped before it was ready")
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// fetchEDS asks the xDS server, as a sidecar of network in cluster, for one
// EDS resource over a state-of-the-world ADS stream, and ACKs it.
func fetchEDS(ctx context.Context, addr string, network model.NetworkID, cluster model.ClusterID, name string) (*endpointv3.ClusterLoadAssignment, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	node := &corev3.Node{
		Id: fmt.Sprintf("sidecar~127.0.0.1~demo-%s.sample~sample.svc.cluster.local", network),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NETWORK":    structpb.NewStringValue(string(network)),
			"CLUSTER_ID": structpb.NewStringValue(string(cluster)),
		}},
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	// ACK, as a proxy does, then close the stream.
	_ = stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResourceNames: []string{name},
		VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
	_ = stream.CloseSend()
	for _, res := range resp.GetResources() {
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := res.UnmarshalTo(cla); err != nil {
			return nil, err
		}
		if cla.GetClusterName() == name {
			return cla, nil
		}
	}
	return nil, fmt.Errorf("no resource %s in the response", name)
}

func printCLA(w io.Writer, network model.NetworkID, cluster model.ClusterID, cla *endpointv3.ClusterLoadAssignment) {
	fmt.Fprintf(w, "A sidecar in %s (%s) receives over xDS, for %s:\n", network, cluster, cla.GetClusterName())
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  ADDRESS\tPORT\tWEIGHT\tLOCALITY\tMTLS")
	for _, loc := range cla.GetEndpoints() {
		l := loc.GetLocality()
		locality := l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
		for _, ep := range loc.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			mtls := "no"
			if ep.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue() == "istio" {
				mtls = "istio"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", sa.GetAddress(), sa.GetPortValue(), ep.GetLoadBalancingWeight().GetValue(), locality, mtls)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}
