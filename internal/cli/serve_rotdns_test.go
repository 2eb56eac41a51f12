package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/causeway-mesh/causeway/internal/clusters"
	"github.com/causeway-mesh/causeway/internal/gatewaydns"
	"github.com/causeway-mesh/causeway/internal/server"
)

func TestRotationDNSFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    server.Config
		wantErr string
	}{
		{
			name: "defaults",
			want: server.Config{SwapTimeout: clusters.DefaultSwapTimeout, GatewayDNS: gatewaydns.Config{
				Refresh: gatewaydns.DefaultRefresh, MinTTL: gatewaydns.DefaultMinTTL, MaxTTL: gatewaydns.DefaultMaxTTL, Timeout: gatewaydns.DefaultTimeout}},
		},
		{
			name: "set",
			args: []string{"--remote-secret-swap-timeout=30s", "--gateway-dns-server=10.0.0.10:53", "--gateway-dns-server=[fd00::10]:5353",
				"--gateway-dns-refresh=10s", "--gateway-dns-min-ttl=1s", "--gateway-dns-max-ttl=1m", "--gateway-dns-timeout=500ms"},
			want: server.Config{SwapTimeout: 30 * time.Second, GatewayDNS: gatewaydns.Config{
				Servers: []string{"10.0.0.10:53", "[fd00::10]:5353"},
				Refresh: 10 * time.Second, MinTTL: time.Second, MaxTTL: time.Minute, Timeout: 500 * time.Millisecond}},
		},
		{name: "zero swap timeout", args: []string{"--remote-secret-swap-timeout=0"}, wantErr: "--remote-secret-swap-timeout"},
		{name: "max below min", args: []string{"--gateway-dns-min-ttl=1m", "--gateway-dns-max-ttl=10s"}, wantErr: "--gateway-dns-max-ttl"},
		{name: "server without port", args: []string{"--gateway-dns-server=10.0.0.10"}, wantErr: "--gateway-dns-server"},
		{name: "negative refresh", args: []string{"--gateway-dns-refresh=-1s"}, wantErr: "--gateway-dns-refresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f rotationDNSFlags
			got, ok := applyFlagGroup(t, f.register, f.apply, tt.args, tt.wantErr)
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(server.Config{}), cmpopts.IgnoreFields(gatewaydns.Config{}, "Wanted", "Changed", "Logger")); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
