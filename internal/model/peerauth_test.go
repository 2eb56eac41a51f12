package model

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEffectiveMTLS(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	mesh := func(m MTLSMode) PeerAuthentication {
		return PeerAuthentication{Namespace: "istio-system", Name: "default", Created: t0, Mode: m}
	}
	nsPolicy := func(ns string, m MTLSMode) PeerAuthentication {
		return PeerAuthentication{Namespace: ns, Name: "ns-" + m.String(), Created: t0, Mode: m}
	}
	app := Workload{Namespace: "sample", Labels: map[string]string{"app": "helloworld", "version": "v1"}}
	tests := []struct {
		name     string
		policies []PeerAuthentication
		w        Workload
		port     uint32
		want     MTLSMode
	}{
		{name: "no policy: PERMISSIVE", w: app, port: 5000, want: MTLSPermissive},
		{name: "mesh STRICT", policies: []PeerAuthentication{mesh(MTLSStrict)}, w: app, want: MTLSStrict},
		{name: "mesh UNSET is PERMISSIVE", policies: []PeerAuthentication{mesh(MTLSUnset)}, w: app, want: MTLSPermissive},
		{
			name:     "namespace overrides mesh",
			policies: []PeerAuthentication{mesh(MTLSStrict), nsPolicy("sample", MTLSPermissive)},
			w:        app, want: MTLSPermissive,
		},
		{
			name:     "another namespace's policy does not count",
			policies: []PeerAuthentication{mesh(MTLSStrict), nsPolicy("other", MTLSDisable)},
			w:        app, want: MTLSStrict,
		},
		{
			name:     "namespace UNSET inherits the mesh",
			policies: []PeerAuthentication{mesh(MTLSStrict), nsPolicy("sample", MTLSUnset)},
			w:        app, want: MTLSStrict,
		},
		{
			name: "workload overrides namespace and mesh",
			policies: []PeerAuthentication{
				mesh(MTLSStrict), nsPolicy("sample", MTLSPermissive),
				{Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSDisable},
			},
			w: app, want: MTLSDisable,
		},
		{
			name: "a selector that does not match is ignored",
			policies: []PeerAuthentication{
				mesh(MTLSStrict),
				{Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "other"}, Mode: MTLSDisable},
			},
			w: app, want: MTLSStrict,
		},
		{
			name: "a selector in another namespace is ignored",
			policies: []PeerAuthentication{
				{Namespace: "other", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSDisable},
			},
			w: app, want: MTLSPermissive,
		},
		{
			name: "a selector in the root namespace selects only root namespace workloads",
			policies: []PeerAuthentication{
				{Namespace: "istio-system", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSStrict},
			},
			w: app, want: MTLSPermissive,
		},
		{
			name: "in the root namespace its selector policies are workload policies",
			policies: []PeerAuthentication{
				mesh(MTLSPermissive),
				{Namespace: "istio-system", Name: "gw", Created: t0, Selector: map[string]string{"app": "gw"}, Mode: MTLSStrict},
			},
			w: Workload{Namespace: "istio-system", Labels: map[string]string{"app": "gw"}}, want: MTLSStrict,
		},
		{
			name: "empty selector matches every workload of the namespace",
			policies: []PeerAuthentication{
				nsPolicy("sample", MTLSStrict),
				{Namespace: "sample", Name: "all", Created: t0, Selector: map[string]string{}, Mode: MTLSDisable},
			},
			w: app, want: MTLSDisable,
		},
		{
			name: "workload UNSET inherits the namespace",
			policies: []PeerAuthentication{
				nsPolicy("sample", MTLSStrict),
				{Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}},
			},
			w: app, port: 5000, want: MTLSStrict,
		},
		{
			name: "port level overrides the workload mode on its port",
			policies: []PeerAuthentication{
				{
					Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSStrict,
					PortLevel: map[uint32]MTLSMode{8080: MTLSDisable, 9090: MTLSUnset},
				},
			},
			w: app, port: 8080, want: MTLSDisable,
		},
		{
			name: "port level leaves other ports alone",
			policies: []PeerAuthentication{
				{
					Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSStrict,
					PortLevel: map[uint32]MTLSMode{8080: MTLSDisable},
				},
			},
			w: app, port: 5000, want: MTLSStrict,
		},
		{
			name: "port level UNSET inherits",
			policies: []PeerAuthentication{
				mesh(MTLSStrict),
				{
					Namespace: "sample", Name: "hw", Created: t0, Selector: map[string]string{"app": "helloworld"},
					PortLevel: map[uint32]MTLSMode{9090: MTLSUnset},
				},
			},
			w: app, port: 9090, want: MTLSStrict,
		},
		{
			name: "port level of a namespace policy is not read",
			policies: []PeerAuthentication{
				{Namespace: "sample", Name: "ns", Created: t0, Mode: MTLSStrict, PortLevel: map[uint32]MTLSMode{8080: MTLSDisable}},
			},
			w: app, port: 8080, want: MTLSStrict,
		},
		{
			name: "oldest mesh policy wins",
			policies: []PeerAuthentication{
				{Namespace: "istio-system", Name: "a-newer", Created: t1, Mode: MTLSDisable},
				{Namespace: "istio-system", Name: "z-older", Created: t0, Mode: MTLSStrict},
			},
			w: app, want: MTLSStrict,
		},
		{
			name: "oldest workload policy wins, then the name",
			policies: []PeerAuthentication{
				{Namespace: "sample", Name: "b", Created: t0, Selector: map[string]string{"app": "helloworld"}, Mode: MTLSDisable},
				{Namespace: "sample", Name: "a", Created: t0, Selector: map[string]string{"version": "v1"}, Mode: MTLSStrict},
				{Namespace: "sample", Name: "0", Created: t1, Selector: map[string]string{"version": "v1"}, Mode: MTLSPermissive},
			},
			w: app, want: MTLSStrict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EffectiveMTLS(tt.policies, "istio-system", tt.w, tt.port)
			if diff := cmp.Diff(tt.want.String(), got.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMTLSMode(t *testing.T) {
	for _, m := range []MTLSMode{MTLSUnset, MTLSDisable, MTLSPermissive, MTLSStrict} {
		if m != MTLSUnset {
			if got := ParseMTLSMode(m.String()); got != m {
				t.Errorf("ParseMTLSMode(%q) = %v", m.String(), got)
			}
		}
	}
	if got := ParseMTLSMode("strict"); got != MTLSUnset {
		t.Errorf("ParseMTLSMode(strict) = %v, want UNSET (the API is upper case)", got)
	}
}

func TestStorePeerAuthentications(t *testing.T) {
	s := NewStore(Config{})
	strict := &PeerAuthentication{Cluster: "c1", Namespace: "istio-system", Name: "default", Mode: MTLSStrict}
	s.UpsertPeerAuthentication(strict)
	ch := s.TakeChanges()
	if diff := cmp.Diff(map[ClusterID]struct{}{"c1": {}}, ch.PeerAuthentication); diff != "" || ch.Empty() {
		t.Fatalf("changes after an upsert (-want +got):\n%s", diff)
	}
	first := s.Snapshot()
	if got := first.PeerAuthentications("c1"); len(got) != 1 || got[0].Mode != MTLSStrict {
		t.Fatalf("snapshot policies = %+v", got)
	}
	if first.RootNamespace() != DefaultSystemNamespace {
		t.Errorf("root namespace %q", first.RootNamespace())
	}
	if got := first.PeerAuthentications("c2"); got != nil {
		t.Errorf("another cluster's policies = %+v, want none", got)
	}

	same := *strict
	s.UpsertPeerAuthentication(&same)
	if ch := s.TakeChanges(); !ch.Empty() {
		t.Errorf("an equal upsert changed %+v", ch)
	}

	s.UpsertPeerAuthentication(&PeerAuthentication{Cluster: "c1", Namespace: "sample", Name: "a", Mode: MTLSDisable})
	s.DeletePeerAuthentication(ObjectKey{Cluster: "c1", NamespacedName: NamespacedName{Namespace: "istio-system", Name: "default"}})
	ch = s.TakeChanges()
	if _, ok := ch.PeerAuthentication["c1"]; !ok {
		t.Errorf("changes after a delete: %+v", ch)
	}
	second := s.Snapshot()
	if got := second.PeerAuthentications("c1"); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("second snapshot policies = %+v", got)
	}
	if got := first.PeerAuthentications("c1"); len(got) != 1 || got[0].Name != "default" {
		t.Errorf("the first snapshot changed: %+v", got)
	}

	s.RemoveCluster("c1")
	if ch := s.TakeChanges(); len(ch.PeerAuthentication) != 1 {
		t.Errorf("changes after removing the cluster: %+v", ch)
	}
	if got := s.Snapshot().PeerAuthentications("c1"); got != nil {
		t.Errorf("policies of a removed cluster: %+v", got)
	}
}

func TestChangesMergePeerAuthentication(t *testing.T) {
	var c Changes
	c.Merge(Changes{PeerAuthentication: map[ClusterID]struct{}{"c1": {}}})
	c.Merge(Changes{PeerAuthentication: map[ClusterID]struct{}{"c2": {}}})
	if diff := cmp.Diff(map[ClusterID]struct{}{"c1": {}, "c2": {}}, c.PeerAuthentication); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDisabledWorkloadEndpoints: an endpoint whose workload a
// PeerAuthentication of its cluster makes DISABLE on its target port does
// not speak mesh mTLS, as istiod strips its tlsMode: clients send it
// plaintext, and no other network sees it through a gateway. A policy
// change rebuilds the services of its cluster.
func TestDisabledWorkloadEndpoints(t *testing.T) {
	s := NewStore(Config{})
	s.UpsertService(mkService("c1", "sample", "legacy", sp("http", 8000)))
	s.UpsertService(mkService("c1", "sample", "web", sp("http", 8000)))
	for _, name := range []string{"legacy", "web"} {
		s.UpsertEndpointSlice(mkSlice("c1", "sample", name+"-a", name, []EndpointPort{epp("http", 8000)}, ready(name+"-0", "", map[string]string{"legacy": "10.1.0.70", "web": "10.1.0.80"}[name])))
		p := mkPod("c1", "sample", name+"-0", "", true, name)
		p.Labels = map[string]string{"app": name}
		s.UpsertPod(p)
	}
	legacy := ServiceHost("sample", "legacy", DefaultDomain)
	web := ServiceHost("sample", "web", DefaultDomain)
	tls := func(h Host) string {
		v, ok := s.Snapshot().View(h, 8000, "")
		if !ok || len(v.Endpoints) != 1 {
			t.Fatalf("view of %s: %+v", h, v)
		}
		return v.Endpoints[0].TLSMode
	}
	if tls(legacy) != TLSModeIstio {
		t.Fatalf("without policies the endpoint speaks mTLS")
	}
	s.TakeChanges()

	s.UpsertPeerAuthentication(&PeerAuthentication{Cluster: "c1", Namespace: DefaultSystemNamespace, Name: "default", Mode: MTLSStrict})
	s.UpsertPeerAuthentication(&PeerAuthentication{Cluster: "c1", Namespace: "sample", Name: "legacy", Mode: MTLSDisable, Selector: map[string]string{"app": "legacy"}})
	if got, want := tls(legacy), ""; got != want {
		t.Errorf("DISABLE workload: tlsMode %q, want %q", got, want)
	}
	if got := tls(web); got != TLSModeIstio {
		t.Errorf("STRICT workload: tlsMode %q, want istio", got)
	}
	ch := s.TakeChanges()
	if _, ok := ch.Services[legacy]; !ok {
		t.Errorf("changes %+v do not name %s", ch, legacy)
	}
	if _, ok := ch.Services[web]; ok {
		t.Errorf("changes %+v name %s, whose endpoints did not change", ch, web)
	}

	// Another cluster's policies do not count for c1's workloads.
	s.DeletePeerAuthentication(ObjectKey{Cluster: "c1", NamespacedName: NamespacedName{Namespace: "sample", Name: "legacy"}})
	s.UpsertPeerAuthentication(&PeerAuthentication{Cluster: "c2", Namespace: "sample", Name: "legacy", Mode: MTLSDisable, Selector: map[string]string{"app": "legacy"}})
	if got := tls(legacy); got != TLSModeIstio {
		t.Errorf("c2's DISABLE applied to c1's workload: tlsMode %q", got)
	}
}
