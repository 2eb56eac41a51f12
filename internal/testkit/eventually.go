package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond until it returns "" (the condition holds) and fails
// the test with "what: <cond's last answer>" if it still does not hold after
// timeout. cond describes what is still wrong, for example a cmp.Diff.
// Polling starts at 10ms and backs off to 200ms.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		d := cond()
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", what, d)
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Holds adapts a yes/no condition to Eventually: "" when cond holds.
func Holds(cond func() bool) func() string {
	return func() string {
		if cond() {
			return ""
		}
		return "the condition does not hold"
	}
}
