package kube

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/causeway-mesh/causeway/internal/model"
)

// Istio's samples/multicluster/expose-istiod.yaml, as objects.
func istiodGateway() *networkingv1.Gateway {
	g := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod-gateway"}}
	g.Spec.Selector = map[string]string{"istio": "eastwestgateway"}
	for _, p := range []uint32{15012, 15017} {
		g.Spec.Servers = append(g.Spec.Servers, &networkingapi.Server{
			Port:  &networkingapi.Port{Number: p, Protocol: "tls", Name: fmt.Sprint("tls-", p)},
			Hosts: []string{"*"},
			Tls:   &networkingapi.ServerTLSSettings{Mode: networkingapi.ServerTLSSettings_PASSTHROUGH},
		})
	}
	return g
}

func istiodVirtualService() *networkingv1.VirtualService {
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod-vs"}}
	vs.Spec.Hosts = []string{"*"}
	vs.Spec.Gateways = []string{"istiod-gateway"}
	for _, p := range [][2]uint32{{15012, 15012}, {15017, 443}} {
		vs.Spec.Tls = append(vs.Spec.Tls, &networkingapi.TLSRoute{
			Match: []*networkingapi.TLSMatchAttributes{{Port: p[0], SniHosts: []string{"*"}}},
			Route: []*networkingapi.RouteDestination{{Destination: &networkingapi.Destination{
				Host: "istiod", Port: &networkingapi.PortSelector{Number: p[1]},
			}}},
		})
	}
	// A route of the mesh (sidecars), not of a Gateway: left out.
	vs.Spec.Tls = append(vs.Spec.Tls, &networkingapi.TLSRoute{
		Match: []*networkingapi.TLSMatchAttributes{{Port: 9443, Gateways: []string{"mesh"}}},
		Route: []*networkingapi.RouteDestination{{Destination: &networkingapi.Destination{Host: "x"}}},
	})
	return vs
}

func TestGatewayConfigOf(t *testing.T) {
	cfg, dropped := GatewayConfigOf([]*networkingv1.Gateway{istiodGateway()}, []*networkingv1.VirtualService{istiodVirtualService()}, "")
	if dropped != 0 {
		t.Errorf("dropped %d routes", dropped)
	}
	if got := describe(&cfg); got != "gw istio-system/istiod-gateway 15012/tls/PASSTHROUGH 15017/tls/PASSTHROUGH; "+
		"route istio-system/istiod-vs [istio-system/istiod-gateway] 15012 [*] -> istiod.istio-system.svc.cluster.local:15012; "+
		"route istio-system/istiod-vs [istio-system/istiod-gateway] 15017 [*] -> istiod.istio-system.svc.cluster.local:443; " {
		t.Errorf("config: %s", got)
	}
}

func describe(c *model.GatewayConfig) string {
	var b strings.Builder
	for _, g := range c.Gateways {
		fmt.Fprintf(&b, "gw %s/%s", g.Namespace, g.Name)
		for _, s := range g.Servers {
			fmt.Fprintf(&b, " %d/%s/%s", s.Port, s.Protocol, s.TLSMode)
		}
		b.WriteString("; ")
	}
	for _, r := range c.Routes {
		fmt.Fprintf(&b, "route %s/%s %v %d %v -> %s:%d; ", r.Namespace, r.Name, r.Gateways, r.Port, r.SNIHosts, r.Destination, r.DestinationPort)
	}
	return b.String()
}

// TestGatewayConfigWatch: the watch hands the store the cluster's
// Gateways and VirtualServices, and follows their deletion.
func TestGatewayConfigWatch(t *testing.T) {
	ic := istiofake.NewSimpleClientset([]runtime.Object{istiodGateway(), istiodVirtualService()}...)
	ic.Resources = []*metav1.APIResourceList{{
		GroupVersion: "networking.istio.io/v1",
		APIResources: []metav1.APIResource{{Name: "gateways", Namespaced: true, Kind: "Gateway"}, {Name: "virtualservices", Namespaced: true, Kind: "VirtualService"}},
	}}
	store := model.NewStore(model.Config{})
	w, err := NewGatewayConfigWatch(GatewayConfigWatchConfig{Istio: istioFakeClientset{ic}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	ctx := t.Context()
	wg.Go(func() { w.Run(ctx) })
	routes := func() string { return fmt.Sprint(len(store.Snapshot().GatewayConfig().Routes)) }
	waitFor(t, "routes of the VirtualService", routes, "2")
	if err := ic.NetworkingV1().VirtualServices("istio-system").Delete(ctx, "istiod-vs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "routes once the VirtualService is deleted", routes, "0")
}
