package cli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// applyFlagGroup parses args into a group of flags (register) and applies
// them to a fresh C. It returns false, having checked the error, when the
// case wants one (wantErr names the flag the error must mention).
func applyFlagGroup[C any](t *testing.T, register func(*pflag.FlagSet), apply func(*C) error, args []string, wantErr string) (C, bool) {
	t.Helper()
	fl := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	register(fl)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	var cfg C
	err := apply(&cfg)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one naming %s", err, wantErr)
		}
		return cfg, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg, true
}
