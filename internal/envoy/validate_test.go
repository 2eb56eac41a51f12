package envoy

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validateDeep runs Envoy's proto validation (protoc-gen-validate's
// ValidateAll) on m and on every message inside it, typed configs (Any)
// included: ValidateAll alone stops at an Any.
func validateDeep(t *testing.T, m proto.Message) {
	t.Helper()
	if m == nil {
		t.Fatal("builder returned nil")
	}
	if err := validateMessage(m.ProtoReflect()); err != nil {
		t.Errorf("%s fails validation: %v", m.ProtoReflect().Descriptor().FullName(), err)
	}
}

func validateMessage(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("typed config %s: %w", a.GetTypeUrl(), err)
		}
		if err := validateMessage(inner.ProtoReflect()); err != nil {
			return fmt.Errorf("typed config %s: %w", a.GetTypeUrl(), err)
		}
		return nil
	}
	var errs []error
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Descriptor().FullName(), err))
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				errs = append(errs, validateMessage(l.Get(i).Message()))
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				errs = append(errs, validateMessage(mv.Message()))
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			errs = append(errs, validateMessage(v.Message()))
		}
		return true
	})
	return errors.Join(errs...)
}

// TestValidateDeepCatchesNestedErrors proves the helper looks inside typed
// configs: an HTTP connection manager without its required stat_prefix,
// wrapped in a listener, must fail.
func TestValidateDeepCatchesNestedErrors(t *testing.T) {
	l := sidecarListener(5000)
	if err := validateMessage(l.ProtoReflect()); err != nil {
		t.Fatalf("valid listener rejected: %v", err)
	}
	bad := GRPCListener(helloworld(), helloworld().Ports[0])
	bad.ApiListener.ApiListener.Value = nil // an HCM with nothing set
	if err := bad.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll looked inside the Any after all (%v): the helper is moot", err)
	}
	if err := validateMessage(bad.ProtoReflect()); err == nil {
		t.Fatal("validateMessage accepted an HTTP connection manager without stat_prefix and routes")
	}
}
