package testkit

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. Another process may take one before the caller binds it; a
// start on a taken port then fails clearly.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free loopback port: %w", err)
		}
		listeners = append(listeners, l)
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("pick a free loopback port: unexpected address %v", l.Addr())
		}
		ports = append(ports, addr.Port)
	}
	return ports, nil
}

// FreeAddrs returns n distinct 127.0.0.1:PORT addresses that were free a
// moment ago, and fails the test if none can be picked.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs, err := FreeLoopbackAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// FreeLoopbackAddrs is FreeAddrs for a caller without a test (a benchmark
// harness): it returns the error.
func FreeLoopbackAddrs(n int) ([]string, error) {
	ports, err := FreePorts(n)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 0, n)
	for _, p := range ports {
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	}
	return addrs, nil
}

// FreeAddr returns one 127.0.0.1:PORT address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrs(t, 1)[0]
}
