package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/testkit"
)

func TestParseMeshConfigDiscoverySelectors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []NamespaceSelector
		err        string
	}{
		{name: "absent: every namespace", yaml: "outboundTrafficPolicy: {mode: ALLOW_ANY}\n"},
		{name: "empty list: every namespace", yaml: "discoverySelectors: []\n"},
		{
			name: "labels and expressions, in order",
			yaml: `discoverySelectors:
- matchLabels: {env: prod, region: us-east1}
- matchExpressions:
  - {key: app, operator: In, values: [cassandra, spark]}
  - {key: legacy, operator: DoesNotExist}
`,
			want: []NamespaceSelector{
				{MatchLabels: map[string]string{"env": "prod", "region": "us-east1"}},
				{MatchExpressions: []SelectorRequirement{
					{Key: "app", Operator: "In", Values: []string{"cassandra", "spark"}},
					{Key: "legacy", Operator: "DoesNotExist"},
				}},
			},
		},
		{name: "an empty selector", yaml: "discoverySelectors:\n- {}\n", want: []NamespaceSelector{{}}},
		{name: "unknown operator", yaml: "discoverySelectors:\n- matchExpressions: [{key: a, operator: Equals, values: [x]}]\n", err: `discoverySelectors[0]: matchExpressions[0] (key "a"): operator "Equals"`},
		{name: "In without values", yaml: "discoverySelectors:\n- matchExpressions: [{key: a, operator: In}]\n", err: "operator In needs values"},
		{name: "Exists with values", yaml: "discoverySelectors:\n- {}\n- matchExpressions: [{key: a, operator: Exists, values: [x]}]\n", err: "discoverySelectors[1]: matchExpressions[0] (key \"a\"): operator Exists takes no values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc, err := ParseMeshConfig([]byte(tt.yaml))
			if testkit.WantErr(t, err, tt.err) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, mc.DiscoverySelectors); d != "" {
				t.Errorf("DiscoverySelectors (-want +got):\n%s", d)
			}
		})
	}
}
