package gateway

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pendingHellos holds the connections that have not sent a whole ClientHello
// yet, oldest first, at most max of them over all listeners. When a new
// connection would exceed max, the oldest is closed at once if it has waited
// longer than grace, else the new one is: a client that stalls mid-hello
// cannot hold the gateway's descriptors and buffers for the hello timeout,
// and a real client, whose hello follows its connect within a round trip,
// gets a slot that is its own for grace. Only ever rejecting the newest
// would lock real clients out for as long as an attacker keeps the slots
// full; only ever evicting the oldest would let a flood of new connections
// evict a real client before its hello arrives.
type pendingHellos struct {
	max   int
	grace time.Duration
	mu    sync.Mutex
	l     list.List // of *pendingConn
}

// pendingConn is a connection waiting for its ClientHello.
type pendingConn struct {
	c     *net.TCPConn
	since time.Time
	// evicted is set when the connection was closed to make room.
	evicted atomic.Bool
	elem    *list.Element
}

// add records c, accepted at now. At the cap it closes the oldest pending
// connection if that one has waited longer than grace; else it returns nil
// and c is the caller's to close.
func (p *pendingHellos) add(c *net.TCPConn, now time.Time) *pendingConn {
	pc := &pendingConn{c: c, since: now}
	var victim *pendingConn
	p.mu.Lock()
	if p.l.Len() >= p.max {
		oldest := p.l.Front().Value.(*pendingConn)
		if now.Sub(oldest.since) <= p.grace {
			p.mu.Unlock()
			return nil
		}
		victim = p.l.Remove(p.l.Front()).(*pendingConn)
		victim.elem = nil
	}
	pc.elem = p.l.PushBack(pc)
	p.mu.Unlock()
	if victim != nil {
		victim.evicted.Store(true)
		_ = victim.c.SetLinger(0) // a reset: nothing lingers in TIME_WAIT
		_ = victim.c.Close()      // its reader sees the error and reports hello_limit
	}
	return pc
}

// done removes pc once its hello is read (or failed); it reports whether pc
// was evicted to make room.
func (p *pendingHellos) done(pc *pendingConn) (evicted bool) {
	p.mu.Lock()
	if pc.elem != nil {
		p.l.Remove(pc.elem)
		pc.elem = nil
	}
	p.mu.Unlock()
	return pc.evicted.Load()
}

// len is the number of pending connections.
func (p *pendingHellos) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l.Len()
}
