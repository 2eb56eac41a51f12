package testkit

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// MustAny wraps m in an Any, as xDS carries typed configuration, and
// fails the test if it cannot.
func MustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatalf("wrap a %T in an Any: %v", m, err)
	}
	return a
}
