package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/xds"
)

// connectedProxy runs an xDS server with one service, connects a proxyless
// gRPC client named id that receives its clusters, and returns the URL of
// the server's debug handler.
func connectedProxy(t *testing.T, id string) string {
	t.Helper()
	store := model.NewStore(model.Config{})
	store.UpsertService(&model.Service{Cluster: "cluster1", Namespace: "sample", Name: "helloworld",
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.1.100.1", Ports: []model.ServicePort{{Name: "grpc", Port: 5000}}})
	srv := xds.New(xds.Config{})
	srv.Publish(store.Snapshot(), store.TakeChanges())

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	node := &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"GENERATOR": structpb.NewStringValue("grpc"), "NETWORK": structpb.NewStringValue("network1"),
	}}}
	stream := testkit.OpenDeltaADS(context.Background(), t, cc, node)
	if err := stream.Subscribe(resource.ClusterType); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	h := httptest.NewServer(srv.DebugHandler())
	t.Cleanup(h.Close)
	// The registry records the response just before it is sent.
	testkit.Eventually(t, 10*time.Second, "the proxy never showed in the registry", testkit.Holds(func() bool {
		return len(srv.Proxies()) != 0 && srv.Proxies()[0].Types != nil
	}))
	return h.URL
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func TestProxyConfig(t *testing.T) {
	url := connectedProxy(t, "grpc-client-1")

	out, err := runCLI(t, "proxy-config", "--debug-addr", url, "--proxy", "grpc-client-1", "--type", "cds")
	if err != nil {
		t.Fatalf("proxy-config: %v\n%s", err, out)
	}
	wantTable := "NAME                                                TYPE  LB POLICY    TLS\n" +
		"outbound|5000||helloworld.sample.svc.cluster.local  EDS   ROUND_ROBIN  -\n"
	if out != wantTable {
		t.Errorf("proxy-config table:\n%s\nwant:\n%s", out, wantTable)
	}
	for _, typ := range []string{"eds", "lds", "rds"} {
		if out, err := runCLI(t, "proxy-config", "--debug-addr", url, "--proxy", "grpc-client-1", "--type", typ); err != nil || !strings.Contains(out, "NAME") && !strings.Contains(out, "CLUSTER") {
			t.Errorf("proxy-config --type %s: %v\n%s", typ, err, out)
		}
	}
	out, err = runCLI(t, "proxy-config", "--debug-addr", url, "--proxy", "grpc-client-1", "--type", "cds", "-o", "json")
	if err != nil {
		t.Fatalf("proxy-config -o json: %v\n%s", err, out)
	}
	var dump xds.ConfigDump
	if err := json.Unmarshal([]byte(out), &dump); err != nil {
		t.Fatalf("output is not a config dump: %v\n%s", err, out)
	}
	var cluster struct {
		Name string `json:"name"`
	}
	if len(dump.Resources) != 1 {
		t.Fatalf("got %d clusters, want 1:\n%s", len(dump.Resources), out)
	}
	if err := json.Unmarshal(dump.Resources[0], &cluster); err != nil {
		t.Fatal(err)
	}
	want := xds.ConfigDump{Proxy: "grpc-client-1", Type: "cds", TypeURL: resource.ClusterType}
	got := dump
	got.Stream, got.LastSent, got.Resources = 0, nil, nil
	if diff := cmp.Diff(want, got); diff != "" || cluster.Name != "outbound|5000||helloworld.sample.svc.cluster.local" {
		t.Errorf("dump of cluster %q (-want +got):\n%s", cluster.Name, diff)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown proxy lists the connected ones", []string{"--proxy", "nobody", "--type", "eds"},
			"proxy \"nobody\" is not connected; connected proxies:\n  grpc-client-1"},
		{"bad type", []string{"--proxy", "grpc-client-1", "--type", "sds"}, `--type "sds": want cds, eds, lds or rds`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, append([]string{"proxy-config", "--debug-addr", strings.TrimPrefix(url, "http://")}, tc.args...)...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q; output:\n%s", err, tc.want, out)
			}
		})
	}
}
