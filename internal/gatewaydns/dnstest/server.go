// Package dnstest runs a real DNS server on loopback (miekg/dns, UDP) whose
// answers a test sets and changes, for tests of gateway hostname
// resolution.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server answers A and AAAA queries from its records; a name without
// records is NXDOMAIN, and while failing every query is SERVFAIL.
type Server struct {
	// Addr is the server's HOST:PORT.
	Addr string

	srv     *dns.Server
	queries atomic.Int64

	mu      sync.Mutex
	records map[string][]string
	ttl     uint32
	failing bool
}

// Start runs a server on a free loopback UDP port until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), records: map[string][]string{}, ttl: 60}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = s.srv.Shutdown()
		<-done
	})
	return s
}

// Set makes name answer ips (IPv4 as A, IPv6 as AAAA records) with TTL
// ttl seconds; no ips: NXDOMAIN.
func (s *Server) Set(name string, ttl uint32, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[dns.Fqdn(strings.ToLower(name))] = ips
	s.ttl = ttl
}

// Fail makes every query fail with SERVFAIL (true) or be answered again.
func (s *Server) Fail(failing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = failing
}

// Queries is how many queries the server received.
func (s *Server) Queries() int64 { return s.queries.Load() }

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	s.mu.Lock()
	failing, ttl := s.failing, s.ttl
	var ips []string
	var known bool
	if len(r.Question) == 1 {
		ips, known = s.records[strings.ToLower(r.Question[0].Name)]
	}
	s.mu.Unlock()
	switch {
	case failing:
		m.Rcode = dns.RcodeServerFailure
	case len(r.Question) != 1 || !known || len(ips) == 0:
		m.Rcode = dns.RcodeNameError
	default:
		q := r.Question[0]
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				continue
			}
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: ttl}
			switch {
			case a.Is4() && q.Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
			case a.Is6() && q.Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
			}
		}
	}
	_ = w.WriteMsg(m)
}
