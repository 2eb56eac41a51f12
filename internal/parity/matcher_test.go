package parity

import (
	"testing"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	networkinputsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

// TestChainMatcherKeys walks a tree as istiod builds for an outbound
// listener: destination IP ranges (an IPMatcher), then the SNI by prefix,
// with no-match branches, and a chain reached from two branches.
func TestChainMatcherKeys(t *testing.T) {
	sniTree := &xdsmatcherv3.Matcher{
		MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input: input(t, "sni", &networkinputsv3.ServerNameInput{}),
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_PrefixMatchMap{PrefixMatchMap: &xdsmatcherv3.Matcher_MatcherTree_MatchMap{
				Map: map[string]*xdsmatcherv3.Matcher_OnMatch{"outbound_.": onChain(t, "mesh")},
			}},
		}},
		OnNoMatch: onChain(t, "passthrough"),
	}
	ipm := &xdsmatcherv3.IPMatcher{RangeMatchers: []*xdsmatcherv3.IPMatcher_IPRangeMatcher{{
		Ranges: []*xdscorev3.CidrRange{
			{AddressPrefix: "10.96.0.0", PrefixLen: wrapperspb.UInt32(16)},
			{AddressPrefix: "10.1.0.10"},
		},
		OnMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Matcher{Matcher: sniTree}},
	}}}
	root := &xdsmatcherv3.Matcher{
		MatcherType: &xdsmatcherv3.Matcher_MatcherTree_{MatcherTree: &xdsmatcherv3.Matcher_MatcherTree{
			Input: input(t, "ip", &networkinputsv3.DestinationIPInput{}),
			TreeType: &xdsmatcherv3.Matcher_MatcherTree_CustomMatch{CustomMatch: &xdscorev3.TypedExtensionConfig{
				Name: "ip", TypedConfig: testkit.MustAny(t, ipm),
			}},
		}},
		OnNoMatch: onChain(t, "passthrough"),
	}
	want := map[string][]string{
		"mesh":        {"dip=10.1.0.10/32+10.96.0.0/16,sni^=outbound_."},
		"passthrough": {"dip=*", "dip=10.1.0.10/32+10.96.0.0/16,sni=*"},
	}
	if diff := cmp.Diff(want, chainMatcherKeys(root)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := chainMatcherKeys(nil); len(got) != 0 {
		t.Errorf("no matcher: %v, want no keys", got)
	}
}
