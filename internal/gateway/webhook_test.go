package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
	"github.com/causeway-mesh/causeway/internal/testkit"
)

// controlPlaneWithWebhook stores the control plane's Service istiod with
// ports 15012 and https-webhook 443 (targetPort 15017), its pod's 15012
// at xds and its 15017 at hook.
func (cp *controlPlane) controlPlaneWithWebhook(xds, hook netip.AddrPort) {
	cp.store.UpsertService(&model.Service{Cluster: testCluster, Namespace: "istio-system", Name: envoy.ControlPlaneService,
		Type: model.ServiceTypeClusterIP, ClusterIP: "10.96.0.15",
		Ports: []model.ServicePort{{Name: "https-dns", Port: envoy.ControlPlanePort}, {Name: "https-webhook", Port: envoy.ControlPlaneWebhookServicePort}}})
	cp.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: testCluster, Namespace: "istio-system", Name: "istiod-1", ServiceName: envoy.ControlPlaneService,
		Ports:     []model.EndpointPort{{Name: "https-dns", Port: uint32(xds.Port())}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{xds.Addr().String()}, Ready: true}},
	})
	cp.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: testCluster, Namespace: "istio-system", Name: "istiod-2", ServiceName: envoy.ControlPlaneService,
		Ports:     []model.EndpointPort{{Name: "https-webhook", Port: uint32(hook.Port())}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{hook.Addr().String()}, Ready: true}},
	})
}

// withWebhookListener adds the control plane's and the webhook's
// listeners, as the control plane's gateway LDS carries them.
func (cp *controlPlane) withWebhookListener(res map[resourcev3.Type][]cachetypes.Resource) {
	cp.withControlPlaneListener(res)
	if l := envoy.ControlPlaneWebhookListener(cp.store.Snapshot().Services()); l != nil {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
}

// TestGatewayExposesWebhook: with ExposeWebhook the gateway runs LDS
// listener 0.0.0.0_15017 on its own address: TLS passes, still encrypted,
// to the pod behind the control plane Service's port 443 (not to its
// 15012, which the control plane's listener serves), and /config shows
// the listener.
func TestGatewayExposesWebhook(t *testing.T) {
	p := newMeshPKI(t)
	cp := newControlPlane(t, gatewayNodeID())
	xds := startTLSBackend(t, p, "127.0.0.1", "istiod-xds")
	hook := startTLSBackend(t, p, "127.0.0.1", "istiod-webhook")
	cp.controlPlaneWithWebhook(xds.addr(), hook.addr())
	gw := runGateway(t, Config{XDS: cp.addr, ExposeControlPlane: "127.0.0.1:0", ExposeWebhook: "127.0.0.1:0"})
	if gw.WebhookAddr() == nil || gw.WebhookAddr().String() == gw.ControlPlaneAddr().String() {
		t.Fatalf("webhook address %v, control plane's %v", gw.WebhookAddr(), gw.ControlPlaneAddr())
	}
	v := cp.push(cp.withWebhookListener)
	waitGatewayReady(t, gw)
	testkit.Eventually(t, waitFor, fmt.Sprintf("timed out waiting for version %s", v), testkit.Holds(func() bool {
		wt := gw.WebhookTable()
		return wt != nil && wt.Versions.Listeners == v && wt.Versions.Endpoints == v && wt.Listener != ""
	}))

	wantReaches(t, p, []sniRoute{
		{gw.WebhookAddr().String(), "istiod.istio-system.svc", "istiod-webhook"},
		{gw.WebhookAddr().String(), "istiod.example.com", "istiod-webhook"}, // a --webhook-host
		{gw.ControlPlaneAddr().String(), "istiod-remote.istio-system.svc", "istiod-xds"},
	})

	dump := configOf(t, gw)
	const cluster = "outbound_.443_._.istiod.istio-system.svc.cluster.local"
	want := &listenerDump{Listen: gw.WebhookAddr().String(), Listener: "0.0.0.0_15017", ListenerFound: true, Routes: []routeDump{{
		Name: cluster, ServerNames: []string{}, TLS: true, Cluster: cluster,
	}}}
	if diff := cmp.Diff(want, dump.Webhook); diff != "" {
		t.Errorf("/config webhook (-want +got):\n%s", diff)
	}
	if dump.ControlPlane == nil || dump.ControlPlane.Listener != "0.0.0.0_15012" {
		t.Errorf("/config control_plane %+v, want listener 0.0.0.0_15012", dump.ControlPlane)
	}
}

// The webhook alone: no control plane listener.
func TestNewExposeWebhook(t *testing.T) {
	g := newExposedGateway(t, exposedListener{
		set:  func(cfg *Config, addr string) { cfg.ExposeWebhook = addr },
		port: "15017", addrWord: "webhook address", flag: "--expose-webhook", listener: "0.0.0.0_15017",
	})
	if diff := cmp.Diff([]string{"0.0.0.0_15443", "0.0.0.0_15017"}, g.cfg.listenerNames()); diff != "" {
		t.Errorf("listeners (-want +got):\n%s", diff)
	}
	if g.ControlPlaneAddr() != nil || g.WebhookAddr() == nil || g.WebhookTable() != nil {
		t.Errorf("control plane address %v, webhook %v, table %v", g.ControlPlaneAddr(), g.WebhookAddr(), g.WebhookTable())
	}
	if err := g.Close(); err != nil {
		t.Error(err)
	}
	l, err := net.Listen("tcp", g.WebhookAddr().String())
	if err != nil {
		t.Fatalf("webhook socket still bound after Close: %v", err)
	}
	_ = l.Close()
}
