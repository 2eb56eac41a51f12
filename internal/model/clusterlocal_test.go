package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestNewClusterLocalHosts(t *testing.T) {
	const (
		kube    = Host("kubernetes.default.svc.cluster.local")
		dns     = Host("kube-dns.kube-system.svc.cluster.local")
		istiod  = Host("istiod.istio-system.svc.cluster.local")
		hello   = Host("helloworld.sample.svc.cluster.local")
		db      = Host("db.data.svc.cluster.local")
		cache   = Host("cache.data.svc.cluster.local")
		foreign = Host("kubernetes.default.svc.example.org")
	)
	all := []Host{kube, dns, istiod, hello, db, cache, foreign}
	tests := []struct {
		name   string
		mc     *MeshConfig
		domain string
		sysNS  string
		want   []Host // the cluster-local ones of all
	}{{
		name: "Istio's defaults",
		want: []Host{kube, dns, istiod},
	}, {
		name:   "another domain",
		domain: "example.org",
		want:   []Host{foreign},
	}, {
		name:  "the discovery address follows the system namespace",
		sysNS: "causeway-system",
		want:  []Host{kube, dns},
	}, {
		name: "a discovery address of the mesh config, without the domain",
		mc:   &MeshConfig{DiscoveryAddress: "helloworld.sample.svc:15012"},
		want: []Host{kube, dns, hello},
	}, {
		name: "serviceSettings add hosts and wildcards",
		mc:   &MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"*.data.svc.cluster.local"}, ClusterLocal: true}}},
		want: []Host{kube, dns, istiod, db, cache},
	}, {
		name: "the most specific match wins",
		mc: &MeshConfig{ServiceSettings: []ServiceSetting{
			{Hosts: []string{"*.data.svc.cluster.local"}, ClusterLocal: true},
			{Hosts: []string{"cache.data.svc.cluster.local"}, ClusterLocal: false},
		}},
		want: []Host{kube, dns, istiod, db},
	}, {
		name: "clusterLocal false removes a default",
		mc:   &MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"kubernetes.default.svc.cluster.local"}}}},
		want: []Host{dns, istiod},
	}, {
		name: "clusterLocal false under a default wildcard removes the wildcard",
		mc:   &MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"metrics.kube-system.svc.cluster.local"}}}},
		want: []Host{kube, istiod},
	}, {
		name: "everything cluster-local",
		mc:   &MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"*"}, ClusterLocal: true}}},
		want: all,
	}, {
		name: "everything global",
		mc:   &MeshConfig{ServiceSettings: []ServiceSetting{{Hosts: []string{"*"}}}},
		want: []Host{kube, dns, istiod}, // "*" is not under a default: the defaults stay, and are more specific
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClusterLocalHosts(tc.mc, tc.domain, tc.sysNS)
			var got []Host
			for _, h := range all {
				if c.IsClusterLocal(h) {
					got = append(got, h)
				}
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cluster-local hosts (-want +got):\n%s", diff)
			}
		})
	}
	var zero ClusterLocalHosts
	if zero.IsClusterLocal(kube) {
		t.Errorf("the zero ClusterLocalHosts has cluster-local hosts")
	}
}

func TestParseMeshConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *MeshConfig
		wantErr string
	}{{
		name: "empty: defaults",
		in:   "",
		want: &MeshConfig{},
	}, {
		name: "serviceSettings and discovery address, other fields ignored",
		in: `
trustDomain: cluster.local
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
serviceSettings:
- settings: {clusterLocal: true}
  hosts: ["*.data.svc.cluster.local", "db.other.svc.cluster.local"]
- settings: {clusterLocal: false}
  hosts: ["kubernetes.default.svc.cluster.local"]
aFieldOfANewerIstio: 1
`,
		want: &MeshConfig{
			DiscoveryAddress: "istiod.istio-system.svc:15012",
			RegistryOnly:     true,
			ServiceSettings: []ServiceSetting{
				{Hosts: []string{"*.data.svc.cluster.local", "db.other.svc.cluster.local"}, ClusterLocal: true},
				{Hosts: []string{"kubernetes.default.svc.cluster.local"}},
			},
		},
	}, {
		name:    "not YAML",
		in:      "serviceSettings: [",
		wantErr: "cannot parse YAML",
	}, {
		name:    "not a MeshConfig",
		in:      "serviceSettings: 5",
		wantErr: "not an Istio MeshConfig",
	}, {
		name:    "a wildcard in the middle",
		in:      "serviceSettings: [{settings: {clusterLocal: true}, hosts: [\"db.*.svc.cluster.local\"]}]",
		wantErr: `serviceSettings[0].hosts "db.*.svc.cluster.local"`,
	}, {
		name:    "a discovery address without a port",
		in:      "defaultConfig: {discoveryAddress: istiod.istio-system.svc}",
		wantErr: "want HOST:PORT",
	}, {
		name:    "too large",
		in:      "# " + strings.Repeat("x", MaxMeshConfigBytes),
		wantErr: "more than the",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMeshConfig([]byte(tc.in))
			if testkit.WantErr(t, err, tc.wantErr) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("mesh config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClusterLocalViews: a proxy of cluster C sees only C's endpoints of a
// cluster-local host, directly or through gateways, and a gateway forwards
// only to its own cluster's; other hosts are merged across clusters. A
// mesh config that changes the cluster-local hosts is a full change.
func TestClusterLocalViews(t *testing.T) {
	s := NewStore(Config{})
	// c1 and c3 in n1, c2 in n2; n1 and n2 have gateways.
	s.UpsertNamespace(&Namespace{Cluster: "c1", Name: "istio-system", Network: "n1"})
	s.UpsertNamespace(&Namespace{Cluster: "c2", Name: "istio-system", Network: "n2"})
	s.UpsertNamespace(&Namespace{Cluster: "c3", Name: "istio-system", Network: "n1"})
	s.UpsertService(lbGateway("c1", "n1", "192.0.2.1"))
	s.UpsertService(lbGateway("c2", "n2", "192.0.2.2"))
	for _, c := range []struct {
		id     ClusterID
		apiIP  string
		helloP string
		helloI string
	}{{"c1", "172.18.0.1", "h1", "10.1.0.1"}, {"c2", "172.18.0.2", "h2", "10.2.0.1"}, {"c3", "172.18.0.3", "h3", "10.3.0.1"}} {
		s.UpsertService(mkService(c.id, "default", "kubernetes", sp("https", 443)))
		s.UpsertEndpointSlice(mkSlice(c.id, "default", "kubernetes", "kubernetes", []EndpointPort{epp("https", 6443)}, ready("", "", c.apiIP)))
		s.UpsertService(mkService(c.id, "sample", "hello", sp("http", 5000)))
		s.UpsertPod(mkPod(c.id, "sample", c.helloP, "", true, "hello"))
		s.UpsertEndpointSlice(mkSlice(c.id, "sample", "hello", "hello", []EndpointPort{epp("http", 8080)}, ready(c.helloP, "", c.helloI)))
	}
	s.TakeChanges()
	const kube, hello = Host("kubernetes.default.svc.cluster.local"), Host("hello.sample.svc.cluster.local")

	addrs := func(v View, ok bool) []string {
		if !ok {
			t.Fatal("no view")
		}
		var out []string
		for _, e := range v.Endpoints {
			out = append(out, e.Address)
		}
		return out
	}
	snap := s.Snapshot()
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"API server, proxy of c1", addrs(snap.ViewIn(kube, 443, "c1", "n1")), []string{"172.18.0.1"}},
		{"API server, proxy of c3 (same network as c1)", addrs(snap.ViewIn(kube, 443, "c3", "n1")), []string{"172.18.0.3"}},
		{"API server, proxy of c2", addrs(snap.ViewIn(kube, 443, "c2", "n2")), []string{"172.18.0.2"}},
		{"API server, no cluster known: not filtered", addrs(snap.View(kube, 443, "n1")), []string{"172.18.0.1", "172.18.0.3"}},
		{"API server, gateway of n1 in c1", addrs(snap.LocalViewIn(kube, 443, "c1", "n1")), []string{"172.18.0.1"}},
		{"hello (global), proxy of c1: c1, c3, and c2 through n2's gateway", addrs(snap.ViewIn(hello, 5000, "c1", "n1")),
			[]string{"10.1.0.1", "10.3.0.1", "192.0.2.2"}},
		{"hello (global), gateway of n1 in c1", addrs(snap.LocalViewIn(hello, 5000, "c1", "n1")), []string{"10.1.0.1", "10.3.0.1"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	mc, err := ParseMeshConfig([]byte(`serviceSettings: [{settings: {clusterLocal: true}, hosts: ["*.sample.svc.cluster.local"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	s.SetMeshConfig(mc)
	if ch := s.TakeChanges(); !ch.Full {
		t.Errorf("changes after new cluster-local hosts: %+v, want a full change", ch)
	}
	snap = s.Snapshot()
	if diff := cmp.Diff([]string{"10.1.0.1"}, addrs(snap.ViewIn(hello, 5000, "c1", "n1"))); diff != "" {
		t.Errorf("hello made cluster-local, proxy of c1 (-want +got):\n%s", diff)
	}
	s.SetMeshConfig(mc)
	if ch := s.TakeChanges(); !ch.Empty() {
		t.Errorf("changes after the same mesh config: %+v, want none", ch)
	}
}
