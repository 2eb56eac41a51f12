package cli

import (
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/server"
)

func TestDrainFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    time.Duration
		wantErr string
	}{
		{"default", nil, server.DefaultDrainDuration, ""},
		{"set", []string{"--drain-duration=45s"}, 45 * time.Second, ""},
		{"zero: all at once", []string{"--drain-duration=0"}, 0, ""},
		{"negative", []string{"--drain-duration=-1s"}, 0, "--drain-duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f drainFlags
			cfg, ok := applyFlagGroup(t, f.register, f.apply, tt.args, tt.wantErr)
			if ok && cfg.DrainDuration != tt.want {
				t.Errorf("DrainDuration = %v, want %v", cfg.DrainDuration, tt.want)
			}
		})
	}
}
