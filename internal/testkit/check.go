package testkit

import (
	"strings"
	"testing"
)

// WantErr checks err against a table test's wanted error. With want ""
// it returns false and leaves err to the caller. Otherwise it fails the
// test unless err's text contains want, and returns true: the case is
// done.
//
//	if testkit.WantErr(t, err, tt.wantErr) {
//		return
//	}
func WantErr(t testing.TB, err error, want string) bool {
	t.Helper()
	if want == "" {
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one saying %q", err, want)
	}
	return true
}

// ContainsAll reports (t.Errorf, the test goes on) each of wants that got
// lacks; what names got in the message, e.g. "inspect output".
func ContainsAll(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// ContainsInOrder fails the test unless got holds each of wants, in that
// order, without overlap; what names got in the message, e.g. "error".
func ContainsInOrder(t testing.TB, what, got string, wants ...string) {
	t.Helper()
	rest := got
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%s %q lacks %q (in order)", what, got, w)
		}
		rest = rest[i+len(w):]
	}
}
