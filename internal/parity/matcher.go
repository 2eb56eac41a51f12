package parity

import (
	"slices"
	"strings"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// matcherInputs name the network inputs of a filter chain matcher as
// chainKey names the fields of a FilterChainMatch, so that a chain picked
// by a matcher tree and one picked by its match compare equal.
var matcherInputs = map[string]string{
	"envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput":     "dport",
	"envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput":       "dip",
	"envoy.extensions.matching.common_inputs.network.v3.SourceIPInput":            "sip",
	"envoy.extensions.matching.common_inputs.network.v3.SourcePortInput":          "sport",
	"envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput":      "dsip",
	"envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput":          "source_type",
	"envoy.extensions.matching.common_inputs.network.v3.ServerNameInput":          "sni",
	"envoy.extensions.matching.common_inputs.network.v3.TransportProtocolInput":   "transport",
	"envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput": "alpn",
}

// chainMatcherKeys walks a listener's filter_chain_matcher and returns, per
// filter chain name, the conditions of every branch that reaches it
// (INPUT=VALUE, joined by commas; INPUT=* on a tree's no-match branch).
func chainMatcherKeys(m *xdsmatcherv3.Matcher) map[string][]string {
	out := map[string][]string{}
	if m != nil {
		walkMatcher(m, nil, out)
	}
	for name, keys := range out {
		slices.Sort(keys)
		out[name] = slices.Compact(keys)
	}
	return out
}

func walkMatcher(m *xdsmatcherv3.Matcher, conds []string, out map[string][]string) {
	input := "?"
	if tree := m.GetMatcherTree(); tree != nil {
		input = inputName(tree.GetInput())
		for _, mm := range []*xdsmatcherv3.Matcher_MatcherTree_MatchMap{tree.GetExactMatchMap(), tree.GetPrefixMatchMap()} {
			op := "="
			if mm == tree.GetPrefixMatchMap() {
				op = "^="
			}
			for k, om := range mm.GetMap() {
				walkOnMatch(om, with(conds, input+op+k), out)
			}
		}
		if cm := tree.GetCustomMatch(); cm != nil {
			ipm := &xdsmatcherv3.IPMatcher{}
			if cm.GetTypedConfig().UnmarshalTo(ipm) == nil {
				for _, rm := range ipm.GetRangeMatchers() {
					walkOnMatch(rm.GetOnMatch(), with(conds, input+"="+strings.Join(xdsCIDRs(rm.GetRanges()), "+")), out)
				}
			} else {
				walkOnMatch(nil, with(conds, input+"~custom"), out)
			}
		}
	}
	if list := m.GetMatcherList(); list != nil {
		for i, fm := range list.GetMatchers() {
			walkOnMatch(fm.GetOnMatch(), with(conds, "predicate#"+portString(uint32(i))), out)
		}
	}
	if om := m.GetOnNoMatch(); om != nil {
		walkOnMatch(om, with(conds, input+"=*"), out)
	}
}

func walkOnMatch(om *xdsmatcherv3.Matcher_OnMatch, conds []string, out map[string][]string) {
	if om == nil {
		return
	}
	if next := om.GetMatcher(); next != nil {
		walkMatcher(next, conds, out)
		return
	}
	name := &wrapperspb.StringValue{}
	if om.GetAction().GetTypedConfig().UnmarshalTo(name) != nil {
		return
	}
	key := strings.Join(conds, ",")
	if key == "" {
		key = "*"
	}
	out[name.GetValue()] = append(out[name.GetValue()], key)
}

func with(conds []string, c string) []string {
	return append(slices.Clone(conds), c)
}

func inputName(in *xdscorev3.TypedExtensionConfig) string {
	t := in.GetTypedConfig().GetTypeUrl()
	if i := strings.LastIndex(t, "/"); i >= 0 {
		t = t[i+1:]
	}
	if n, ok := matcherInputs[t]; ok {
		return n
	}
	if t == "" {
		return in.GetName()
	}
	return t
}

func xdsCIDRs(rs []*xdscorev3.CidrRange) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		plen := uint32(32)
		if strings.Contains(r.GetAddressPrefix(), ":") {
			plen = 128
		}
		if r.GetPrefixLen() != nil {
			plen = r.GetPrefixLen().GetValue()
		}
		out = append(out, r.GetAddressPrefix()+"/"+portString(plen))
	}
	slices.Sort(out)
	return out
}
