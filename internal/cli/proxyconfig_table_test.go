package cli

import (
	"bytes"
	"encoding/json"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
	"github.com/causeway-mesh/causeway/internal/xds"
)

func dumpOf(t *testing.T, typ string, msgs ...proto.Message) xds.ConfigDump {
	t.Helper()
	d := xds.ConfigDump{Proxy: "p", Type: typ}
	for _, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		d.Resources = append(d.Resources, json.RawMessage(b))
	}
	return d
}

// The tables read Envoy's JSON form of real resources.
func TestConfigDumpTables(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: "outbound|5000||helloworld.sample.svc.cluster.local",
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality: &corev3.Locality{Region: "home", Zone: "rack2"},
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: testkit.SocketAddress("192.168.1.240", 15443)}},
				LoadBalancingWeight: wrapperspb.UInt32(2),
				HealthStatus:        corev3.HealthStatus_HEALTHY,
			}},
		}},
	}
	lis := &listenerv3.Listener{Name: "virtualOutbound", Address: testkit.SocketAddress("0.0.0.0", 15001),
		FilterChains: []*listenerv3.FilterChain{{}, {}}, BindToPort: wrapperspb.Bool(true)}
	rc := &routev3.RouteConfiguration{Name: "5000", VirtualHosts: []*routev3.VirtualHost{{
		Name: "helloworld.sample.svc.cluster.local:5000", Domains: []string{"helloworld.sample.svc.cluster.local", "helloworld.sample"}}}}
	for _, tc := range []struct {
		dump xds.ConfigDump
		want string
	}{
		{dumpOf(t, "eds", cla), "CLUSTER                                             ENDPOINT             WEIGHT  LOCALITY    HEALTH\n" +
			"outbound|5000||helloworld.sample.svc.cluster.local  192.168.1.240:15443  2       home/rack2  HEALTHY\n"},
		{dumpOf(t, "lds", lis), "NAME             ADDRESS  PORT   FILTER CHAINS  BINDS\nvirtualOutbound  0.0.0.0  15001  2              yes\n"},
		{dumpOf(t, "rds", rc), "NAME  VIRTUAL HOST                              DOMAINS\n" +
			"5000  helloworld.sample.svc.cluster.local:5000  helloworld.sample.svc.cluster.local,helloworld.sample\n"},
		{dumpOf(t, "cds"), "NAME  TYPE  LB POLICY  TLS\n(proxy p holds no cds resources)\n"},
	} {
		var b bytes.Buffer
		if err := writeConfigDumpTable(&b, tc.dump); err != nil {
			t.Fatalf("%s: %v", tc.dump.Type, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s table:\n%s\nwant:\n%s", tc.dump.Type, b.String(), tc.want)
		}
	}
}
