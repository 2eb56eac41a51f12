package envoy

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/causeway-mesh/causeway/internal/model"
)

// NameTableType is the type URL of Istio's name table (NDS), which
// pilot-agent asks for when DNS capture is on (ISTIO_META_DNS_CAPTURE).
const NameTableType = "type.googleapis.com/istio.networking.nds.v1.NameTable"

// registryKubernetes is NameInfo.registry of a Kubernetes Service, the
// value with which pilot-agent also answers the short names.
const registryKubernetes = "Kubernetes"

// The name table message is Istio's istio.networking.nds.v1.NameTable
// (istio.io/istio, pkg/dns/proto/nds.proto), which neither istio.io/api nor
// go-control-plane carries: rather than depend on all of istio.io/istio, its
// descriptor is declared here, field for field (names, numbers and types as
// Istio's, so the bytes are the same), and messages are built with
// dynamicpb. What it declares:
//
//	message NameTable {
//	  message NameInfo {
//	    repeated string ips = 1;
//	    string registry = 2;
//	    string shortname = 3;
//	    string namespace = 4;
//	    repeated string alt_hosts = 5; // deprecated, never set
//	  }
//	  map<string, NameInfo> table = 1;
//	  NameInfo name_info = 2;          // never set by istiod's NDS
//	}
var nameTableDesc, nameInfoDesc = mustNameTableDescriptors()

func mustNameTableDescriptors() (table, info protoreflect.MessageDescriptor) {
	str := func(name string, num int32, rep bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if rep {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		return &descriptorpb.FieldDescriptorProto{
			Name: new(name), Number: new(num), Label: label.Enum(),
			Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), JsonName: new(jsonName(name)),
		}
	}
	msg := func(name string, num int32, typeName string, rep bool) *descriptorpb.FieldDescriptorProto {
		f := str(name, num, rep)
		f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		f.TypeName = new(typeName)
		return f
	}
	const pkg = "istio.networking.nds.v1"
	fd := &descriptorpb.FileDescriptorProto{
		Name:    new("causeway/nds.proto"),
		Package: new(pkg),
		Syntax:  new("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: new("NameTable"),
			Field: []*descriptorpb.FieldDescriptorProto{
				msg("table", 1, "."+pkg+".NameTable.TableEntry", true),
				msg("name_info", 2, "."+pkg+".NameTable.NameInfo", false),
			},
			NestedType: []*descriptorpb.DescriptorProto{{
				Name: new("NameInfo"),
				Field: []*descriptorpb.FieldDescriptorProto{
					str("ips", 1, true), str("registry", 2, false), str("shortname", 3, false),
					str("namespace", 4, false), str("alt_hosts", 5, true),
				},
			}, {
				Name: new("TableEntry"),
				Field: []*descriptorpb.FieldDescriptorProto{
					str("key", 1, false),
					msg("value", 2, "."+pkg+".NameTable.NameInfo", false),
				},
				Options: &descriptorpb.MessageOptions{MapEntry: new(true)},
			}},
		}},
	}
	// A private registry: the descriptor must not clash with Istio's own
	// should both ever be linked into one binary.
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(fmt.Sprintf("the NameTable descriptor is invalid: %v", err))
	}
	table = f.Messages().ByName("NameTable")
	return table, table.Messages().ByName("NameInfo")
}

func jsonName(s string) string {
	out := make([]byte, 0, len(s))
	up := false
	for i := range len(s) {
		switch c := s[i]; {
		case c == '_':
			up = true
		case up && c >= 'a' && c <= 'z':
			out = append(out, c-'a'+'A')
			up = false
		default:
			out = append(out, c)
			up = false
		}
	}
	return string(out)
}

// NameTable is the NDS resource of a name table (model.Snapshot.NameTable):
// Istio's NameTable, one entry per host, each with its addresses, registry
// "Kubernetes", and the Service's name and namespace (pilot-agent answers
// NAME, NAME.NS and NAME.NS.svc from them). The result marshals to the same
// bytes as Istio's generated type; its type URL is NameTableType.
func NameTable(entries []model.NameEntry) proto.Message {
	m := dynamicpb.NewMessage(nameTableDesc)
	tableField := nameTableDesc.Fields().ByName("table")
	table := m.Mutable(tableField).Map()
	infoFields := nameInfoDesc.Fields()
	ips, registry, shortname, namespace := infoFields.ByName("ips"), infoFields.ByName("registry"),
		infoFields.ByName("shortname"), infoFields.ByName("namespace")
	for _, e := range entries {
		info := dynamicpb.NewMessage(nameInfoDesc)
		list := info.Mutable(ips).List()
		for _, a := range e.Addresses {
			list.Append(protoreflect.ValueOfString(a))
		}
		info.Set(registry, protoreflect.ValueOfString(registryKubernetes))
		if e.Name != "" {
			info.Set(shortname, protoreflect.ValueOfString(e.Name))
		}
		if e.Namespace != "" {
			info.Set(namespace, protoreflect.ValueOfString(e.Namespace))
		}
		table.Set(protoreflect.ValueOfString(string(e.Host)).MapKey(), protoreflect.ValueOfMessage(info))
	}
	return m
}
