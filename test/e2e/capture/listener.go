package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Transport protocols, as the TLS inspector reports them.
const (
	TransportTLS = "tls"
	TransportRaw = "raw_buffer"
)

// ErrNoChain says a listener has no filter chain for a connection and no
// default chain: Envoy closes such a connection.
var ErrNoChain = errors.New("no filter chain matches the connection and the listener has no default chain: Envoy closes it")

// Conn is what Envoy knows of a connection when it picks a filter chain:
// its original destination and source, and what the listener filters (the
// TLS inspector, the HTTP inspector) saw.
type Conn struct {
	// Dst is the original destination (SO_ORIGINAL_DST after iptables).
	Dst netip.AddrPort
	// Src is the peer's address; zero when unknown (then chains that
	// match on the source do not match).
	Src netip.AddrPort
	// Transport is TransportTLS or TransportRaw.
	Transport string
	// ALPN is the ClientHello's protocols for TLS, or for plaintext what
	// the HTTP inspector reports ("http/1.1", "h2c"), or nothing.
	ALPN []string
	// SNI is the ClientHello's server name, empty for plaintext.
	SNI string
}

// addrOf is a listener's socket address, or an error for a pipe or an
// address that is not an IP.
func addrOf(l *listenerv3.Listener) (netip.AddrPort, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return netip.AddrPort{}, fmt.Errorf("listener %s has no socket address", l.GetName())
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listener %s: address %q: %w", l.GetName(), sa.GetAddress(), err)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return netip.AddrPort{}, fmt.Errorf("listener %s is %v, not TCP", l.GetName(), sa.GetProtocol())
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("listener %s: port %d (named ports are not supported)", l.GetName(), port)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
}

// ListenerAt is the listener Envoy would accept a connection to addr on,
// or hand one with original destination addr to: the listener at exactly
// addr, else the one at the wildcard address of its family with that port.
// It returns nil when there is none.
func ListenerAt(ls []*listenerv3.Listener, addr netip.AddrPort) (*listenerv3.Listener, error) {
	var wildcard *listenerv3.Listener
	for _, l := range ls {
		a, err := addrOf(l)
		if err != nil {
			return nil, err
		}
		if a.Port() != addr.Port() {
			continue
		}
		if a.Addr() == addr.Addr().Unmap() {
			return l, nil
		}
		if a.Addr().IsUnspecified() && a.Addr().Is4() == addr.Addr().Unmap().Is4() && wildcard == nil {
			wildcard = l
		}
	}
	return wildcard, nil
}

// OutboundListener is the listener that serves an outbound connection to
// dst once iptables has redirected it to port capturePort (15001): the
// listener there must have use_original_dst; it hands the connection to
// ListenerAt(dst) when there is one (other than itself), else keeps it.
func OutboundListener(ls []*listenerv3.Listener, capturePort uint16, dst netip.AddrPort) (*listenerv3.Listener, error) {
	virtual, err := ListenerAt(ls, netip.AddrPortFrom(netip.IPv4Unspecified(), capturePort))
	if err != nil {
		return nil, err
	}
	if virtual == nil {
		return nil, fmt.Errorf("no listener at 0.0.0.0:%d: iptables would send every outbound connection there and Envoy would refuse it", capturePort)
	}
	if !virtual.GetUseOriginalDst().GetValue() {
		return nil, fmt.Errorf("listener %s at port %d does not have use_original_dst: captured connections would never reach the listeners of their destinations", virtual.GetName(), capturePort)
	}
	l, err := ListenerAt(ls, dst)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return virtual, nil
	}
	return l, nil
}

// MatchChain is the filter chain Envoy picks for c on l: the chains whose
// match is met are narrowed criterion by criterion, in Envoy's order
// (destination port, destination IP, server name, transport protocol,
// application protocols, direct source IP, source type, source IP, source
// port), each time keeping only the most specific ones; when none is left
// the listener's default chain is used, and without one ErrNoChain is
// returned. More than one chain left is an error (Envoy rejects such a
// listener).
func MatchChain(l *listenerv3.Listener, c Conn) (*listenerv3.FilterChain, error) {
	if l.GetFilterChainMatcher() != nil {
		return nil, fmt.Errorf("listener %s uses filter_chain_matcher, which this interpreter does not read", l.GetName())
	}
	chains := slices.Clone(l.GetFilterChains())
	steps := []func([]*listenerv3.FilterChain, Conn) ([]*listenerv3.FilterChain, error){
		byDestinationPort, byDestinationIP, byServerName, byTransport, byALPN,
		byDirectSource, bySourceType, bySourceIP, bySourcePort,
	}
	for _, step := range steps {
		var err error
		chains, err = step(chains, c)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
		}
		if len(chains) == 0 {
			break
		}
	}
	switch len(chains) {
	case 0:
		if d := l.GetDefaultFilterChain(); d != nil {
			return d, nil
		}
		return nil, fmt.Errorf("listener %s, connection to %v (%s, ALPN %v, SNI %q): %w", l.GetName(), c.Dst, c.Transport, c.ALPN, c.SNI, ErrNoChain)
	case 1:
		return chains[0], nil
	default:
		names := make([]string, 0, len(chains))
		for _, fc := range chains {
			names = append(names, fc.GetName())
		}
		return nil, fmt.Errorf("listener %s: chains %v all match a connection to %v (%s, ALPN %v): Envoy rejects a listener with overlapping matches", l.GetName(), names, c.Dst, c.Transport, c.ALPN)
	}
}

// narrow keeps the chains of the best (highest) rank that match; rank < 0
// means the chain does not match. A chain without the criterion must get
// rank 0, one that names it a higher rank when it matches.
func narrow(chains []*listenerv3.FilterChain, rank func(*listenerv3.FilterChainMatch) (int, error)) ([]*listenerv3.FilterChain, error) {
	best := -1
	var out []*listenerv3.FilterChain
	for _, fc := range chains {
		r, err := rank(fc.GetFilterChainMatch())
		if err != nil {
			return nil, fmt.Errorf("chain %q: %w", fc.GetName(), err)
		}
		switch {
		case r < 0 || r < best:
		case r > best:
			best, out = r, []*listenerv3.FilterChain{fc}
		default:
			out = append(out, fc)
		}
	}
	return out, nil
}

func byDestinationPort(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		if m.GetDestinationPort() == nil {
			return 0, nil
		}
		if m.GetDestinationPort().GetValue() == uint32(c.Dst.Port()) {
			return 1, nil
		}
		return -1, nil
	})
}

// prefixRank is 1 + the longest prefix of ranges that holds ip, 0 for no
// ranges, -1 when none holds it.
func prefixRank(ranges []*corev3.CidrRange, ip netip.Addr) (int, error) {
	if len(ranges) == 0 {
		return 0, nil
	}
	best := -1
	for _, r := range ranges {
		a, err := netip.ParseAddr(r.GetAddressPrefix())
		if err != nil {
			return 0, fmt.Errorf("prefix %q: %w", r.GetAddressPrefix(), err)
		}
		bits := a.BitLen()
		if r.GetPrefixLen() != nil {
			bits = int(r.GetPrefixLen().GetValue())
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return 0, fmt.Errorf("prefix %s/%d: %w", a, bits, err)
		}
		if ip.IsValid() && p.Contains(ip.Unmap()) {
			best = max(best, bits+1)
		}
	}
	return best, nil
}

func byDestinationIP(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		return prefixRank(m.GetPrefixRanges(), c.Dst.Addr())
	})
}

func byServerName(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	sni := strings.ToLower(c.SNI)
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		if len(m.GetServerNames()) == 0 {
			return 0, nil
		}
		best := -1
		for _, n := range m.GetServerNames() {
			n = strings.ToLower(n)
			switch {
			case sni == "":
			case n == sni:
				best = max(best, 2*len(n)+2)
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]):
				best = max(best, 2*len(n)+1)
			}
		}
		return best, nil
	})
}

func byTransport(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		switch m.GetTransportProtocol() {
		case "":
			return 0, nil
		case c.Transport:
			return 1, nil
		default:
			return -1, nil
		}
	})
}

func byALPN(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		if len(m.GetApplicationProtocols()) == 0 {
			return 0, nil
		}
		for _, p := range c.ALPN {
			if slices.Contains(m.GetApplicationProtocols(), p) {
				return 1, nil
			}
		}
		return -1, nil
	})
}

func byDirectSource(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		return prefixRank(m.GetDirectSourcePrefixRanges(), c.Src.Addr())
	})
}

func bySourceType(chains []*listenerv3.FilterChain, _ Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		if m.GetSourceType() != listenerv3.FilterChainMatch_ANY {
			return 0, fmt.Errorf("source_type %v is not interpreted", m.GetSourceType())
		}
		return 0, nil
	})
}

func bySourceIP(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		return prefixRank(m.GetSourcePrefixRanges(), c.Src.Addr())
	})
}

func bySourcePort(chains []*listenerv3.FilterChain, c Conn) ([]*listenerv3.FilterChain, error) {
	return narrow(chains, func(m *listenerv3.FilterChainMatch) (int, error) {
		if len(m.GetSourcePorts()) == 0 {
			return 0, nil
		}
		if slices.Contains(m.GetSourcePorts(), uint32(c.Src.Port())) {
			return 1, nil
		}
		return -1, nil
	})
}
