package xds

import (
	"github.com/causeway-mesh/causeway/internal/envoy"
	"github.com/causeway-mesh/causeway/internal/model"
)

// nameTableResource is the name of the one NDS resource of a view: istiod
// sends the name table as a single unnamed resource.
const nameTableResource = ""

// updateNameTable rebuilds a sidecar's name table (NDS) when a change can
// alter it: a service came, went or changed its definition (cluster IPs
// included), or a headless service's endpoints changed (its entry lists
// them). The table is one resource of every service: rebuilding it costs
// the whole mesh, so endpoint changes of services with a cluster IP, by
// far the most frequent, do not.
func (v *view) updateNameTable(b *builder, c *changeSet, hcs []hostChange) {
	_, built := v.entries[nameTableResource]
	if built && !nameTableChanged(hcs) {
		return
	}
	c.put(nameTableResource, envoy.NameTable(b.snap.NameTable(v.key.cluster, v.key.network)))
}

func nameTableChanged(hcs []hostChange) bool {
	for i := range hcs {
		hc := &hcs[i]
		if hc.defChanged || model.IsHeadless(hc.cur) || model.IsHeadless(hc.old) {
			return true
		}
	}
	return false
}

// unknownView serves a type the server does not know (or does not serve
// to this proxy's role): always empty, as istiod answers a type it has no
// generator for, so that the stream and its other types go on. The view
// is the stream's own and is not kept in the server's map: a client
// inventing type URLs costs memory only while its watches last.
func (s *Server) unknownView(c *conn, typeURL string) *view {
	s.log.Debug("xDS type not served; answering with nothing", "type", typeURL, "stream", c.stream)
	return s.newView(viewKey{typeURL: typeURL, kind: kindEmpty})
}
