package envoy

import (
	"testing"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
)

// TestGRPCListener checks what grpc-go's client-side listener parsing
// (xdsresource.processClientSideListener) demands: an api_listener holding
// an HTTP connection manager, RDS over ADS with a route name, no
// xff_num_trusted_hops, and HTTP filters ending with the router, typed.
func TestGRPCListener(t *testing.T) {
	svc := helloworld()
	l := GRPCListener(svc, svc.Ports[0])
	validateDeep(t, l)
	if l.GetName() != "helloworld.sample.svc.cluster.local:5000" {
		t.Errorf("name %q", l.GetName())
	}
	if l.GetAddress() != nil || len(l.GetFilterChains()) != 0 {
		t.Error("an api_listener must have no address or filter chains")
	}
	hcm := new(hcmv3.HttpConnectionManager)
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		t.Fatalf("api_listener is not an HTTP connection manager: %v", err)
	}
	if hcm.GetRds().GetConfigSource().GetAds() == nil {
		t.Error("RDS config source is not ADS")
	}
	if got := hcm.GetRds().GetRouteConfigName(); got != l.GetName() {
		t.Errorf("route_config_name %q, want %q", got, l.GetName())
	}
	if hcm.GetXffNumTrustedHops() != 0 || len(hcm.GetOriginalIpDetectionExtensions()) != 0 {
		t.Error("grpc-go NACKs xff_num_trusted_hops and original_ip_detection_extensions")
	}
	fs := hcm.GetHttpFilters()
	if len(fs) == 0 {
		t.Fatal("no HTTP filters: grpc-go NACKs")
	}
	last := fs[len(fs)-1]
	if !last.GetTypedConfig().MessageIs(&routerv3.Router{}) {
		t.Errorf("last HTTP filter %s has config %q, want the router", last.GetName(), last.GetTypedConfig().GetTypeUrl())
	}
}

func TestGRPCRoute(t *testing.T) {
	svc := helloworld()
	rc := GRPCRoute(svc, svc.Ports[0])
	validateDeep(t, rc)
	if diff := cmp.Diff(map[string][]string{
		"helloworld.sample.svc.cluster.local:5000": {"helloworld.sample.svc.cluster.local:5000", "helloworld.sample.svc.cluster.local"},
	}, vhostDomains(rc)); diff != "" {
		t.Errorf("virtual hosts (-want +got):\n%s", diff)
	}
	r := rc.GetVirtualHosts()[0].GetRoutes()
	if len(r) != 1 || r[0].GetMatch().GetPrefix() != "/" || r[0].GetRoute().GetCluster() != "outbound|5000||helloworld.sample.svc.cluster.local" {
		t.Errorf("routes %v, want prefix / to outbound|5000||helloworld.sample.svc.cluster.local", r)
	}
}
