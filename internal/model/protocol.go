package model

import "strings"

// Protocol is the application protocol of a service port, named as Istio
// names it (the strings istioctl and istiod's debug output show).
type Protocol string

// Protocols a port may carry.
const (
	ProtocolHTTP      Protocol = "HTTP"
	ProtocolHTTP2     Protocol = "HTTP2"
	ProtocolGRPC      Protocol = "GRPC"
	ProtocolGRPCWeb   Protocol = "GRPC-Web"
	ProtocolHTTPProxy Protocol = "HTTP_PROXY"
	ProtocolHTTPS     Protocol = "HTTPS"
	ProtocolTCP       Protocol = "TCP"
	ProtocolTLS       Protocol = "TLS"
	ProtocolUDP       Protocol = "UDP"
	ProtocolSCTP      Protocol = "SCTP"
	ProtocolMongo     Protocol = "Mongo"
	ProtocolRedis     Protocol = "Redis"
	ProtocolMySQL     Protocol = "MySQL"
	// ProtocolUnsupported is a port whose protocol the name does not tell:
	// a sidecar sniffs it (HTTP or TCP, decided per connection).
	ProtocolUnsupported Protocol = "UnsupportedProtocol"
)

// ParseProtocol reads a protocol name as Istio does, ignoring case;
// anything it does not know is ProtocolUnsupported.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "http":
		return ProtocolHTTP
	case "http2":
		return ProtocolHTTP2
	case "grpc":
		return ProtocolGRPC
	case "grpc-web":
		return ProtocolGRPCWeb
	case "http_proxy":
		return ProtocolHTTPProxy
	case "https":
		return ProtocolHTTPS
	case "tcp":
		return ProtocolTCP
	case "tls":
		return ProtocolTLS
	case "udp":
		return ProtocolUDP
	case "mongo":
		return ProtocolMongo
	case "redis":
		return ProtocolRedis
	case "mysql":
		return ProtocolMySQL
	}
	return ProtocolUnsupported
}

// wellKnownTCPPort are server-first protocols' ports (SMTP, DNS, MySQL,
// MongoDB) that sniffing would break: an unnamed port among them is TCP.
func wellKnownTCPPort(port uint32) bool {
	switch port {
	case 25, 53, 3306, 27017:
		return true
	}
	return false
}

// PortProtocol is the application protocol of a service (or container)
// port, by Istio's rules:
//
//  1. L4 UDP is UDP and SCTP is SCTP, whatever the name says.
//  2. appProtocol, when set, is read instead of the name; the Kubernetes
//     standard values kubernetes.io/h2c, kubernetes.io/ws and
//     kubernetes.io/wss are HTTP2, HTTP and HTTPS.
//  3. A name starting with grpc-web is GRPC-Web; otherwise the part of the
//     name before the first "-" is parsed (http-api is HTTP, tcp is TCP,
//     httpapi is not known).
//  4. An unknown protocol on port 25, 53, 3306 or 27017 is TCP; elsewhere
//     it stays ProtocolUnsupported, which sidecars sniff.
func PortProtocol(p ServicePort) Protocol {
	switch strings.ToUpper(p.Protocol) {
	case "UDP":
		return ProtocolUDP
	case "SCTP":
		return ProtocolSCTP
	}
	name := p.Name
	if p.AppProtocol != "" {
		name = p.AppProtocol
		switch name {
		case "kubernetes.io/h2c":
			return ProtocolHTTP2
		case "kubernetes.io/ws":
			return ProtocolHTTP
		case "kubernetes.io/wss":
			return ProtocolHTTPS
		}
	}
	const grpcWeb = "grpc-web"
	if len(name) >= len(grpcWeb) && strings.EqualFold(name[:len(grpcWeb)], grpcWeb) {
		return ProtocolGRPCWeb
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	proto := ParseProtocol(name)
	if proto == ProtocolUDP {
		// A TCP port named udp-... is not UDP; Istio leaves it unknown.
		proto = ProtocolUnsupported
	}
	if proto == ProtocolUnsupported && wellKnownTCPPort(p.Port) {
		return ProtocolTCP
	}
	return proto
}

// IsHTTP reports whether a sidecar proxies the protocol as HTTP (an HTTP
// connection manager with routes).
func (p Protocol) IsHTTP() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolGRPCWeb, ProtocolHTTPProxy:
		return true
	}
	return false
}

// IsHTTP2 reports whether the protocol runs over HTTP/2 (its upstream
// connections must be HTTP/2).
func (p Protocol) IsHTTP2() bool {
	switch p {
	case ProtocolHTTP2, ProtocolGRPC, ProtocolGRPCWeb:
		return true
	}
	return false
}

// IsTCP reports whether a sidecar proxies the protocol as opaque TCP
// (tcp_proxy): TCP, and the TLS and database protocols it does not parse.
func (p Protocol) IsTCP() bool {
	switch p {
	case ProtocolTCP, ProtocolHTTPS, ProtocolTLS, ProtocolMongo, ProtocolRedis, ProtocolMySQL:
		return true
	}
	return false
}

// IsUnsupported reports whether the protocol is unknown: sniffed.
func (p Protocol) IsUnsupported() bool { return p == ProtocolUnsupported }
