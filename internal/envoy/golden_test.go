package envoy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from what the builders produce")

const helloHost model.Host = "helloworld.sample.svc.cluster.local"

// helloworld is the home lab's service: helloworld.sample:5000 in two clusters.
func helloworld() *model.ServiceInfo {
	return &model.ServiceInfo{
		Host:      helloHost,
		Namespace: "sample",
		Name:      "helloworld",
		ClusterIPs: map[model.ClusterID]string{
			"cluster1": "10.96.81.179",
			"cluster2": "10.97.12.4",
		},
		Ports:           []model.ServicePort{{Name: "http", Port: 5000}},
		ServiceAccounts: []model.NamespacedName{{Namespace: "sample", Name: "default"}},
	}
}

// helloView is what a proxy of network1 sees: helloworld-v1 in its own
// network, and helloworld-v2 of network2 behind network2's gateway.
func helloView() model.View {
	return model.View{
		Cluster: model.ClusterName(helloHost, 5000, ""),
		Network: "network1",
		Endpoints: []model.ViewEndpoint{
			{
				Address: "10.244.0.7", Port: 5000, Weight: 1, Locality: "region1/zone1/",
				Cluster: "cluster1", Network: "network1", TLSMode: model.TLSModeIstio,
				Loc: model.Locality{Region: "region1", Zone: "zone1"},
			},
			{
				Address: "172.18.0.200", Port: 15443, Weight: 1, Locality: "region2/zone2/",
				Cluster: "cluster2", Network: "network2", Gateway: true, TLSMode: model.TLSModeIstio,
				Loc: model.Locality{Region: "region2", Zone: "zone2"},
			},
		},
	}
}

// helloLocalView is what network2's east-west gateway forwards to.
func helloLocalView() model.View {
	return model.View{
		Cluster: model.ClusterName(helloHost, 5000, ""),
		Network: "network2",
		Endpoints: []model.ViewEndpoint{{
			Address: "10.244.1.5", Port: 5000, Weight: 1, Locality: "region2/zone2/",
			Cluster: "cluster2", Network: "network2", TLSMode: model.TLSModeIstio,
			Loc: model.Locality{Region: "region2", Zone: "zone2"},
		}},
	}
}

func TestGolden(t *testing.T) {
	svc := helloworld()
	port := svc.Ports[0]
	svcs := []*model.ServiceInfo{svc}
	sidecarListeners := SidecarListeners(svcs)
	if len(sidecarListeners) != 1 {
		t.Fatalf("SidecarListeners gave %d listeners, want 1", len(sidecarListeners))
	}
	capturedListeners := CapturedOutboundListeners(svcs, "cluster1", AllowAny)
	if len(capturedListeners) != 1 {
		t.Fatalf("CapturedOutboundListeners gave %d listeners, want 1", len(capturedListeners))
	}
	capturedHTTP := capturedListeners[0]
	helloInbound := Inbound{Passthrough: model.MTLSPermissive, Ports: []InboundPort{
		{Port: 5000, Protocol: model.ProtocolHTTP, Mode: model.MTLSPermissive},
	}}
	tests := []struct {
		name string
		msg  proto.Message
	}{
		{"sidecar_listener", sidecarListeners[0]},
		{"sidecar_route", SidecarRoute(5000, svcs, "sample", "cluster1", AllowAny)},
		{"sidecar_cluster", Cluster(svc, port, ClusterOptions{})},
		{"sidecar_endpoints", ClusterLoadAssignment(helloView())},
		{"eastwest_listener", GatewayListener(svcs, model.DefaultGatewayPort)},
		{"eastwest_cluster", GatewayCluster(svc, port)},
		{"eastwest_endpoints", GatewayClusterLoadAssignment(svc.Host, port.Port, helloLocalView())},
		{"eastwest_controlplane_listener", ControlPlaneListener([]*model.ServiceInfo{svc, istiod("istio-system")})},
		{"grpc_listener", GRPCListener(svc, port)},
		{"grpc_route", GRPCRoute(svc, port)},
		{"grpc_cluster", GRPCCluster(svc, port, ClusterOptions{})},
		{"grpc_endpoints", GRPCClusterLoadAssignment(helloView())},
		{"captured_virtual_outbound", VirtualOutboundListener(AllowAny, InterceptionRedirect)},
		{"captured_http_listener", capturedHTTP},
		{"captured_virtual_inbound", VirtualInboundListener(helloInbound, InterceptionRedirect, "")},
		{"captured_inbound_cluster", InboundCluster(helloInbound.Ports[0], ClusterOptions{})},
		{"captured_passthrough_cluster", CapturedClusters(ClusterOptions{})[2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validateDeep(t, tt.msg)
			got := stableJSON(t, tt.msg)
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from %s (-want +got; go test -update rewrites it):\n%s", tt.name, path, diff)
			}
		})
	}
}

// stableJSON renders m as indented protojson with proto field names.
// protojson varies its whitespace on purpose, so the output is compacted
// and indented again to be byte-stable.
func stableJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}
