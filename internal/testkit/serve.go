package testkit

import (
	"net"
	"sync"
	"testing"
)

// Serve accepts connections on ln until the test ends, each on its own
// goroutine: handle serves it, then it is closed. When the test ends, ln is
// closed and every handler is waited for (a handler must return once its
// peer has gone).
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
}
