package xds

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/model"
)

const (
	dbHost = model.Host("db.sample.svc.cluster.local")
	dbPort = 5432
)

// headlessDB stores the headless service db (TCP port 5432, named
// tcp-db) in both clusters.
func (m *mesh) headlessDB() {
	for _, c := range []model.ClusterID{cluster1, cluster2} {
		m.store.UpsertService(&model.Service{Cluster: c, Namespace: "sample", Name: "db", Type: model.ServiceTypeClusterIP,
			ClusterIP: "None", Ports: []model.ServicePort{{Name: "tcp-db", Port: dbPort}}})
	}
}

// dbPod stores a pod of db in cluster c serving on target port port, in
// mesh mTLS or not, and its EndpointSlice db-POD.
func (m *mesh) dbPod(c model.ClusterID, pod, ip string, port uint32, mtls bool) {
	p := &model.Pod{Cluster: c, Namespace: "sample", Name: pod, IPs: []string{ip}, ServiceAccount: "db"}
	if mtls {
		p.TLSMode = model.TLSModeIstio
	}
	m.store.UpsertPod(p)
	m.store.UpsertEndpointSlice(&model.EndpointSlice{
		Cluster: c, Namespace: "sample", Name: "db-" + pod, ServiceName: "db",
		Ports:     []model.EndpointPort{{Name: "tcp-db", Port: port}},
		Endpoints: []model.SliceEndpoint{{Addresses: []string{ip}, Ready: true, Pod: pod}},
	})
}

// dbTargets maps each listener of ls whose first chain's tcp_proxy goes
// to a cluster of db to that cluster.
func dbTargets(t *testing.T, ls map[string]*listenerv3.Listener) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, l := range ls {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		tp := new(tcpproxyv3.TcpProxy)
		f := l.GetFilterChains()[0].GetFilters()[0]
		if f.GetName() != "envoy.filters.network.tcp_proxy" {
			continue
		}
		if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(tp.GetCluster(), string(dbHost)) {
			out[name] = tp.GetCluster()
		}
	}
	return out
}

// staticTargets maps each STATIC cluster of cs to its endpoints and SNI.
func staticTargets(t *testing.T, cs map[string]*clusterv3.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, c := range cs {
		if c.GetType() != clusterv3.Cluster_STATIC || name == "BlackHoleCluster" {
			continue
		}
		if err := c.ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		var eps []string
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				a := lb.GetEndpoint().GetAddress().GetSocketAddress()
				eps = append(eps, fmt.Sprintf("%s:%d", a.GetAddress(), a.GetPortValue()))
			}
		}
		s := strings.Join(eps, ",")
		if ts := c.GetTransportSocket(); ts != nil {
			tc := new(tlsv3.UpstreamTlsContext)
			if err := ts.GetTypedConfig().UnmarshalTo(tc); err != nil {
				t.Fatal(err)
			}
			s += " mtls sni=" + tc.GetSni()
		}
		out[name] = s
	}
	return out
}

// TestHeadlessAcrossNetworks: through the xDS server, a captured sidecar
// of network1 reaches a headless service's pod of network2 through
// network2's east-west gateway, by a per-pod SNI that the gateway passes
// to that pod alone; its own network's pod, and a pod of network2 that
// does not speak mesh mTLS, keep istiod's ORIGINAL_DST shape, as does
// everything for a sidecar of network2. A new pod of network2 gets its
// resources on every side; a pod that goes loses them; a gateway that
// moves is followed.
func TestHeadlessAcrossNetworks(t *testing.T) {
	m := rawMesh(t, Config{})
	m.headlessDB()
	m.dbPod(cluster1, "db-0", "10.1.0.60", 5432, true)
	m.dbPod(cluster2, "db-1", "10.2.0.60", 5432, true)
	m.dbPod(cluster2, "db-plain", "10.2.0.61", 5432, false)
	m.publish()
	cc := dial(t, serve(t, m.srv))

	captured := func(pod string, network model.NetworkID, c model.ClusterID) *sotwClient {
		return newSotW(t, cc, node("sidecar~10.0.0.9~"+pod+".sample~sample.svc.cluster.local", map[string]string{
			"NETWORK": string(network), "CLUSTER_ID": string(c), "INTERCEPTION_MODE": "REDIRECT",
		}))
	}
	router := func(pod string) *sotwClient {
		return newSotW(t, cc, node("router~10.2.0.50~"+pod+".istio-system~istio-system.svc.cluster.local", eastWestNode()))
	}

	const (
		origDst = "outbound|5432||db.sample.svc.cluster.local"
		pod60   = "outbound|5432||10-2-0-60.db.sample.svc.cluster.local"
		sni60   = "outbound_.5432_._.10-2-0-60.db.sample.svc.cluster.local"
		pod62   = "outbound|5432||10-2-0-62.db.sample.svc.cluster.local"
		sni62   = "outbound_.5432_._.10-2-0-62.db.sample.svc.cluster.local"
	)
	type state struct {
		side1L, side1C, side2L, side2C, gwL, gwC map[string]string
	}
	// Each fetch opens new streams, of the same view keys as the first
	// ones, which stay open: the views they share are the ones the
	// publishes updated.
	n := 0
	fetch := func() state {
		t.Helper()
		n++
		side1 := captured(fmt.Sprintf("sleep-a%d", n), network1, cluster1)
		side2 := captured(fmt.Sprintf("sleep-b%d", n), network2, cluster2)
		gw := router(fmt.Sprintf("istio-eastwestgateway-%d", n))
		var s state
		get := func(c *sotwClient, typeURL string) *discoverygrpc.DiscoveryResponse {
			c.request(typeURL, nil, "", "", "")
			r := c.recvType(typeURL)
			c.ack(r, nil)
			return r
		}
		s.side1C = staticTargets(t, decode[*clusterv3.Cluster](t, get(side1, cdsType).GetResources()))
		s.side1L = dbTargets(t, decode[*listenerv3.Listener](t, get(side1, ldsType).GetResources()))
		s.side2C = staticTargets(t, decode[*clusterv3.Cluster](t, get(side2, cdsType).GetResources()))
		s.side2L = dbTargets(t, decode[*listenerv3.Listener](t, get(side2, ldsType).GetResources()))
		s.gwC = staticTargets(t, decode[*clusterv3.Cluster](t, get(gw, cdsType).GetResources()))
		gwL := decode[*listenerv3.Listener](t, get(gw, ldsType).GetResources())
		s.gwL = map[string]string{}
		for _, fc := range gwL["0.0.0.0_15443"].GetFilterChains() {
			for _, n := range fc.GetFilterChainMatch().GetServerNames() {
				if strings.Contains(n, "db.sample") {
					tp := new(tcpproxyv3.TcpProxy)
					if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
						t.Fatal(err)
					}
					s.gwL[n] = tp.GetCluster()
				}
			}
		}
		return s
	}
	check := func(what string, got, want state) {
		t.Helper()
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(state{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}

	want := state{
		side1L: map[string]string{"10.1.0.60_5432": origDst, "10.2.0.60_5432": pod60, "10.2.0.61_5432": origDst},
		side1C: map[string]string{pod60: "192.0.2.20:15443 mtls sni=" + sni60},
		side2L: map[string]string{"10.1.0.60_5432": origDst, "10.2.0.60_5432": origDst, "10.2.0.61_5432": origDst},
		side2C: map[string]string{},
		gwL:    map[string]string{sni60: sni60, "outbound_.5432_._.db.sample.svc.cluster.local": "outbound_.5432_._.db.sample.svc.cluster.local"},
		gwC:    map[string]string{sni60: "10.2.0.60:5432"},
	}
	check("first", fetch(), want)

	m.dbPod(cluster2, "db-2", "10.2.0.62", 15432, true)
	m.publish()
	want.side1L["10.2.0.62_15432"] = pod62
	want.side1C[pod62] = "192.0.2.20:15443 mtls sni=" + sni62
	want.side2L["10.2.0.62_15432"] = origDst
	want.gwL[sni62] = sni62
	want.gwC[sni62] = "10.2.0.62:15432"
	check("after a new pod of network2", fetch(), want)

	m.store.DeleteEndpointSlice(model.ObjectKey{Cluster: cluster2, NamespacedName: model.NamespacedName{Namespace: "sample", Name: "db-db-2"}})
	m.publish()
	delete(want.side1L, "10.2.0.62_15432")
	delete(want.side1C, pod62)
	delete(want.side2L, "10.2.0.62_15432")
	delete(want.gwL, sni62)
	delete(want.gwC, sni62)
	check("after it went", fetch(), want)

	// network2's gateway moves: the per-pod clusters follow (a full
	// change).
	m.gateway("192.0.2.30", 15443)
	m.publish()
	want.side1C[pod60] = "192.0.2.30:15443 mtls sni=" + sni60
	check("after the gateway moved", fetch(), want)
}
