package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPortProtocol(t *testing.T) {
	tests := []struct {
		port ServicePort
		want Protocol
	}{
		{ServicePort{Name: "http", Port: 5000}, ProtocolHTTP},
		{ServicePort{Name: "HTTP-web", Port: 80}, ProtocolHTTP},
		{ServicePort{Name: "http2", Port: 80}, ProtocolHTTP2},
		{ServicePort{Name: "grpc", Port: 9000}, ProtocolGRPC},
		{ServicePort{Name: "grpc-web", Port: 9000}, ProtocolGRPCWeb},
		{ServicePort{Name: "grpc-webui", Port: 9000}, ProtocolGRPCWeb},
		{ServicePort{Name: "grpc-api", Port: 9000}, ProtocolGRPC},
		{ServicePort{Name: "https", Port: 443}, ProtocolHTTPS},
		{ServicePort{Name: "tls-passthrough", Port: 15443}, ProtocolTLS},
		{ServicePort{Name: "tcp", Port: 6379}, ProtocolTCP},
		{ServicePort{Name: "mongo", Port: 27017}, ProtocolMongo},
		{ServicePort{Name: "redis", Port: 6379}, ProtocolRedis},
		{ServicePort{Name: "mysql", Port: 3306}, ProtocolMySQL},
		{ServicePort{Name: "http_proxy", Port: 3128}, ProtocolHTTPProxy},
		// The prefix is what stands before the first "-".
		{ServicePort{Name: "httpapi", Port: 8080}, ProtocolUnsupported},
		{ServicePort{Name: "web", Port: 80}, ProtocolUnsupported},
		{ServicePort{Port: 443}, ProtocolUnsupported},
		// Unknown on a well-known server-first port is TCP.
		{ServicePort{Port: 3306}, ProtocolTCP},
		{ServicePort{Name: "db", Port: 27017}, ProtocolTCP},
		{ServicePort{Name: "smtp", Port: 25}, ProtocolTCP},
		{ServicePort{Name: "dns", Port: 53}, ProtocolTCP},
		// A TCP port named udp is not UDP.
		{ServicePort{Name: "udp", Port: 1000}, ProtocolUnsupported},
		// L4 decides first.
		{ServicePort{Name: "http", Port: 53, Protocol: "UDP"}, ProtocolUDP},
		{ServicePort{Name: "http", Port: 80, Protocol: "SCTP"}, ProtocolSCTP},
		{ServicePort{Name: "http", Port: 80, Protocol: "TCP"}, ProtocolHTTP},
		// appProtocol is read instead of the name.
		{ServicePort{Name: "web", Port: 80, AppProtocol: "http"}, ProtocolHTTP},
		{ServicePort{Name: "http", Port: 80, AppProtocol: "tcp"}, ProtocolTCP},
		{ServicePort{Name: "http", Port: 80, AppProtocol: "kubernetes.io/h2c"}, ProtocolHTTP2},
		{ServicePort{Name: "tcp", Port: 80, AppProtocol: "kubernetes.io/ws"}, ProtocolHTTP},
		{ServicePort{Name: "http", Port: 443, AppProtocol: "kubernetes.io/wss"}, ProtocolHTTPS},
		{ServicePort{Name: "http", Port: 80, AppProtocol: "example.com/custom"}, ProtocolUnsupported},
		{ServicePort{Name: "tcp", Port: 9000, AppProtocol: "grpc-web"}, ProtocolGRPCWeb},
	}
	for _, tt := range tests {
		got := PortProtocol(tt.port)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("PortProtocol(%+v) (-want +got):\n%s", tt.port, diff)
		}
	}
}

func TestProtocolClasses(t *testing.T) {
	type class struct{ HTTP, HTTP2, TCP, Unsupported bool }
	tests := map[Protocol]class{
		ProtocolHTTP:        {HTTP: true},
		ProtocolHTTP2:       {HTTP: true, HTTP2: true},
		ProtocolGRPC:        {HTTP: true, HTTP2: true},
		ProtocolGRPCWeb:     {HTTP: true, HTTP2: true},
		ProtocolHTTPProxy:   {HTTP: true},
		ProtocolHTTPS:       {TCP: true},
		ProtocolTLS:         {TCP: true},
		ProtocolTCP:         {TCP: true},
		ProtocolMongo:       {TCP: true},
		ProtocolRedis:       {TCP: true},
		ProtocolMySQL:       {TCP: true},
		ProtocolUDP:         {},
		ProtocolSCTP:        {},
		ProtocolUnsupported: {Unsupported: true},
	}
	for p, want := range tests {
		got := class{p.IsHTTP(), p.IsHTTP2(), p.IsTCP(), p.IsUnsupported()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
}
