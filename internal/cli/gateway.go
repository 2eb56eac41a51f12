package cli

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/causeway-mesh/causeway/internal/gateway"
	"github.com/causeway-mesh/causeway/internal/model"
)

// gatewayFlags are the flags of `causeway gateway`.
type gatewayFlags struct {
	xds           string
	xdsRootCert   string
	xdsServerName string
	xdsCert       string
	xdsKey        string
	xdsToken      string
	exposeCP      string
	exposeWebhook string
	network       string
	clusterID     string
	listen        string
	listener      string
	admin         string
	adminRemote   bool
	drain         time.Duration
	helloTimeout  time.Duration
	maxHellos     int
	nodeID        string
	domain        string
}

func newGatewayCommand() *cobra.Command {
	var f gatewayFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run an east-west gateway: pass mTLS from other networks to this network's endpoints by SNI",
		Long: `Run a lightweight east-west gateway, configured by the control plane over ADS
as Istio's east-west gateway is (listener 0.0.0.0_15443, one filter chain per
service port for SNI outbound_.PORT_._.HOST, clusters and EDS of this network's
endpoints). It reads each connection's TLS ClientHello without terminating
TLS, and passes the connection to an endpoint of the cluster its SNI names
(smooth weighted round robin). Unknown SNI, no endpoints, a failed dial or no
ClientHello within --hello-timeout close the connection.

Configuration updates never drop established connections. On SIGTERM the
gateway stops accepting, waits up to --drain for open connections, then closes
them. The admin server (--admin) serves /ready (200 once the first full
configuration is applied; also /healthz/ready), /metrics (Prometheus) and
/config (JSON: SNI, clusters, endpoints, weights, xDS versions; to loopback
peers only unless --admin-remote-config).

The node id defaults to router~IP~POD.NS~NS.svc.cluster.local from the
environment Istio's gateway pods have: INSTANCE_IP, POD_NAME and
POD_NAMESPACE (else this host's address and name, and istio-system).

Primary-remote. On a primary's gateway, --expose-control-plane ADDR also runs
listener 0.0.0.0_15012 on ADDR: any TLS connection passes, unterminated, to
the control plane's Service istiod port 15012 (xDS over TLS and the CA), as
Istio's expose-istiod Gateway does; the remote clusters' istiod-remote
Service points at this address. The control plane sends the listener while
that Service exists with port 15012. --expose-webhook ADDR likewise runs
listener 0.0.0.0_15017, passing TLS to the injection webhook (the Service
istiod's port 443, targetPort 15017), which the API servers of remote
clusters call at https://GATEWAY:15017/inject/cluster/CLUSTER/net/NETWORK;
TLS stays end to end, the API server verifies the control plane's own
serving certificate. The control plane sends it while istiod has port 443.

ADS is plaintext unless --xds-root-cert is given: then it is TLS, the control
plane's certificate is verified against those roots for --xds-server-name
(default the host of --xds), which is also sent as SNI, so that a gateway of
a remote cluster can take its configuration from istiod-remote.NS.svc:15012
through the primary's gateway. --xds-cert and --xds-key present a client
certificate. The files are read at start.`,
		Example: `  # A primary's gateway, exposing the control plane to remote clusters.
  causeway gateway --xds istiod.istio-system.svc:15010 --network network1 --cluster-id cluster1 \
    --expose-control-plane 0.0.0.0:15012 --expose-webhook 0.0.0.0:15017

  # A remote cluster's gateway, configured through the primary's gateway.
  causeway gateway --xds istiod-remote.istio-system.svc:15012 --network network2 --cluster-id cluster2 \
    --xds-root-cert /var/run/secrets/istio/root-cert.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd)
			if err != nil {
				return err
			}
			cfg, err := f.config(log)
			if err != nil {
				return err
			}
			gw, err := gateway.New(cfg)
			if err != nil {
				return err
			}
			return gw.Run(cmd.Context())
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// register adds the flags of `causeway gateway` to fl.
func (f *gatewayFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.xds, "xds", "", "ADS address of the control plane, HOST:PORT: plaintext gRPC, or TLS with --xds-root-cert (required)")
	fl.StringVar(&f.xdsRootCert, "xds-root-cert", "", "PEM file of the roots that verify the control plane's certificate; when set, ADS is TLS (e.g. root-cert.pem of ConfigMap istio-ca-root-cert)")
	fl.StringVar(&f.xdsServerName, "xds-server-name", "", "name the control plane's certificate must cover, also sent as SNI (default the host of --xds; TLS only)")
	fl.StringVar(&f.xdsCert, "xds-cert", "", "PEM file of a client certificate presented to the control plane (TLS only; with --xds-key)")
	fl.StringVar(&f.xdsKey, "xds-key", "", "PEM file of the key of --xds-cert")
	fl.StringVar(&f.xdsToken, "xds-token", "", "file holding the gateway's Kubernetes service-account token (audience istio-ca, e.g. the projected /var/run/secrets/tokens/istio-token), "+
		"read again for every ADS stream and sent with --cluster-id, as pilot-agent does: the control plane's secure port (15012) refuses ADS streams without a token or client certificate (TLS only)")
	fl.StringVar(&f.exposeCP, "expose-control-plane", "", "also run listener 0.0.0.0_15012 on this address (e.g. 0.0.0.0:15012), passing TLS through to the control plane for remote clusters; empty: off")
	fl.StringVar(&f.exposeWebhook, "expose-webhook", "", "also run listener 0.0.0.0_15017 on this address (e.g. 0.0.0.0:15017), passing TLS through to the control plane's injection webhook (Service istiod port 443) for remote clusters' API servers; empty: off")
	fl.StringVar(&f.network, "network", "", "network of this gateway: whose endpoints it forwards to (required)")
	fl.StringVar(&f.clusterID, "cluster-id", "", "id of the cluster the gateway runs in (required)")
	fl.StringVar(&f.listen, "listen", gateway.DefaultListen, "address to accept connections on")
	fl.StringVar(&f.listener, "listener-name", "", "LDS listener to run (default 0.0.0.0_PORT for the --listen port)")
	fl.StringVar(&f.admin, "admin", gateway.DefaultAdmin, "address of the admin server: /ready, /metrics (every peer: kubelet probes, Prometheus), /config (loopback peers only, e.g. kubectl port-forward, unless --admin-remote-config)")
	fl.BoolVar(&f.adminRemote, "admin-remote-config", false, "serve /config to every peer of --admin, without authentication: it lists every route, cluster and endpoint address the gateway forwards to; only on a network you trust, and never on a port a load balancer publishes")
	fl.DurationVar(&f.drain, "drain", gateway.DefaultDrain, "on SIGTERM, how long open connections may take to end before they are closed")
	fl.DurationVar(&f.helloTimeout, "hello-timeout", gateway.DefaultHelloTimeout, "how long a connection may take to send its TLS ClientHello")
	fl.IntVar(&f.maxHellos, "max-pending-hellos", gateway.DefaultMaxPendingHellos,
		"most connections that may be waiting for their TLS ClientHello at once, over all listeners; beyond it the oldest waiting one is closed at once if it has waited over 1s, "+
			"else the new one is (metric causeway_gateway_connection_errors_total{reason=\"hello_limit\"}), so clients that stall mid-hello cannot exhaust the gateway or lock real clients out")
	fl.StringVar(&f.nodeID, "node-id", "", "xDS node id (default router~$INSTANCE_IP~$POD_NAME.$POD_NAMESPACE~$POD_NAMESPACE.svc.DOMAIN)")
	fl.StringVar(&f.domain, "domain", model.DefaultDomain, "cluster DNS domain, for the default node id")
}

func (f *gatewayFlags) config(log *slog.Logger) (gateway.Config, error) {
	switch {
	case f.xds == "":
		return gateway.Config{}, fmt.Errorf("--xds is required: the control plane's ADS address, e.g. causeway.istio-system:15010")
	case f.network == "":
		return gateway.Config{}, fmt.Errorf("--network is required: the network whose endpoints this gateway forwards to (e.g. network2)")
	case f.clusterID == "":
		return gateway.Config{}, fmt.Errorf("--cluster-id is required: the id of the cluster this gateway runs in (e.g. cluster2)")
	case model.CheckClusterID(f.clusterID) != nil:
		return gateway.Config{}, fmt.Errorf("--cluster-id: %w", model.CheckClusterID(f.clusterID))
	case f.drain <= 0:
		return gateway.Config{}, fmt.Errorf("--drain %v: want a positive duration", f.drain)
	case f.helloTimeout <= 0:
		return gateway.Config{}, fmt.Errorf("--hello-timeout %v: want a positive duration", f.helloTimeout)
	case f.maxHellos <= 0:
		return gateway.Config{}, fmt.Errorf("--max-pending-hellos %d: want a positive number, such as %d", f.maxHellos, gateway.DefaultMaxPendingHellos)
	}
	var xdsTLS *tls.Config
	switch {
	case f.xdsRootCert != "":
		var err error
		xdsTLS, err = gateway.XDSTLSConfig(f.xds, gateway.XDSTLSFiles{
			RootCert: f.xdsRootCert, ServerName: f.xdsServerName, Cert: f.xdsCert, Key: f.xdsKey,
		})
		if err != nil {
			return gateway.Config{}, fmt.Errorf("--xds-root-cert: %w", err)
		}
	case f.xdsServerName != "" || f.xdsCert != "" || f.xdsKey != "" || f.xdsToken != "":
		return gateway.Config{}, fmt.Errorf("--xds-server-name, --xds-cert, --xds-key and --xds-token need --xds-root-cert: ADS over TLS verifies the control plane against those roots, and a token is never sent in plaintext")
	}
	nodeID := f.nodeID
	if nodeID == "" {
		id, err := defaultNodeID(f.domain)
		if err != nil {
			return gateway.Config{}, err
		}
		nodeID = id
	}
	return gateway.Config{
		XDS:                f.xds,
		XDSTLS:             xdsTLS,
		XDSTokenFile:       f.xdsToken,
		Network:            model.NetworkID(f.network),
		ClusterID:          model.ClusterID(f.clusterID),
		NodeID:             nodeID,
		Listen:             f.listen,
		ListenerName:       f.listener,
		ExposeControlPlane: f.exposeCP,
		ExposeWebhook:      f.exposeWebhook,
		Admin:              f.admin,
		AdminRemoteConfig:  f.adminRemote,
		HelloTimeout:       f.helloTimeout,
		MaxPendingHellos:   f.maxHellos,
		Drain:              f.drain,
		Logger:             log,
	}, nil
}

// defaultNodeID builds the gateway's node id from the environment of an
// Istio gateway pod (INSTANCE_IP, POD_NAME, POD_NAMESPACE), falling back to
// this host's first non-loopback address, its host name and istio-system.
func defaultNodeID(domain string) (string, error) {
	ip, err := instanceIP()
	if err != nil {
		return "", err
	}
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		if pod, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("no POD_NAME and no host name (%w): give --node-id", err)
		}
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = gateway.DefaultNamespace
	}
	return gateway.NodeID(ip, pod, ns, domain), nil
}

func instanceIP() (netip.Addr, error) {
	if s := os.Getenv("INSTANCE_IP"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("INSTANCE_IP %q is not an IP address: %w", s, err)
		}
		return ip, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing this host's addresses for the node id: %w; give --node-id", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
}
