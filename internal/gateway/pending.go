package gateway

import (
	"container/list"
	"net"
	"sync"
	"sync/atomic"
)

// pendingHellos holds the connections that have not sent a whole ClientHello
// yet, oldest first, at most max of them over all listeners. When a new
// connection would exceed max, the oldest is closed at once: a client that
// stalls mid-hello cannot hold the gateway's descriptors and buffers, and a
// real client, whose hello follows its connect within a round trip, still
// gets in while the attack goes on. Rejecting the newest instead would lock
// every real client out for as long as the attacker keeps the slots full.
type pendingHellos struct {
	max int
	mu  sync.Mutex
	l   list.List // of *pendingConn
}

// pendingConn is a connection waiting for its ClientHello.
type pendingConn struct {
	c *net.TCPConn
	// evicted is set when the connection was closed to make room.
	evicted atomic.Bool
	elem    *list.Element
}

// add records c and closes the oldest pending connection when there are now
// more than max.
func (p *pendingHellos) add(c *net.TCPConn) *pendingConn {
	pc := &pendingConn{c: c}
	var victim *pendingConn
	p.mu.Lock()
	pc.elem = p.l.PushBack(pc)
	if p.l.Len() > p.max {
		victim = p.l.Remove(p.l.Front()).(*pendingConn)
		victim.elem = nil
	}
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
