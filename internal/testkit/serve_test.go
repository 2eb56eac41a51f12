package testkit

import (
	"bufio"
	"io"
	"net"
	"testing"
)

func TestServeHandlesEachConnectionUntilTheTestEnds(t *testing.T) {
	var addr string
	t.Run("serving", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		Serve(t, ln, func(c net.Conn) {
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				_, _ = io.WriteString(c, "echo "+line)
			}
		})
		for _, msg := range []string{"one\n", "two\n"} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			// The handler's connection is closed after it: ReadAll ends.
			got, err := io.ReadAll(c)
			_ = c.Close()
			if err != nil || string(got) != "echo "+msg {
				t.Fatalf("answer %q, %v; want %q", got, err, "echo "+msg)
			}
		}
	})
	if c, err := net.Dial("tcp", addr); err == nil {
		_ = c.Close()
		t.Fatal("the listener still accepts after its test ended")
	}
}
