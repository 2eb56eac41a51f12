package envoy

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
)

// node builds an xDS node; meta is turned into structpb (strings, numbers,
// maps of strings...).
func node(t *testing.T, id string, meta map[string]any) *corev3.Node {
	t.Helper()
	n := &corev3.Node{Id: id}
	if meta != nil {
		s, err := structpb.NewStruct(meta)
		if err != nil {
			t.Fatal(err)
		}
		n.Metadata = s
	}
	return n
}

func TestParseNode(t *testing.T) {
	const (
		sleepID = "sidecar~10.244.0.9~sleep-5d9f.sample~sample.svc.cluster.local"
		ewID    = "router~10.244.0.3~istio-eastwestgateway-7c8b.istio-system~istio-system.svc.cluster.local"
	)
	tests := []struct {
		name    string
		id      string
		meta    map[string]any
		nilNode bool
		want    Proxy
		wantErr string // substring; "" means success
	}{
		{
			name: "sidecar with network and cluster",
			id:   sleepID,
			meta: map[string]any{
				"NETWORK": "network1", "CLUSTER_ID": "cluster1",
				"LABELS": map[string]any{"app": "sleep", "security.istio.io/tlsMode": "istio"},
			},
			want: Proxy{
				ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleSidecar,
				Network: "network1", Cluster: "cluster1",
				Labels: map[string]string{"app": "sleep", "security.istio.io/tlsMode": "istio"},
			},
		},
		{
			name: "sidecar without metadata is in the empty network",
			id:   sleepID,
			want: Proxy{ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleSidecar},
		},
		{
			name: "pod name with dots and an IPv6 address",
			id:   "sidecar~fd00::9~web.v2.prod~prod.svc.example.org",
			want: Proxy{ID: "sidecar~fd00::9~web.v2.prod~prod.svc.example.org", IP: "fd00::9", PodName: "web.v2", Namespace: "prod", Role: RoleSidecar},
		},
		{
			name: "router in standard mode",
			id:   "router~10.244.0.4~ingress-1.istio-system~istio-system.svc.cluster.local",
			meta: map[string]any{"ROUTER_MODE": "standard", "NETWORK": "network1"},
			want: Proxy{
				ID: "router~10.244.0.4~ingress-1.istio-system~istio-system.svc.cluster.local", IP: "10.244.0.4",
				PodName: "ingress-1", Namespace: "istio-system", Role: RoleRouter, Network: "network1",
			},
		},
		{
			name: "router in sni-dnat mode is an east-west gateway",
			id:   ewID,
			meta: map[string]any{"ROUTER_MODE": "sni-dnat", "NETWORK": "network2", "CLUSTER_ID": "cluster2"},
			want: Proxy{
				ID: ewID, IP: "10.244.0.3", PodName: "istio-eastwestgateway-7c8b", Namespace: "istio-system",
				Role: RoleEastWestGateway, Network: "network2", Cluster: "cluster2",
			},
		},
		{
			name: "router labeled istio=eastwestgateway is an east-west gateway",
			id:   ewID,
			meta: map[string]any{"LABELS": map[string]any{"istio": "eastwestgateway"}},
			want: Proxy{
				ID: ewID, IP: "10.244.0.3", PodName: "istio-eastwestgateway-7c8b", Namespace: "istio-system",
				Role: RoleEastWestGateway, Labels: map[string]string{"istio": "eastwestgateway"},
			},
		},
		{
			name: "sidecar in sni-dnat mode stays a sidecar",
			id:   sleepID,
			meta: map[string]any{"ROUTER_MODE": "sni-dnat"},
			want: Proxy{ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleSidecar},
		},
		{
			name: "gRPC client with Istio's id",
			id:   sleepID,
			meta: map[string]any{"GENERATOR": "grpc", "NETWORK": "network1", "CLUSTER_ID": "cluster1"},
			want: Proxy{
				ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleGRPC,
				Network: "network1", Cluster: "cluster1", Generator: "grpc",
			},
		},
		{
			name: "gRPC client with an arbitrary id takes its namespace from metadata",
			id:   "client-42",
			meta: map[string]any{"GENERATOR": "grpc", "NETWORK": "network2", "NAMESPACE": "sample"},
			want: Proxy{ID: "client-42", Namespace: "sample", Role: RoleGRPC, Network: "network2", Generator: "grpc"},
		},
		{
			name: "gRPC client with a broken Istio-like id is accepted as is",
			id:   "sidecar~not-an-ip~x.y~y.svc.cluster.local",
			meta: map[string]any{"GENERATOR": "grpc"},
			want: Proxy{ID: "sidecar~not-an-ip~x.y~y.svc.cluster.local", Role: RoleGRPC, Generator: "grpc"},
		},
		{
			name:    "an arbitrary id without GENERATOR=grpc",
			id:      "client-42",
			wantErr: "has 1 parts separated by ~, not 4; want TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.DOMAIN",
		},
		{
			name:    "empty id",
			id:      "",
			wantErr: "GENERATOR=grpc",
		},
		{
			name:    "other generator does not relax the id",
			id:      "client-42",
			meta:    map[string]any{"GENERATOR": "envoy"},
			wantErr: "not 4",
		},
		{
			name:    "unknown type",
			id:      "waypoint~10.0.0.1~a.b~b.svc.cluster.local",
			wantErr: `has type "waypoint"`,
		},
		{
			name:    "bad IP",
			id:      "sidecar~10.0.0.300~a.b~b.svc.cluster.local",
			wantErr: `IP "10.0.0.300"`,
		},
		{
			name:    "pod part not in the namespace",
			id:      "sidecar~10.0.0.1~sleep.other~sample.svc.cluster.local",
			wantErr: `"sleep.other" where POD.sample belongs`,
		},
		{
			name:    "pod part without pod",
			id:      "sidecar~10.0.0.1~.sample~sample.svc.cluster.local",
			wantErr: "where POD.sample belongs",
		},
		{
			name:    "empty domain part",
			id:      "sidecar~10.0.0.1~sleep.sample~",
			wantErr: "does not start with a namespace",
		},
		{
			name:    "NETWORK not a string",
			id:      sleepID,
			meta:    map[string]any{"NETWORK": 1.0},
			wantErr: "node metadata NETWORK is a number; it must be a string",
		},
		{
			name:    "GENERATOR not a string",
			id:      "client-42",
			meta:    map[string]any{"GENERATOR": true},
			wantErr: "GENERATOR is a bool",
		},
		{
			name:    "LABELS not a struct",
			id:      sleepID,
			meta:    map[string]any{"LABELS": "app=sleep"},
			wantErr: "LABELS is a string; it must be a struct of strings",
		},
		{
			name:    "label value not a string",
			id:      sleepID,
			meta:    map[string]any{"LABELS": map[string]any{"version": 2.0}},
			wantErr: "LABELS.version is a number",
		},
		{
			name: "null metadata values count as unset",
			id:   sleepID,
			meta: map[string]any{"NETWORK": nil, "LABELS": nil},
			want: Proxy{ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleSidecar},
		},
		{
			name: "captured sidecar with its pod's ports",
			id:   sleepID,
			meta: map[string]any{
				"INTERCEPTION_MODE": "REDIRECT",
				"POD_PORTS":         `[{"name":"http","containerPort":5000,"protocol":"TCP"},{"containerPort":9000},{"name":"dup","containerPort":5000}]`,
			},
			want: Proxy{
				ID: sleepID, IP: "10.244.0.9", PodName: "sleep-5d9f", Namespace: "sample", Role: RoleSidecar,
				Interception: InterceptionRedirect,
				PodPorts:     []PodPort{{Name: "http", Port: 5000, Protocol: "TCP"}, {Port: 9000}},
			},
		},
		{
			name:    "unknown interception mode",
			id:      sleepID,
			meta:    map[string]any{"INTERCEPTION_MODE": "EBPF"},
			wantErr: `INTERCEPTION_MODE is "EBPF"`,
		},
		{
			name:    "POD_PORTS that is not JSON",
			id:      sleepID,
			meta:    map[string]any{"POD_PORTS": "http:5000"},
			wantErr: "POD_PORTS is not a JSON list",
		},
		{
			name:    "POD_PORTS with a port out of range",
			id:      sleepID,
			meta:    map[string]any{"POD_PORTS": `[{"containerPort":70000}]`},
			wantErr: "containerPort 70000",
		},
		{
			name:    "POD_PORTS with too many ports",
			id:      sleepID,
			meta:    map[string]any{"POD_PORTS": "[" + strings.Repeat(`{"containerPort":1},`, MaxPodPorts) + `{"containerPort":2}]`},
			wantErr: "at most 256",
		},
		{
			name:    "no node",
			nilNode: true,
			wantErr: "carries no node",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n *corev3.Node
			if !tt.nilNode {
				n = node(t, tt.id, tt.meta)
			}
			got, err := ParseNode(n)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseNode = %+v, want an error containing %q", got, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidNode) {
					t.Errorf("error %v does not wrap ErrInvalidNode", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseNode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCaptured(t *testing.T) {
	tests := []struct {
		p    Proxy
		want bool
	}{
		{Proxy{Role: RoleSidecar, Interception: InterceptionRedirect}, true},
		{Proxy{Role: RoleSidecar, Interception: InterceptionTProxy}, true},
		{Proxy{Role: RoleSidecar, Interception: InterceptionNone}, false},
		{Proxy{Role: RoleSidecar}, false},
		{Proxy{Role: RoleRouter, Interception: InterceptionRedirect}, false},
		{Proxy{Role: RoleGRPC, Interception: InterceptionRedirect}, false},
	}
	for _, tt := range tests {
		if got := tt.p.Captured(); got != tt.want {
			t.Errorf("%+v.Captured() = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[Role]string{
		RoleSidecar: "sidecar", RoleRouter: "router", RoleEastWestGateway: "eastwestgateway", RoleGRPC: "grpc", Role(9): "Role(9)",
	} {
		if got := r.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", int(r), got, want)
		}
	}
}
