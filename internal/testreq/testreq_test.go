package testreq

import (
	"strings"
	"testing"
)

func TestIntegrationRequired(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want bool
	}{
		{env: map[string]string{}, want: false},
		{env: map[string]string{"CI": "true"}, want: true},
		{env: map[string]string{"CI": "false"}, want: false},
		{env: map[string]string{"CI": "yes-please"}, want: false},
		{env: map[string]string{"CAUSEWAY_REQUIRE_INTEGRATION": "1"}, want: true},
		{env: map[string]string{"CAUSEWAY_REQUIRE_INTEGRATION": "0", "CI": "true"}, want: true},
	}
	for _, tt := range tests {
		if got := required(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("required(%v) = %t, want %t", tt.env, got, tt.want)
		}
	}
}

// recordingTB records what SkipOrFail calls instead of stopping the test.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Skipf(format string, a ...any)  { r.skipped = format + ":" + a[0].(string) }
func (r *recordingTB) Fatalf(format string, a ...any) { r.failed = format + ":" + a[0].(string) }

func TestSkipOrFail(t *testing.T) {
	tests := []struct {
		name        string
		required    bool
		wantSkipped bool
	}{
		{name: "outside CI the test is skipped", required: false, wantSkipped: true},
		{name: "in CI the test fails", required: true, wantSkipped: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			skipOrFail(rec, tt.required, "kube-apiserver not found")
			got := rec.failed
			if tt.wantSkipped {
				got = rec.skipped
				if rec.failed != "" {
					t.Errorf("failed with %q, want a skip", rec.failed)
				}
			} else if rec.skipped != "" {
				t.Errorf("skipped with %q, want a failure", rec.skipped)
			}
			if !strings.Contains(got, "kube-apiserver not found") {
				t.Errorf("message %q does not carry the reason", got)
			}
		})
	}
}
