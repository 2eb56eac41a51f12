package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/test/e2e/capture"
)

// Resource type URLs of ADS, spelled out rather than taken from the code
// under test.
const (
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// sidecarNode is the xDS node of a sidecar, as Istio's agent writes it.
type sidecarNode struct {
	IP        string `json:"ip"`
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
	Network   string `json:"network"`
	ClusterID string `json:"clusterID"`
	// Interception is INTERCEPTION_MODE: REDIRECT for an injected pod
	// whose traffic iptables captures; empty sends none (bind-to-port).
	Interception string `json:"interception,omitempty"`
	// Labels is LABELS, the pod's labels.
	Labels map[string]string `json:"labels,omitempty"`
	// PodPorts is POD_PORTS, the pod's container ports as the injector
	// writes them (a JSON string); sent with Interception.
	PodPorts []podPort `json:"podPorts,omitempty"`
}

// podPort is one container port of POD_PORTS.
type podPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

func (n sidecarNode) proto() *corev3.Node {
	md := map[string]*structpb.Value{
		"NETWORK":    structpb.NewStringValue(n.Network),
		"CLUSTER_ID": structpb.NewStringValue(n.ClusterID),
		"NAMESPACE":  structpb.NewStringValue(n.Namespace),
	}
	if n.Interception != "" {
		md["INTERCEPTION_MODE"] = structpb.NewStringValue(n.Interception)
		ports := n.PodPorts
		if ports == nil {
			ports = []podPort{}
		}
		raw, _ := json.Marshal(ports) // plain structs: cannot fail
		md["POD_PORTS"] = structpb.NewStringValue(string(raw))
	}
	if len(n.Labels) > 0 {
		labels := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range n.Labels {
			labels.Fields[k] = structpb.NewStringValue(v)
		}
		md["LABELS"] = structpb.NewStructValue(labels)
	}
	return &corev3.Node{
		Id:       "sidecar~" + n.IP + "~" + n.Pod + "." + n.Namespace + "~" + n.Namespace + ".svc.cluster.local",
		Cluster:  n.Pod + "." + n.Namespace,
		Metadata: &structpb.Struct{Fields: md},
	}
}

// upstream is what a sidecar knows about one CDS cluster once its EDS has
// come: the endpoints and how to speak to each.
type upstream struct {
	Cluster   string     `json:"cluster"`
	Endpoints []endpoint `json:"endpoints"`
}

// endpoint and upstreamTLS are capture's: an LbEndpoint with the
// transport socket its metadata selects.
type (
	endpoint    = capture.Endpoint
	upstreamTLS = capture.UpstreamTLS
)

// xdsServer is where a proxy takes its ADS: in plaintext (the control
// plane's 15010), or over TLS (its 15012, directly or through a primary's
// east-west gateway) when RootCertFile is set, the server's certificate
// verified against those roots for ServerName, which is also the SNI.
type xdsServer struct {
	Addr         string `json:"addr"`
	RootCertFile string `json:"rootCertFile,omitempty"`
	ServerName   string `json:"serverName,omitempty"`
	// TokenFile is the service-account token (audience istio-ca) sent on
	// every stream to the secure port, which authenticates ADS as istiod
	// does; ClusterID names the token's cluster (the clusterid metadata).
	TokenFile string `json:"tokenFile,omitempty"`
	ClusterID string `json:"clusterID,omitempty"`
}

// withToken is x with the token of id, when x is the secure port.
func (x xdsServer) withToken(id workloadIdentity) xdsServer {
	if x.RootCertFile != "" {
		x.TokenFile, x.ClusterID = id.TokenFile, id.ClusterID
	}
	return x
}

// streamContext adds x's token (if any) to the context of a stream, as
// pilot-agent does.
func (x xdsServer) streamContext(ctx context.Context) (context.Context, error) {
	if x.TokenFile == "" {
		return ctx, nil
	}
	token, err := os.ReadFile(x.TokenFile)
	if err != nil {
		return ctx, fmt.Errorf("ADS %s: token: %w", x.Addr, err)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)), "clusterid", x.ClusterID), nil
}

// String names the server for messages.
func (x xdsServer) String() string {
	if x.RootCertFile == "" {
		return x.Addr
	}
	return x.Addr + " (TLS, " + x.ServerName + ")"
}

// credentials are the transport credentials of a stream to x.
func (x xdsServer) credentials() (credentials.TransportCredentials, error) {
	if x.RootCertFile == "" {
		return insecure.NewCredentials(), nil
	}
	if x.ServerName == "" {
		return nil, fmt.Errorf("ADS %s over TLS: no server name to verify the control plane's certificate for", x.Addr)
	}
	pemRoots, err := os.ReadFile(x.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("ADS %s: roots: %w", x.Addr, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemRoots) {
		return nil, fmt.Errorf("ADS %s: %s holds no PEM certificate", x.Addr, x.RootCertFile)
	}
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, ServerName: x.ServerName, RootCAs: roots}), nil
}

// fetchUpstream opens an ADS stream (state of the world) to server as
// node, takes CDS, subscribes to the EDS of cluster, and returns the
// cluster's endpoints once ready(endpoints) holds, or fails when ctx ends
// (with what it had). It reads CDS by name: the check that two control
// planes agree on a cluster's EDS, not how a captured sidecar finds it
// (resolveHTTP).
func fetchUpstream(ctx context.Context, server xdsServer, node *corev3.Node, cluster string, ready func([]endpoint) bool) (*upstream, error) {
	var last *upstream
	err := watchADS(ctx, server, node, false, func(cfg capture.Config) (subscriptions, bool, error) {
		c := cfg.Clusters[cluster]
		if c == nil {
			return subscriptions{}, false, nil
		}
		eds, err := capture.EDSName(c)
		if err != nil {
			return subscriptions{}, false, err
		}
		sub := subscriptions{EDS: []string{eds}}
		cla := cfg.Endpoints[eds]
		if cla == nil {
			return sub, false, nil
		}
		eps, err := capture.Endpoints(c, cla)
		if err != nil {
			return sub, false, err
		}
		last = &upstream{Cluster: cluster, Endpoints: eps}
		return sub, ready(eps), nil
	})
	if err != nil && last != nil {
		return nil, fmt.Errorf("%w (last EDS of %s: %v)", err, cluster, last.Endpoints)
	}
	return last, err
}

// subscriptions are the RDS and EDS resources a client asks for.
type subscriptions struct {
	RDS []string
	EDS []string
}

// maxADSResponses bounds the responses one watch reads before it gives
// up: a stream that never converges fails instead of running on.
const maxADSResponses = 10000

// watchADS opens an ADS stream (state of the world) to server as node,
// subscribes to every cluster (CDS) and, when lds is set, every listener
// (LDS), and after each response (ACKed) calls step with everything
// received so far. step names the route configurations and cluster load
// assignments to subscribe to (cumulative: a name once asked for stays)
// and whether the watch is done. It returns when step is done or fails,
// or with ctx's error.
func watchADS(ctx context.Context, server xdsServer, node *corev3.Node, lds bool, step func(capture.Config) (subscriptions, bool, error)) error {
	addr := server.String()
	creds, err := server.credentials()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("passthrough:///"+server.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("ADS %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ctx, err = server.streamContext(ctx); err != nil {
		return err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("ADS %s: %w", addr, err)
	}
	first := []string{typeCluster}
	if lds {
		first = append(first, typeListener)
	}
	for i, typ := range first {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = node
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("ADS %s: subscribe to %s: %w", addr, typ, err)
		}
	}
	cfg := capture.Config{
		Routes:    map[string]*routev3.RouteConfiguration{},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	// What was subscribed per type, and the last response's version and
	// nonce, for ACKs and for widening a subscription.
	names := map[string][]string{}
	last := map[string]*discoveryv3.DiscoveryResponse{}
	request := func(typ string) error {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}
		if r := last[typ]; r != nil {
			req.VersionInfo, req.ResponseNonce = r.GetVersionInfo(), r.GetNonce()
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("ADS %s: request %s %v: %w", addr, typ, names[typ], err)
		}
		return nil
	}
	for range maxADSResponses {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("ADS %s: %w", addr, err)
		}
		typ := resp.GetTypeUrl()
		if err := decodeInto(&cfg, resp); err != nil {
			return fmt.Errorf("ADS %s: %w", addr, err)
		}
		last[typ] = resp
		if err := request(typ); err != nil {
			return err
		}
		sub, done, err := step(cfg)
		if err != nil || done {
			return err
		}
		for typ, want := range map[string][]string{typeRoute: sub.RDS, typeEndpoint: sub.EDS} {
			grown := false
			for _, n := range want {
				if !slices.Contains(names[typ], n) {
					names[typ] = append(names[typ], n)
					grown = true
				}
			}
			if grown {
				if err := request(typ); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("ADS %s: no answer after %d responses", addr, maxADSResponses)
}

// decodeInto replaces what cfg holds of resp's type with resp's resources
// (state of the world: a response lists every resource of its type that
// was asked for).
func decodeInto(cfg *capture.Config, resp *discoveryv3.DiscoveryResponse) error {
	switch resp.GetTypeUrl() {
	case typeListener:
		cfg.Listeners = cfg.Listeners[:0:0]
		for _, res := range resp.GetResources() {
			l := &listenerv3.Listener{}
			if err := res.UnmarshalTo(l); err != nil {
				return fmt.Errorf("decode a Listener: %w", err)
			}
			cfg.Listeners = append(cfg.Listeners, l)
		}
	case typeRoute:
		clear(cfg.Routes)
		for _, res := range resp.GetResources() {
			r := &routev3.RouteConfiguration{}
			if err := res.UnmarshalTo(r); err != nil {
				return fmt.Errorf("decode a RouteConfiguration: %w", err)
			}
			cfg.Routes[r.GetName()] = r
		}
	case typeCluster:
		clear(cfg.Clusters)
		for _, res := range resp.GetResources() {
			c := &clusterv3.Cluster{}
			if err := res.UnmarshalTo(c); err != nil {
				return fmt.Errorf("decode a Cluster: %w", err)
			}
			cfg.Clusters[c.GetName()] = c
		}
	case typeEndpoint:
		clear(cfg.Endpoints)
		for _, res := range resp.GetResources() {
			c := &endpointv3.ClusterLoadAssignment{}
			if err := res.UnmarshalTo(c); err != nil {
				return fmt.Errorf("decode a ClusterLoadAssignment: %w", err)
			}
			cfg.Endpoints[c.GetClusterName()] = c
		}
	}
	return nil
}

// picker is Envoy's weighted round robin over a fixed endpoint list, as
// smooth weighted round robin (deterministic: over sum(weights) picks each
// endpoint is picked exactly its weight times).
type picker struct {
	eps     []endpoint
	current []int64
}

func newPicker(eps []endpoint) *picker {
	return &picker{eps: eps, current: make([]int64, len(eps))}
}

func (p *picker) next() endpoint {
	var total int64
	best := 0
	for i, ep := range p.eps {
		w := int64(max(ep.Weight, 1))
		p.current[i] += w
		total += w
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= total
	return p.eps[best]
}

// canonical is an upstream's endpoints as sorted strings, for comparisons.
func canonical(u *upstream) []string {
	out := make([]string, 0, len(u.Endpoints))
	for _, ep := range u.Endpoints {
		out = append(out, ep.String())
	}
	slices.Sort(out)
	return out
}
