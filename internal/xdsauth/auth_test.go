package xdsauth

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/ca"
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/xds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func node(id string, meta map[string]string) *corev3.Node {
	f := map[string]*structpb.Value{}
	for k, v := range meta {
		f[k] = structpb.NewStringValue(v)
	}
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: f}}
}

const sleepID = "sidecar~10.0.0.7~sleep-1.sample~sample.svc.cluster.local"

func TestAuthorize(t *testing.T) {
	sleep := ca.Caller{Source: ca.SourceToken, Cluster: "c1", Namespace: "sample", ServiceAccount: "sleep"}
	for _, tc := range []struct {
		name   string
		node   *corev3.Node
		caller ca.Caller
		reason string
	}{
		{"own namespace, no service account claimed", node(sleepID, nil), sleep, ""},
		{"own namespace and service account", node(sleepID, map[string]string{"NAMESPACE": "sample", "SERVICE_ACCOUNT": "sleep"}), sleep, ""},
		{"id of another namespace", node("sidecar~10.0.0.7~db-1.prod~prod.svc.cluster.local", nil), sleep, ReasonNamespace},
		{"metadata NAMESPACE of another namespace", node(sleepID, map[string]string{"NAMESPACE": "prod"}), sleep, ReasonNamespace},
		{"another service account", node(sleepID, map[string]string{"SERVICE_ACCOUNT": "db"}), sleep, ReasonServiceAccount},
		// A gateway is held to its namespace like a sidecar, as in istiod.
		{"gateway of its namespace", node("router~10.0.0.9~eastwest-1.istio-system~istio-system.svc.cluster.local",
			map[string]string{"ROUTER_MODE": "sni-dnat"}), ca.Caller{Namespace: "istio-system", ServiceAccount: "gw"}, ""},
		{"gateway claiming the system namespace", node("router~10.0.0.9~eastwest-1.istio-system~istio-system.svc.cluster.local", nil), sleep, ReasonNamespace},
		// A proxyless client with a free-form id and no NAMESPACE claims
		// no namespace: istiod checks none either.
		{"proxyless without namespace", node("grpc-client-1", map[string]string{"GENERATOR": "grpc"}), sleep, ""},
		{"proxyless claiming another namespace", node("grpc-client-1", map[string]string{"GENERATOR": "grpc", "NAMESPACE": "prod"}), sleep, ReasonNamespace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := envoy.ParseNode(tc.node)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := claimsOf(p, tc.node)
			if err != nil {
				t.Fatal(err)
			}
			reason, err := Authorize(claims, tc.caller)
			if reason != tc.reason {
				t.Fatalf("reason %q (%v), want %q", reason, err, tc.reason)
			}
			if tc.reason != "" && status.Code(err) != codes.PermissionDenied {
				t.Errorf("code %v, want PermissionDenied", status.Code(err))
			}
		})
	}
}

func TestClusterOf(t *testing.T) {
	for _, tc := range []struct {
		name         string
		nodeCluster  model.ClusterID
		header, want string
		code         codes.Code
	}{
		{"node", "c2", "", "c2", codes.OK},
		{"node and the same header", "c2", "c2", "c2", codes.OK},
		{"header only", "", "c3", "c3", codes.OK},
		{"neither: the config cluster", "", "", "", codes.OK},
		{"disagree", "c2", "c3", "", codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.header != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(ca.ClusterIDMetadataKey, tc.header))
			}
			got, _, err := clusterOf(ctx, tc.nodeCluster)
			if status.Code(err) != tc.code || string(got) != tc.want {
				t.Errorf("clusterOf = %q, %v; want %q, %v", got, err, tc.want, tc.code)
			}
		})
	}
}

// fakeChecker accepts token "ns:sa" of the cluster it is asked about, and
// refuses everything else as the CA would.
func fakeChecker(ctx context.Context, cluster model.ClusterID, _ string) (ca.Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 {
		return ca.Caller{}, &ca.AuthError{Reason: ca.ReasonNoCredential, Err: status.Error(codes.Unauthenticated, "no credential")}
	}
	if cluster != "c1" && cluster != "" {
		return ca.Caller{}, &ca.AuthError{Reason: ca.ReasonUnknownCluster, Err: status.Error(codes.Unauthenticated, "unknown cluster")}
	}
	ns, sa, ok := strings.Cut(strings.TrimPrefix(v[0], "Bearer "), ":")
	if !ok {
		return ca.Caller{}, &ca.AuthError{Reason: ca.ReasonBadToken, Err: status.Error(codes.Unauthenticated, "token not authenticated")}
	}
	return ca.Caller{Source: ca.SourceToken, Cluster: "c1", Namespace: ns, ServiceAccount: sa}, nil
}

// serve runs the xDS server behind the interceptor on a loopback port.
func serve(t *testing.T, checker Checker) (*grpc.ClientConn, *prometheus.Registry, *xds.Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := New(Config{Checker: checker, Registerer: reg, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	x := xds.New(xds.Config{})
	store := model.NewStore(model.Config{})
	x.Publish(store.Snapshot(), store.TakeChanges())
	gs := grpc.NewServer(append(x.GRPCServerOptions(), grpc.ChainStreamInterceptor(a.StreamInterceptor()))...)
	x.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); gs.Stop(); <-done })
	return conn, reg, x
}

// firstAnswer opens an ADS stream (delta or SotW) with the token (none
// when empty), sends one CDS request as n and returns the first answer's
// error (nil: a response came).
func firstAnswer(t *testing.T, conn *grpc.ClientConn, delta bool, token string, n *corev3.Node) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return testkit.FirstResponse(ctx, conn, delta, n, resourcev3.ClusterType)
}

// TestInterceptor: both ADS protocols are checked on their first
// request, a refusal ends the stream with its code before anything is
// served, and is counted by reason.
func TestInterceptor(t *testing.T) {
	conn, reg, x := serve(t, CheckerFunc(fakeChecker))
	sleepNode := node(sleepID, map[string]string{"CLUSTER_ID": "c1", "SERVICE_ACCOUNT": "sleep"})
	for _, delta := range []bool{false, true} {
		proto := "sotw"
		if delta {
			proto = "delta"
		}
		for _, tc := range []struct {
			name   string
			token  string
			node   *corev3.Node
			code   codes.Code
			reason string
		}{
			{"accepted", "sample:sleep", sleepNode, codes.OK, ""},
			{"no credential", "", sleepNode, codes.Unauthenticated, ca.ReasonNoCredential},
			{"bad token", "garbage", sleepNode, codes.Unauthenticated, ca.ReasonBadToken},
			{"unknown cluster", "sample:sleep", node(sleepID, map[string]string{"CLUSTER_ID": "c9"}), codes.Unauthenticated, ca.ReasonUnknownCluster},
			{"other namespace", "prod:db", sleepNode, codes.PermissionDenied, ReasonNamespace},
			{"other service account", "sample:web", sleepNode, codes.PermissionDenied, ReasonServiceAccount},
			{"no node", "sample:sleep", nil, codes.InvalidArgument, ReasonInvalidNode},
		} {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				before := refused(t, reg, tc.reason)
				err := firstAnswer(t, conn, delta, tc.token, tc.node)
				if got := status.Code(err); got != tc.code {
					t.Fatalf("first answer: %v, want code %v", err, tc.code)
				}
				if tc.code == codes.OK {
					return
				}
				if got := refused(t, reg, tc.reason) - before; got != 1 {
					t.Errorf("causeway_xds_auth_refused_total{reason=%q} grew by %v, want 1", tc.reason, got)
				}
			})
		}
	}
	// No refused stream was registered as a proxy.
	for _, p := range x.Proxies() {
		if p.Namespace != "sample" {
			t.Errorf("refused proxy %s is in the registry", p.ID)
		}
	}
}

// TestInterceptorOtherServices: a stream of another service passes
// untouched (the CA authenticates its own calls).
func TestInterceptorOtherServices(t *testing.T) {
	called := false
	a, err := New(Config{Checker: CheckerFunc(func(context.Context, model.ClusterID, string) (ca.Caller, error) {
		called = true
		return ca.Caller{}, errors.New("must not be called")
	}), Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	handled := false
	err = a.StreamInterceptor()(nil, nil, &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch"},
		func(any, grpc.ServerStream) error { handled = true; return nil })
	if err != nil || !handled || called {
		t.Errorf("interceptor: err %v, handled %v, checker called %v; want the handler alone", err, handled, called)
	}
	if diff := cmp.Diff(adsService, "/"+discoveryv3.AggregatedDiscoveryService_ServiceDesc.ServiceName+"/"); diff != "" {
		t.Errorf("ADS service name (-ours +grpc's):\n%s", diff)
	}
}

// refused reads causeway_xds_auth_refused_total{reason}.
func refused(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "causeway_xds_auth_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
