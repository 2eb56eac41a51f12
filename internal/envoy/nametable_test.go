package envoy

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/causeway-mesh/causeway/internal/model"
)

// wireNameInfo is NameTable.NameInfo as read straight off the wire, by
// Istio's field numbers (nds.proto): ips 1, registry 2, shortname 3,
// namespace 4.
type wireNameInfo struct {
	IPs       []string
	Registry  string
	Shortname string
	Namespace string
}

// decodeWireNameTable reads NameTable bytes with protowire only, so that
// the test checks the field numbers and types Istio's agent decodes, not
// the descriptor against itself: table is field 1, a map of string keys
// (entry field 1) to NameInfo values (entry field 2).
func decodeWireNameTable(t *testing.T, b []byte) map[string]wireNameInfo {
	t.Helper()
	out := map[string]wireNameInfo{}
	fields := func(b []byte, f func(num protowire.Number, v []byte)) {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || typ != protowire.BytesType {
				t.Fatalf("field %d of wire type %d: want length-delimited only", num, typ)
			}
			b = b[n:]
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				t.Fatalf("bad bytes of field %d", num)
			}
			b = b[m:]
			f(num, v)
		}
	}
	fields(b, func(num protowire.Number, entry []byte) {
		if num != 1 {
			t.Fatalf("NameTable field %d set; want only table (1)", num)
		}
		var key string
		var info wireNameInfo
		fields(entry, func(num protowire.Number, v []byte) {
			switch num {
			case 1:
				key = string(v)
			case 2:
				fields(v, func(num protowire.Number, v []byte) {
					switch num {
					case 1:
						info.IPs = append(info.IPs, string(v))
					case 2:
						info.Registry = string(v)
					case 3:
						info.Shortname = string(v)
					case 4:
						info.Namespace = string(v)
					default:
						t.Fatalf("NameInfo field %d set", num)
					}
				})
			}
		})
		out[key] = info
	})
	return out
}

func TestNameTableWire(t *testing.T) {
	entries := []model.NameEntry{
		{Host: "helloworld.sample.svc.cluster.local", Addresses: []string{"10.1.100.1"}, Name: "helloworld", Namespace: "sample"},
		{Host: "db.sample.svc.cluster.local", Addresses: []string{"10.1.0.7", "10.1.0.8"}, Name: "db", Namespace: "sample"},
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(NameTable(entries))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]wireNameInfo{
		"helloworld.sample.svc.cluster.local": {IPs: []string{"10.1.100.1"}, Registry: "Kubernetes", Shortname: "helloworld", Namespace: "sample"},
		"db.sample.svc.cluster.local":         {IPs: []string{"10.1.0.7", "10.1.0.8"}, Registry: "Kubernetes", Shortname: "db", Namespace: "sample"},
	}
	if diff := cmp.Diff(want, decodeWireNameTable(t, b)); diff != "" {
		t.Errorf("name table on the wire (-want +got):\n%s", diff)
	}
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(NameTable(entries))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("two marshals of one table differ: caches compare resources by their bytes")
	}
	if got := string(NameTable(nil).ProtoReflect().Descriptor().FullName()); "type.googleapis.com/"+got != NameTableType {
		t.Errorf("message %s does not match type URL %s", got, NameTableType)
	}
}
