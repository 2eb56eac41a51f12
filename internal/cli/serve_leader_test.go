package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/leader"
	"github.com/causeway-mesh/causeway/internal/server"
)

func TestLeaderFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		hostErr  bool
		want     server.LeaderElection
		wantHost bool // the identity is the host name and a suffix
		wantErr  string
	}{
		{
			name: "defaults, identity from POD_NAME",
			env:  map[string]string{"POD_NAME": "istiod-7d9f-abcde"},
			want: server.LeaderElection{Enabled: true, Identity: "istiod-7d9f-abcde", LeaseName: leader.DefaultLeaseName,
				LeaseDuration: leader.DefaultLeaseDuration, RenewDeadline: leader.DefaultRenewDeadline, RetryPeriod: leader.DefaultRetryPeriod},
		},
		{
			name: "set",
			args: []string{"--leader-identity=r1", "--leader-lease-name=l", "--leader-lease-duration=4s", "--leader-renew-deadline=3s", "--leader-retry-period=500ms"},
			env:  map[string]string{"POD_NAME": "ignored"},
			want: server.LeaderElection{Enabled: true, Identity: "r1", LeaseName: "l",
				LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond},
		},
		{name: "host name", wantHost: true},
		{name: "no host name", hostErr: true, wantErr: "--leader-identity"},
		{name: "renew not shorter than lease", args: []string{"--leader-lease-duration=3s", "--leader-renew-deadline=3s"}, wantErr: "--leader-lease-duration"},
		{name: "off: durations not checked", args: []string{"--leader-elect=false", "--leader-identity=x", "--leader-lease-duration=1s"},
			want: server.LeaderElection{Identity: "x", LeaseName: leader.DefaultLeaseName,
				LeaseDuration: time.Second, RenewDeadline: leader.DefaultRenewDeadline, RetryPeriod: leader.DefaultRetryPeriod}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f leaderFlags
			apply := func(cfg *server.Config) error {
				return f.apply(cfg, func(k string) string { return tt.env[k] }, func() (string, error) {
					if tt.hostErr {
						return "", errors.New("no host")
					}
					return "node1", nil
				})
			}
			got, ok := applyFlagGroup(t, f.register, apply, tt.args, tt.wantErr)
			if !ok {
				return
			}
			le := got.LeaderElection
			if tt.wantHost {
				if !strings.HasPrefix(le.Identity, "node1_") || len(le.Identity) != len("node1_")+8 {
					t.Errorf("identity %q: want node1_ and 8 hex digits", le.Identity)
				}
				return
			}
			if le != tt.want {
				t.Errorf("got %+v, want %+v", le, tt.want)
			}
		})
	}
}
