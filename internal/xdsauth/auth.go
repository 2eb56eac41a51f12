package xdsauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// Checker checks the credential of a call: a verified client certificate,
// else the bearer token, reviewed in cluster (empty: the config cluster);
// how names where the client named the cluster, for messages. Its errors
// are *ca.AuthError. [ca.Authority] is one.
type Checker interface {
	Authenticate(ctx context.Context, cluster model.ClusterID, how string) (ca.Caller, error)
}

var _ Checker = (*ca.Authority)(nil)

// CheckerFunc adapts a function to [Checker].
type CheckerFunc func(ctx context.Context, cluster model.ClusterID, how string) (ca.Caller, error)

// Authenticate calls f.
func (f CheckerFunc) Authenticate(ctx context.Context, cluster model.ClusterID, how string) (ca.Caller, error) {
	return f(ctx, cluster, how)
}

// Node metadata that Istio's bootstrap writes from the pod's environment
// (POD_NAMESPACE, SERVICE_ACCOUNT) and that the check compares with the
// credential.
const (
	MetaNamespace      = envoy.MetaNamespace
	MetaServiceAccount = "SERVICE_ACCOUNT"
)

// Refusal reasons of the node check, beside the credential's (ca.Reason*).
const (
	// ReasonInvalidNode: the first request has no node, or one that does
	// not parse, so there is nothing to authorize.
	ReasonInvalidNode = "invalid_node"
	// ReasonClusterMismatch: node metadata CLUSTER_ID and the clusterid
	// gRPC metadata name different clusters.
	ReasonClusterMismatch = "cluster_mismatch"
	// ReasonNamespace: the node claims a namespace the credential does not
	// carry.
	ReasonNamespace = "namespace_mismatch"
	// ReasonServiceAccount: the node claims a service account the
	// credential does not carry.
	ReasonServiceAccount = "service_account_mismatch"
)

// Config configures an [Authenticator].
type Config struct {
	// Checker checks credentials. Required.
	Checker Checker
	// Registerer receives the metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Logger receives a line per refusal (info) and per accepted stream
	// (debug). Required.
	Logger *slog.Logger
}

// Authenticator authenticates ADS streams; create it with [New].
type Authenticator struct {
	checker  Checker
	log      *slog.Logger
	refused  *prometheus.CounterVec
	accepted *prometheus.CounterVec
}

// New builds an Authenticator and registers its metrics.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Checker == nil || cfg.Logger == nil {
		return nil, errors.New("xdsauth: Config.Checker and Config.Logger are required")
	}
	a := &Authenticator{
		checker: cfg.Checker,
		log:     cfg.Logger,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_auth_refused_total",
			Help: "ADS streams of the secure port refused, by reason: no_credential, bad_token, bad_certificate, unknown_cluster, " +
				"unavailable (the token could not be checked now), invalid_node, cluster_mismatch, namespace_mismatch, service_account_mismatch.",
		}, []string{"reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "causeway_xds_auth_accepted_total",
			Help: "ADS streams of the secure port authenticated, by credential: token or certificate.",
		}, []string{"source"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{a.refused, a.accepted} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("xdsauth: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// adsService is the service whose streams are authenticated; the secure
// port's other service (the CA) authenticates its own calls.
const adsService = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"

// StreamInterceptor returns the interceptor of the secure port's gRPC
// server: every ADS stream, SotW and delta, is checked on its first
// request and ended with the refusal if it fails.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, adsService) {
			return handler(srv, ss)
		}
		s := &stream{ServerStream: ss, a: a}
		err := handler(srv, s)
		if r := s.refused.Load(); r != nil {
			return *r
		}
		return err
	}
}

// stream checks the node of its first request. RecvMsg is called by one
// goroutine at a time (gRPC's rule), so checked needs no lock; refused is
// read by the interceptor after the handler returns.
type stream struct {
	grpc.ServerStream
	a       *Authenticator
	checked bool
	refused atomic.Pointer[error]
}

func (s *stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil || s.checked {
		return err
	}
	s.checked = true
	var node *corev3.Node
	if r, ok := m.(interface{ GetNode() *corev3.Node }); ok {
		node = r.GetNode()
	}
	if err := s.a.check(s.Context(), node); err != nil {
		s.refused.Store(&err)
		return err
	}
	return nil
}

// check authenticates the stream of ctx as node, logs and counts the
// outcome, and returns the refusal (a gRPC status error) or nil.
func (a *Authenticator) check(ctx context.Context, node *corev3.Node) error {
	caller, reason, err := a.decide(ctx, node)
	attrs := []any{"node", node.GetId()}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, "peer", p.Addr.String())
	}
	if err != nil {
		a.refused.WithLabelValues(reason).Inc()
		a.log.Info("xDS stream refused", append(attrs, "reason", reason, "err", status.Convert(err).Message())...)
		return err
	}
	a.accepted.WithLabelValues(caller.Source).Inc()
	a.log.Debug("xDS stream authenticated", append(attrs, "identity", caller.String())...)
	return nil
}

// decide authenticates and authorizes node for the call of ctx.
func (a *Authenticator) decide(ctx context.Context, node *corev3.Node) (ca.Caller, string, error) {
	p, err := envoy.ParseNode(node)
	if err != nil {
		return ca.Caller{}, ReasonInvalidNode, status.Errorf(codes.InvalidArgument, "%v (the secure port authorizes a proxy by its node)", err)
	}
	claims, err := claimsOf(p, node)
	if err != nil {
		return ca.Caller{}, ReasonInvalidNode, status.Error(codes.InvalidArgument, err.Error())
	}
	cluster, how, err := clusterOf(ctx, p.Cluster)
	if err != nil {
		return ca.Caller{}, ReasonClusterMismatch, err
	}
	caller, err := a.checker.Authenticate(ctx, cluster, how)
	if err != nil {
		if ae, ok := errors.AsType[*ca.AuthError](err); ok {
			return ca.Caller{}, ae.Reason, ae.Err
		}
		return ca.Caller{}, ca.ReasonUnavailable, status.Errorf(codes.Unavailable, "the credential could not be checked: %v: retry shortly", err)
	}
	if reason, err := Authorize(claims, caller); err != nil {
		return caller, reason, err
	}
	return caller, "", nil
}

// Claims are what a node says about its identity.
type Claims struct {
	// Namespaces are the namespaces the node claims: its id's and its
	// metadata NAMESPACE, where given (a proxyless gRPC client may claim
	// none).
	Namespaces []string
	// ServiceAccount is metadata SERVICE_ACCOUNT; empty: none claimed.
	ServiceAccount string
}

// claimsOf reads the claims of a parsed node.
func claimsOf(p envoy.Proxy, node *corev3.Node) (Claims, error) {
	var c Claims
	if p.Namespace != "" {
		c.Namespaces = append(c.Namespaces, p.Namespace)
	}
	md := node.GetMetadata().GetFields()
	for _, key := range []string{MetaNamespace, MetaServiceAccount} {
		v, ok := md[key]
		if !ok {
			continue
		}
		var s string
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			s = k.StringValue
		case *structpb.Value_NullValue:
		default:
			return Claims{}, fmt.Errorf("%w: node metadata %s must be a string", envoy.ErrInvalidNode, key)
		}
		switch {
		case s == "":
		case key == MetaServiceAccount:
			c.ServiceAccount = s
		case s != p.Namespace:
			c.Namespaces = append(c.Namespaces, s)
		}
	}
	return c, nil
}

// clusterOf is the cluster whose TokenReview checks the stream's token:
// node metadata CLUSTER_ID; without it, the clusterid gRPC metadata that
// Istio's agent sends beside it (what istiod reads); without either, the
// config cluster (""). When both are given they must agree.
func clusterOf(ctx context.Context, nodeCluster model.ClusterID) (model.ClusterID, string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var header string
	if vs := md.Get(ca.ClusterIDMetadataKey); len(vs) > 0 {
		header = vs[0]
	}
	switch {
	case nodeCluster != "" && header != "" && header != string(nodeCluster):
		return "", "", status.Errorf(codes.PermissionDenied,
			"node metadata %s is %q but the %s gRPC metadata is %q: send the same cluster in both (pilot-agent sends ISTIO_META_CLUSTER_ID in both)",
			envoy.MetaClusterID, nodeCluster, ca.ClusterIDMetadataKey, header)
	case nodeCluster != "":
		return nodeCluster, "node metadata " + envoy.MetaClusterID, nil
	case header != "":
		return model.ClusterID(header), "the " + ca.ClusterIDMetadataKey + " gRPC metadata", nil
	}
	return "", "node metadata " + envoy.MetaClusterID, nil
}

// Authorize checks a node's claims against its caller's identity, as
// istiod's checkConnectionIdentity does: every namespace the node claims
// must be the caller's, and so must the service account if it claims
// one. Roles do not matter: a gateway (router~) is held to its namespace
// as a sidecar is. It returns the reason and a PermissionDenied status.
func Authorize(c Claims, caller ca.Caller) (string, error) {
	for _, ns := range c.Namespaces {
		if ns != caller.Namespace {
			return ReasonNamespace, status.Errorf(codes.PermissionDenied,
				"the node claims namespace %q but the credential proves %s: connect with the service-account token (or certificate) of the pod's own namespace",
				ns, caller)
		}
	}
	if c.ServiceAccount != "" && c.ServiceAccount != caller.ServiceAccount {
		return ReasonServiceAccount, status.Errorf(codes.PermissionDenied,
			"the node claims service account %q (metadata %s) but the credential proves %s: connect with that service account's token, or fix SERVICE_ACCOUNT",
			c.ServiceAccount, MetaServiceAccount, caller)
	}
	return "", nil
}
