package testenv

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClusterIDs(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		want    []string
		wantErr bool
	}{
		{name: "default is one cluster", want: []string{"cluster1"}},
		{name: "counted", opts: Options{Clusters: 3}, want: []string{"cluster1", "cluster2", "cluster3"}},
		{name: "named", opts: Options{ClusterIDs: []string{"east", "west"}}, want: []string{"east", "west"}},
		{name: "count agrees with names", opts: Options{Clusters: 2, ClusterIDs: []string{"east", "west"}}, want: []string{"east", "west"}},
		{name: "count disagrees with names", opts: Options{Clusters: 3, ClusterIDs: []string{"east", "west"}}, wantErr: true},
		{name: "duplicate", opts: Options{ClusterIDs: []string{"east", "east"}}, wantErr: true},
		{name: "not a DNS label", opts: Options{ClusterIDs: []string{"East_1"}}, wantErr: true},
		{name: "too many", opts: Options{Clusters: maxClusters + 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.clusterIDs()
			if (err != nil) != tt.wantErr {
				t.Fatalf("clusterIDs: error %v, want error %t", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("clusterIDs (-want +got):\n%s", diff)
			}
		})
	}
}
