package xds

import (
	"testing"
)

// TestSotWAndDeltaStreamsApart: go-control-plane numbers SotW and delta
// streams from 1 each, so a fresh server's first SotW stream and first
// delta stream carry the same number. Both must be served, and the end of
// one must not take the other's registration with it (its next request
// was refused as "not registered", ending the stream).
func TestSotWAndDeltaStreamsApart(t *testing.T) {
	m := rawMesh(t, Config{})
	cc := dial(t, serve(t, m.srv))

	s := newSotW(t, cc, sidecarNode("sotw-1", network1, cluster1))
	s.request(cdsType, nil, "", "", "")
	s.recvType(cdsType)
	d := newDelta(t, cc, sidecarNode("delta-1", network2, cluster2))
	d.subscribe(cdsType, nil, nil)
	d.ack(d.recvType(cdsType))

	if got := len(m.srv.Proxies()); got != 2 {
		t.Errorf("registry has %d proxies with one SotW and one delta stream open, want 2", got)
	}
	s.close()
	proxyStatus(t, m.srv, "sidecar~10.1.0.9~delta-1.sample~sample.svc.cluster.local", func(ProxyStatus) bool {
		return len(m.srv.Proxies()) == 1
	})

	// The delta stream is still registered and served.
	d.subscribe(edsType, []string{helloCluster}, nil)
	if got := deltaNames(d.recvType(edsType)); len(got) != 1 || got[0] != helloCluster {
		t.Errorf("EDS on the delta stream after the SotW stream ended: %v, want [%s]", got, helloCluster)
	}
}
