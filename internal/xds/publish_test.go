package xds

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

func TestKeyFor(t *testing.T) {
	sidecar := envoy.Proxy{Role: envoy.RoleSidecar, Network: network1, Cluster: cluster1, Namespace: "sample"}
	gateway := envoy.Proxy{Role: envoy.RoleEastWestGateway, Network: network2, Cluster: cluster2, Namespace: "istio-system",
		Labels: map[string]string{"istio": "eastwestgateway"}}
	cwGateway := gateway
	cwGateway.CausewayGateway = true
	router := envoy.Proxy{Role: envoy.RoleRouter, Network: network1, Cluster: cluster1, Namespace: "istio-system"}
	grpcP := envoy.Proxy{Role: envoy.RoleGRPC, Network: network1, Cluster: cluster2, Namespace: "sample"}
	captured := sidecar
	captured.Interception = envoy.InterceptionTProxy
	captured.PodPorts = []envoy.PodPort{{Name: "http", Port: 5000}, {Port: 9000}}
	captured.Labels = map[string]string{"app": "sleep", "version": "v1"}
	// Ports and protocols only: the LDS view decides the modes.
	capturedInbound := envoy.Inbound{Ports: []envoy.InboundPort{
		{Port: 5000, Protocol: model.ProtocolHTTP},
		{Port: 9000, Protocol: model.ProtocolUnsupported},
	}}.Key()
	uncaptured := sidecar
	uncaptured.Interception = envoy.InterceptionNone
	tests := []struct {
		name    string
		proxy   envoy.Proxy
		typeURL string
		want    viewKey
		wantOK  bool
	}{
		{"sidecar clusters: one view for all", sidecar, cdsType, viewKey{typeURL: cdsType, kind: kindSidecarCDS}, true},
		{"router clusters: the sidecars' view", router, cdsType, viewKey{typeURL: cdsType, kind: kindSidecarCDS}, true},
		{"sidecar endpoints: per network and cluster", sidecar, edsType, viewKey{typeURL: edsType, kind: kindSidecarEDS, network: network1, cluster: cluster1}, true},
		{"router endpoints: the sidecars' view", router, edsType, viewKey{typeURL: edsType, kind: kindSidecarEDS, network: network1, cluster: cluster1}, true},
		{"sidecar listeners: one view for all", sidecar, ldsType, viewKey{typeURL: ldsType, kind: kindSidecarLDS}, true},
		{"sidecar routes: per namespace and cluster", sidecar, rdsType,
			viewKey{typeURL: rdsType, kind: kindSidecarRDS, namespace: "sample", cluster: cluster1}, true},
		{"router listeners: none", router, ldsType, viewKey{typeURL: ldsType, kind: kindEmpty}, true},
		{"router routes: none", router, rdsType, viewKey{typeURL: rdsType, kind: kindEmpty}, true},
		{"gateway clusters: per network (per-pod clusters)", cwGateway, cdsType, viewKey{typeURL: cdsType, kind: kindGatewayCDS, network: network2}, true},
		{"gateway endpoints: its network's own", cwGateway, edsType, viewKey{typeURL: edsType, kind: kindGatewayEDS, network: network2, cluster: cluster2}, true},
		{"gateway listener: per network (per-pod chains)", cwGateway, ldsType, viewKey{typeURL: ldsType, kind: kindGatewayLDS, network: network2}, true},
		{"Istio's gateway clusters: per network and labels", gateway, cdsType, viewKey{typeURL: cdsType, kind: kindGatewayCDS, network: network2, istioGW: true, labels: "istio=eastwestgateway"}, true},
		{"Istio's gateway endpoints: per network, not labels", gateway, edsType, viewKey{typeURL: edsType, kind: kindGatewayEDS, network: network2, cluster: cluster2, istioGW: true}, true},
		{"Istio's gateway listeners: per network and labels", gateway, ldsType, viewKey{typeURL: ldsType, kind: kindGatewayLDS, network: network2, istioGW: true, labels: "istio=eastwestgateway"}, true},
		{"gateway routes: none", gateway, rdsType, viewKey{typeURL: rdsType, kind: kindEmpty}, true},
		{"gRPC clusters", grpcP, cdsType, viewKey{typeURL: cdsType, kind: kindGRPCCDS}, true},
		{"gRPC endpoints: per network and cluster", grpcP, edsType, viewKey{typeURL: edsType, kind: kindGRPCEDS, network: network1, cluster: cluster2}, true},
		{"gRPC listeners: one view for all", grpcP, ldsType, viewKey{typeURL: ldsType, kind: kindGRPCLDS}, true},
		{"gRPC routes: one view for all", grpcP, rdsType, viewKey{typeURL: rdsType, kind: kindGRPCRDS}, true},
		{"sidecar name table: per cluster and network", sidecar, envoy.NameTableType,
			viewKey{typeURL: envoy.NameTableType, kind: kindSidecarNDS, cluster: cluster1, network: network1}, true},
		{"router name table: none (istiod builds it for sidecars)", router, envoy.NameTableType,
			viewKey{typeURL: envoy.NameTableType, kind: kindEmpty}, true},
		{"captured sidecar clusters: per workload inbound and network", captured, cdsType,
			viewKey{typeURL: cdsType, kind: kindCapturedCDS, inbound: capturedInbound, network: network1}, true},
		{"captured sidecar listeners: per cluster, network, mode and workload inbound", captured, ldsType,
			viewKey{
				typeURL: ldsType, kind: kindCapturedLDS, namespace: "sample", cluster: cluster1, network: network1,
				interception: envoy.InterceptionTProxy, inbound: capturedInbound, labels: "app=sleep\x00version=v1",
			}, true},
		{"captured sidecar endpoints: as any sidecar's", captured, edsType,
			viewKey{typeURL: edsType, kind: kindSidecarEDS, network: network1, cluster: cluster1}, true},
		{"captured sidecar routes: as any sidecar's", captured, rdsType,
			viewKey{typeURL: rdsType, kind: kindSidecarRDS, namespace: "sample", cluster: cluster1}, true},
		{"NONE sidecar: the bind-to-port listeners", uncaptured, ldsType, viewKey{typeURL: ldsType, kind: kindSidecarLDS}, true},
		{"secrets: not served", sidecar, "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", viewKey{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := keyFor(tc.proxy, tc.typeURL)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(viewKey{})); diff != "" || ok != tc.wantOK {
				t.Errorf("keyFor = %v, %v; want ok %v (-want +got):\n%s", got, ok, tc.wantOK, diff)
			}
		})
	}
}

// changedNames lists the resources that differ between two cache contents
// by identity: a resource the cache got again, even equal, counts.
func changedNames(before, after map[string]types.Resource) []string {
	var out []string
	for name, r := range after {
		if b, ok := before[name]; !ok || b != r {
			out = append(out, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			out = append(out, "-"+name)
		}
	}
	slices.Sort(out)
	return out
}

// TestPublishOnlyChanged: views are made only when a proxy asks, are
// shared by every proxy with the same key, and a publish hands each cache
// only the resources whose content differs for that view.
func TestPublishOnlyChanged(t *testing.T) {
	m := rawMesh(t, Config{})
	if n := len(m.srv.views); n != 0 {
		t.Fatalf("%d views before any proxy asked", n)
	}
	keys := map[string]viewKey{
		"sidecar cds":      {typeURL: cdsType, kind: kindSidecarCDS},
		"sidecar eds net1": {typeURL: edsType, kind: kindSidecarEDS, network: network1},
		"sidecar eds net2": {typeURL: edsType, kind: kindSidecarEDS, network: network2},
		"sidecar lds":      {typeURL: ldsType, kind: kindSidecarLDS},
		"sidecar rds":      {typeURL: rdsType, kind: kindSidecarRDS, namespace: "sample", cluster: cluster1},
		"gateway cds":      {typeURL: cdsType, kind: kindGatewayCDS},
		"gateway eds net2": {typeURL: edsType, kind: kindGatewayEDS, network: network2},
		"gateway lds":      {typeURL: ldsType, kind: kindGatewayLDS},
		"grpc eds net1":    {typeURL: edsType, kind: kindGRPCEDS, network: network1},
		"grpc lds":         {typeURL: ldsType, kind: kindGRPCLDS},
	}
	views := map[string]*view{}
	for name, k := range keys {
		views[name] = m.srv.viewFor(k)
		if views[name] != m.srv.viewFor(k) {
			t.Fatalf("%s: a second proxy of the view got another cache", name)
		}
	}
	contents := func() map[string]map[string]types.Resource {
		out := map[string]map[string]types.Resource{}
		for name, v := range views {
			out[name] = v.cache.GetResources()
		}
		return out
	}
	step := func(t *testing.T, what string, change func(), want map[string][]string) {
		t.Helper()
		before := contents()
		change()
		after := contents()
		got := map[string][]string{}
		for name := range views {
			if c := changedNames(before[name], after[name]); len(c) > 0 {
				got[name] = c
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: resources handed to the caches (-want +got):\n%s", what, diff)
		}
	}

	step(t, "a new endpoint in network1", func() {
		m.endpoints(cluster1, "sample", "helloworld", helloPort, backend{"hello-c", "10.1.0.11", 8080})
		m.publish()
	}, map[string][]string{
		// network2 does not see network1 (no gateway there): unchanged.
		"sidecar eds net1": {helloCluster},
		"grpc eds net1":    {helloCluster},
	})

	step(t, "a full publish that changes nothing", func() {
		m.srv.Publish(m.store.Snapshot(), model.Changes{Full: true})
	}, map[string][]string{})

	step(t, "a second gateway for network2 (the weight scale doubles)", func() {
		m.store.UpsertService(&model.Service{
			Cluster: cluster2, Namespace: "istio-system", Name: "istio-eastwestgateway",
			Type: model.ServiceTypeClusterIP, ClusterIP: "10.2.255.1", ExternalIPs: []string{"192.0.2.20", "192.0.2.21"},
			Network: network2, GatewayPort: 15443, Ports: []model.ServicePort{{Name: "tls", Port: 15443}},
		})
		m.publish()
	}, map[string][]string{
		"sidecar eds net1": {helloCluster, otherCluster},
		"grpc eds net1":    {helloCluster, otherCluster},
		"sidecar eds net2": {helloCluster},
	})

	step(t, "a new service", func() {
		m.service(cluster1, "sample", "third", "10.1.100.3", 9000, 7070)
		m.publish()
	}, map[string][]string{
		"sidecar cds": {
			model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"sidecar eds net1": {
			model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"sidecar eds net2": {
			model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"grpc eds net1": {
			model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"gateway cds":      {model.SNI("third.sample.svc.cluster.local", 7070, ""), model.SNI("third.sample.svc.cluster.local", 9000, "")},
		"gateway eds net2": {model.SNI("third.sample.svc.cluster.local", 7070, ""), model.SNI("third.sample.svc.cluster.local", 9000, "")},
		"gateway lds":      {"0.0.0.0_15443"},
		"sidecar lds":      {"0.0.0.0_7070"},
		// Ports named p<port> are sniffed: their own HOST:PORT routes too.
		"sidecar rds": {"7070", "9000", "third.sample.svc.cluster.local:7070", "third.sample.svc.cluster.local:9000"},
		"grpc lds":    {"third.sample.svc.cluster.local:7070", "third.sample.svc.cluster.local:9000"},
	})

	step(t, "the service removed", func() {
		m.store.DeleteService(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "sample", Name: "third"}})
		m.publish()
	}, map[string][]string{
		"sidecar cds": {
			"-" + model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			"-" + model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"sidecar eds net1": {
			"-" + model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			"-" + model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"sidecar eds net2": {
			"-" + model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			"-" + model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"grpc eds net1": {
			"-" + model.ClusterName("third.sample.svc.cluster.local", 7070, ""),
			"-" + model.ClusterName("third.sample.svc.cluster.local", 9000, ""),
		},
		"gateway cds":      {"-" + model.SNI("third.sample.svc.cluster.local", 7070, ""), "-" + model.SNI("third.sample.svc.cluster.local", 9000, "")},
		"gateway eds net2": {"-" + model.SNI("third.sample.svc.cluster.local", 7070, ""), "-" + model.SNI("third.sample.svc.cluster.local", 9000, "")},
		"gateway lds":      {"0.0.0.0_15443"},
		"sidecar lds":      {"-0.0.0.0_7070"},
		"sidecar rds": {
			"-7070", "-third.sample.svc.cluster.local:7070", "-third.sample.svc.cluster.local:9000", "9000",
		},
		"grpc lds": {"-third.sample.svc.cluster.local:7070", "-third.sample.svc.cluster.local:9000"},
	})

	// Every resource of every view passes Envoy's validation.
	for name, v := range views {
		for rname, r := range v.cache.GetResources() {
			if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s %s: %v", name, rname, err)
			}
		}
	}
}

// TestSameServiceCoversEveryField fails when ServiceInfo grows a field
// that sameService does not compare: CDS, LDS and RDS would then miss
// changes of it.
func TestSameServiceCoversEveryField(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[model.ServiceInfo]().Fields() {
		fields = append(fields, f.Name)
	}
	want := []string{"Host", "Namespace", "Name", "ClusterIPs", "Ports", "ServiceAccounts"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("ServiceInfo's fields changed; update sameService and this list (-compared +fields):\n%s", diff)
	}
	base := model.ServiceInfo{Host: "a", Namespace: "n", Name: "a", ClusterIPs: map[model.ClusterID]string{"c": "1"},
		Ports: []model.ServicePort{{Port: 1}}, ServiceAccounts: []model.NamespacedName{{Namespace: "n", Name: "sa"}}}
	for _, mut := range []func(*model.ServiceInfo){
		func(s *model.ServiceInfo) { s.Host = "b" },
		func(s *model.ServiceInfo) { s.Namespace = "m" },
		func(s *model.ServiceInfo) { s.Name = "b" },
		func(s *model.ServiceInfo) { s.ClusterIPs = map[model.ClusterID]string{"c": "2"} },
		func(s *model.ServiceInfo) { s.Ports = []model.ServicePort{{Port: 1, Protocol: "UDP"}} },
		func(s *model.ServiceInfo) { s.ServiceAccounts = nil },
	} {
		other := base
		mut(&other)
		if sameService(&base, &other) {
			t.Errorf("sameService(%+v, %+v) = true", base, other)
		}
	}
	same := base
	if !sameService(&base, &same) || !sameService(nil, nil) || sameService(&base, nil) {
		t.Error("sameService: wrong on equal values or nil")
	}
}

func TestResourceName(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"cluster", &clusterv3.Cluster{Name: "outbound|80||a", AltStatName: "x"}, "outbound|80||a"},
		{"endpoints", &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|80||a", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}, "outbound|80||a"},
		{"listener", &listenerv3.Listener{Name: "0.0.0.0_80", StatPrefix: "s"}, "0.0.0.0_80"},
		{"route", &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "v"}}}, "80"},
		{"no name", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "v"}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := anypb.New(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := resourceName(a); got != tc.want {
				t.Errorf("resourceName = %q, want %q", got, tc.want)
			}
		})
	}
	if got := resourceName(&anypb.Any{Value: []byte{0xff, 0xff, 0xff}}); got != "" {
		t.Errorf("resourceName of garbage = %q, want empty", got)
	}
}

// TestIncrementalMatchesFromScratch: after a series of publishes (small
// ones and full ones, spread over the cores), every view holds exactly
// what a server that saw only the last snapshot builds.
func TestIncrementalMatchesFromScratch(t *testing.T) {
	m := newMesh(t, Config{})
	svcs := func(round int) {
		for i := range 100 {
			name := fmt.Sprintf("svc-%d", i)
			ports := []uint32{80}
			if (i+round)%3 == 0 {
				ports = append(ports, 8080)
			}
			m.service(cluster1, "bench", name, fmt.Sprintf("10.1.1.%d", i+1), ports...)
			m.service(cluster2, "bench", name, fmt.Sprintf("10.2.1.%d", i+1), ports...)
			m.endpoints(cluster1, "bench", name, 80, backend{name + "-a", fmt.Sprintf("10.1.2.%d", i+1), 80})
			m.endpoints(cluster2, "bench", name, 80, backend{name + "-b", fmt.Sprintf("10.2.2.%d", (i+round)%250+1), 80})
		}
	}
	svcs(0)
	m.gateway("192.0.2.20", 15443)
	m.publish()

	keys := []viewKey{
		{typeURL: cdsType, kind: kindSidecarCDS},
		{typeURL: edsType, kind: kindSidecarEDS, network: network1},
		{typeURL: edsType, kind: kindSidecarEDS, network: network2},
		{typeURL: edsType, kind: kindGRPCEDS, network: network1},
		{typeURL: edsType, kind: kindGatewayEDS, network: network2},
		{typeURL: ldsType, kind: kindSidecarLDS},
		{typeURL: ldsType, kind: kindGatewayLDS},
		{typeURL: ldsType, kind: kindGRPCLDS},
		{typeURL: rdsType, kind: kindSidecarRDS, namespace: "bench", cluster: cluster2},
		{typeURL: rdsType, kind: kindGRPCRDS},
		{typeURL: cdsType, kind: kindGatewayCDS},
	}
	for _, k := range keys {
		m.srv.viewFor(k)
	}

	svcs(1) // every service changes: a large publish
	m.publish()
	m.store.DeleteService(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "bench", Name: "svc-7"}})
	m.store.DeleteService(model.ObjectKey{Cluster: cluster2, NamespacedName: model.NamespacedName{Namespace: "bench", Name: "svc-7"}})
	m.publish()
	m.gateway("192.0.2.21", 15443) // the gateway moves: a full push
	m.publish()
	svcs(2)
	m.publish()

	fresh := New(Config{})
	fresh.Publish(m.store.Snapshot(), model.Changes{})
	for _, k := range keys {
		got, want := m.srv.viewFor(k).cache.GetResources(), fresh.viewFor(k).cache.GetResources()
		if diff := cmp.Diff(slices.Sorted(maps.Keys(want)), slices.Sorted(maps.Keys(got))); diff != "" {
			t.Errorf("%v: resource names (-from scratch +incremental):\n%s", k, diff)
			continue
		}
		for name, w := range want {
			if !proto.Equal(w, got[name]) {
				t.Errorf("%v: %s differs from the one built from scratch", k, name)
			}
		}
	}
}
