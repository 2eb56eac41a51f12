package xds

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// TestGatewayControlPlaneListener: a gateway's LDS carries the control
// plane's passthrough listener exactly while a Service istiod has port
// 15012, and its CDS the cluster that listener names.
func TestGatewayControlPlaneListener(t *testing.T) {
	lds := viewKey{typeURL: ldsType, kind: kindGatewayLDS}
	cds := viewKey{typeURL: cdsType, kind: kindGatewayCDS}
	const cpCluster = "outbound_.15012_._.istiod.istio-system.svc.cluster.local"
	tests := []struct {
		name    string
		cfg     Config
		change  func(m *mesh)
		wantLDS []string
	}{
		{
			name:    "no control plane: the SNI listener only",
			change:  func(*mesh) {},
			wantLDS: []string{"0.0.0.0_15443"},
		},
		{
			name:    "istiod with 15012",
			change:  func(m *mesh) { m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 15010, 15012, 15014) },
			wantLDS: []string{"0.0.0.0_15012", "0.0.0.0_15443"},
		},
		{
			name:    "istiod without 15012",
			change:  func(m *mesh) { m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 15010, 15014) },
			wantLDS: []string{"0.0.0.0_15443"},
		},
		{
			name:    "a gateway port of 15012 wins over the control plane",
			cfg:     Config{GatewayPort: 15012},
			change:  func(m *mesh) { m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 15010, 15012, 15014) },
			wantLDS: []string{"0.0.0.0_15012"},
		},
		{
			name:    "istiod with the webhook's 443",
			change:  func(m *mesh) { m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 443, 15010, 15012, 15014) },
			wantLDS: []string{"0.0.0.0_15012", "0.0.0.0_15017", "0.0.0.0_15443"},
		},
		{
			name:    "a gateway port of 15017 wins over the webhook",
			cfg:     Config{GatewayPort: 15017},
			change:  func(m *mesh) { m.service(cluster1, "istio-system", "istiod", "10.1.255.15", 443, 15010) },
			wantLDS: []string{"0.0.0.0_15017"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMesh(t, tt.cfg)
			m.service(cluster1, "sample", "helloworld", "10.1.0.10", 5000)
			m.publish()
			m.srv.viewFor(lds)
			m.srv.viewFor(cds)
			tt.change(m)
			m.publish()
			got := m.srv.viewFor(lds).cache.GetResources()
			if diff := cmp.Diff(tt.wantLDS, slices.Sorted(maps.Keys(got))); diff != "" {
				t.Fatalf("gateway listeners (-want +got):\n%s", diff)
			}
			if tt.cfg.GatewayPort == 0 && slices.Contains(tt.wantLDS, envoy.ControlPlaneListenerName) {
				want := envoy.ControlPlaneListener(m.store.Snapshot().Services())
				if !proto.Equal(want, got[envoy.ControlPlaneListenerName]) {
					t.Errorf("the listener differs from envoy.ControlPlaneListener's")
				}
				if _, ok := m.srv.viewFor(cds).cache.GetResources()[cpCluster]; !ok {
					t.Errorf("gateway CDS lacks %s, the cluster the listener passes to", cpCluster)
				}
			}
			if tt.cfg.GatewayPort == 0 && slices.Contains(tt.wantLDS, envoy.ControlPlaneWebhookListenerName) {
				want := envoy.ControlPlaneWebhookListener(m.store.Snapshot().Services())
				if !proto.Equal(want, got[envoy.ControlPlaneWebhookListenerName]) {
					t.Errorf("the listener differs from envoy.ControlPlaneWebhookListener's")
				}
				const hookCluster = "outbound_.443_._.istiod.istio-system.svc.cluster.local"
				if _, ok := m.srv.viewFor(cds).cache.GetResources()[hookCluster]; !ok {
					t.Errorf("gateway CDS lacks %s, the cluster the webhook listener passes to", hookCluster)
				}
			}

			// The Service goes: so does the listener.
			m.store.DeleteService(model.ObjectKey{Cluster: cluster1, NamespacedName: model.NamespacedName{Namespace: "istio-system", Name: "istiod"}})
			m.publish()
			got = m.srv.viewFor(lds).cache.GetResources()
			want := []string{"0.0.0.0_15443"}
			if tt.cfg.GatewayPort != 0 {
				want = []string{fmt.Sprintf("0.0.0.0_%d", tt.cfg.GatewayPort)}
			}
			if diff := cmp.Diff(want, slices.Sorted(maps.Keys(got))); diff != "" {
				t.Errorf("gateway listeners after istiod left (-want +got):\n%s", diff)
			}
		})
	}
}
