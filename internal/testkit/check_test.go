package testkit

import (
	"errors"
	"slices"
	"testing"
)

func TestWantErr(t *testing.T) {
	// check runs WantErr(err, want) and compares what it returned and the
	// failure it reported ("" for none) with the wanted ones.
	check := func(err error, want string, wantDone bool, wantFatal string) {
		t.Helper()
		done := false
		r := record(func(rt testing.TB) { done = WantErr(rt, err, want) })
		if r.fatal != wantFatal {
			t.Errorf("WantErr(%v, %q): failure %q, want %q", err, want, r.fatal, wantFatal)
		}
		if wantFatal == "" && done != wantDone {
			t.Errorf("WantErr(%v, %q) = %t, want %t", err, want, done, wantDone)
		}
	}
	check(errors.New("boom"), "", false, "")                    // no error wanted: left to the caller
	check(errors.New("port 80 is taken"), "is taken", true, "") // the wanted error
	check(errors.New("boom"), "is taken", false, `error boom, want one saying "is taken"`)
	check(nil, "is taken", false, `error <nil>, want one saying "is taken"`)
}

func TestContainsAll(t *testing.T) {
	r := record(func(rt testing.TB) { ContainsAll(rt, "status output", "a: 1\nb: 2\n", "a: 1", "c: 3", "b: 2", "d") })
	want := []string{"status output lacks \"c: 3\":\na: 1\nb: 2\n", "status output lacks \"d\":\na: 1\nb: 2\n"}
	if !slices.Equal(r.errors, want) || r.fatal != "" {
		t.Fatalf("errors %q, fatal %q; want errors %q", r.errors, r.fatal, want)
	}
	if r := record(func(rt testing.TB) { ContainsAll(rt, "x", "abc", "a", "bc") }); len(r.errors) != 0 {
		t.Fatalf("errors %q for present strings", r.errors)
	}
}

func TestContainsInOrder(t *testing.T) {
	tests := []struct {
		got       string
		wants     []string
		wantFatal string
	}{
		{got: "field a: bad value b", wants: []string{"a", "bad", "b"}},
		{got: "field a: bad value b", wants: []string{"bad", "field"}, wantFatal: `error "field a: bad value b" lacks "field" (in order)`},
		// Overlapping matches do not count: "aa" once is not "a" then "aa".
		{got: "xaa", wants: []string{"a", "aa"}, wantFatal: `error "xaa" lacks "aa" (in order)`},
	}
	for _, tt := range tests {
		r := record(func(rt testing.TB) { ContainsInOrder(rt, "error", tt.got, tt.wants...) })
		if r.fatal != tt.wantFatal {
			t.Errorf("ContainsInOrder(%q, %q): failure %q, want %q", tt.got, tt.wants, r.fatal, tt.wantFatal)
		}
	}
}
