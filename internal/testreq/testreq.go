// Package testreq is the policy of tests whose prerequisites may be
// missing: outside CI they skip, saying what to install; where integration
// tests are required (CI=true or CAUSEWAY_REQUIRE_INTEGRATION=1) they fail
// instead, so that CI never passes by skipping. It imports nothing of the
// project, so that pure packages' tests can use it.
package testreq

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Required reports whether a missing prerequisite must fail a test rather
// than skip it: CI=true or CAUSEWAY_REQUIRE_INTEGRATION=1.
func Required() bool {
	return required(os.Getenv)
}

func required(getenv func(string) string) bool {
	for _, name := range []string{"CI", "CAUSEWAY_REQUIRE_INTEGRATION"} {
		if on, err := strconv.ParseBool(getenv(name)); err == nil && on {
			return true
		}
	}
	return false
}

// SkipOrFail skips the test, or fails it when [Required] says so.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	skipOrFail(t, Required(), fmt.Sprintf(format, args...))
}

func skipOrFail(t testing.TB, required bool, msg string) {
	t.Helper()
	if required {
		t.Fatalf("%s (integration tests are required here: CI or CAUSEWAY_REQUIRE_INTEGRATION is set)", msg)
		return
	}
	t.Skipf("%s (skipping; set CAUSEWAY_REQUIRE_INTEGRATION=1 to make this a failure)", msg)
}

// NotShort is for a test too slow for `go test -short` (make unit): in
// short mode it skips, or fails where integration tests are required, for
// -short must not turn CI's tests into skips. what says what the test does.
func NotShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		SkipOrFail(t, "-short: %s (run make test, without -short)", what)
	}
}
