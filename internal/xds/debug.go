package xds

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// Proxies returns every connected proxy whose node is known, sorted by id,
// then stream.
func (s *Server) Proxies() []ProxyStatus { return s.reg.all() }

// ConfigDump is what a proxy was sent of one type and still has: the JSON
// of /debug/config_dump and `causeway proxy-config`.
type ConfigDump struct {
	Proxy   string `json:"proxy"`
	Stream  int64  `json:"stream"`
	Type    string `json:"type"`
	TypeURL string `json:"typeUrl"`
	// LastSent is the last response of the type (nil if none was sent).
	LastSent *Sent `json:"lastSent,omitempty"`
	// Resources in protojson, sorted by name.
	Resources []json.RawMessage `json:"resources"`
}

// UnknownProxy is the body of /debug/config_dump's 404: the proxy asked
// for is not connected; Known lists those that are.
type UnknownProxy struct {
	Error string   `json:"error"`
	Known []string `json:"known"`
}

// ConfigDump returns what the newest stream of proxy id holds of typ (cds,
// eds, lds or rds). ok is false if no such proxy is connected.
func (s *Server) ConfigDump(id, typ string) (ConfigDump, bool, error) {
	typeURL := typeURLOf(typ)
	if typeURL == "" {
		return ConfigDump{}, false, fmt.Errorf("type %q: want cds, eds, lds or rds", typ)
	}
	c := s.reg.latest(id)
	if c == nil {
		return ConfigDump{}, false, nil
	}
	res, sent := c.resources(typeURL)
	type named struct {
		name string
		a    *anypb.Any
	}
	sorted := make([]named, len(res))
	for i, a := range res {
		sorted[i] = named{resourceName(a), a}
	}
	slices.SortFunc(sorted, func(a, b named) int { return cmp.Compare(a.name, b.name) })
	d := ConfigDump{Proxy: id, Stream: c.stream, Type: typ, TypeURL: typeURL, LastSent: sent,
		Resources: make([]json.RawMessage, 0, len(sorted))}
	for _, r := range sorted {
		m, err := r.a.UnmarshalNew()
		if err != nil {
			return ConfigDump{}, true, fmt.Errorf("decoding %s %q: %w", typ, r.name, err)
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			return ConfigDump{}, true, fmt.Errorf("rendering %s %q as JSON: %w", typ, r.name, err)
		}
		d.Resources = append(d.Resources, b)
	}
	return d, true, nil
}

// DebugHandler serves /debug/proxies (the JSON of Proxies) and
// /debug/config_dump?proxy=ID&type=cds|eds|lds|rds (a ConfigDump; 404 with
// an UnknownProxy body if the proxy is not connected). Mount it on both
// paths.
func (s *Server) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/proxies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Proxies())
	})
	mux.HandleFunc("GET /debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id, typ := r.URL.Query().Get("proxy"), r.URL.Query().Get("type")
		if id == "" || typ == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{
				"error": "want /debug/config_dump?proxy=ID&type=cds|eds|lds|rds; /debug/proxies lists the ids"})
			return
		}
		d, ok, err := s.ConfigDump(id, strings.ToLower(typ))
		switch {
		case err != nil && !ok:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		case !ok:
			known := []string{}
			proxies := s.Proxies()
			for i := range proxies {
				if id := proxies[i].ID; len(known) == 0 || known[len(known)-1] != id {
					known = append(known, id)
				}
			}
			writeJSON(w, http.StatusNotFound, UnknownProxy{
				Error: fmt.Sprintf("proxy %q is not connected", id), Known: known})
		default:
			writeJSON(w, http.StatusOK, d)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
