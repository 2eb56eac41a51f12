package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/causeway-mesh/causeway/internal/xds"
)

func TestXDSLimitFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    xds.Config
		wantErr string
	}{
		{
			name: "defaults",
			want: xds.Config{SendBudgetWait: xds.DefaultSendBudgetWait, MaxViews: xds.DefaultMaxViews, ViewGrace: xds.DefaultViewGrace,
				MaxRequestBytes: 4 << 20, MaxRequestNames: xds.DefaultMaxRequestNames, NamesCacheBytes: 64 << 20,
				ResendRate: xds.DefaultResendRate, ResendBurst: xds.DefaultResendBurst},
		},
		{
			name: "set",
			args: []string{"--xds-conn-send-budget=none", "--xds-send-budget-wait=10s", "--xds-max-views=-1", "--xds-view-grace=5s",
				"--xds-max-request-bytes=1Mi", "--xds-max-request-names=500", "--xds-names-cache-bytes=8Mi",
				"--xds-resend-rate=-1", "--xds-resend-burst=3"},
			want: xds.Config{ConnSendBudget: -1, SendBudgetWait: 10 * time.Second, MaxViews: -1, ViewGrace: 5 * time.Second,
				MaxRequestBytes: 1 << 20, MaxRequestNames: 500, NamesCacheBytes: 8 << 20, ResendRate: -1, ResendBurst: 3},
		},
		{name: "zero views", args: []string{"--xds-max-views=0"}, wantErr: "--xds-max-views"},
		{name: "bad size", args: []string{"--xds-max-request-bytes=lots"}, wantErr: "--xds-max-request-bytes"},
		{name: "zero names", args: []string{"--xds-max-request-names=0"}, wantErr: "--xds-max-request-names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f xdsLimitFlags
			got, ok := applyFlagGroup(t, f.register, f.apply, tt.args, tt.wantErr)
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
