package testkit

import (
	"bufio"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os/exec"
	"testing"
	"time"
)

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	n := 0
	Eventually(t, 10*time.Second, "third poll", func() string {
		n++
		if n < 3 {
			return "not yet"
		}
		return ""
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestFreeAddrsAreDistinct(t *testing.T) {
	addrs := FreeAddrs(t, 4)
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("address %s returned twice in %v", a, addrs)
		}
		seen[a] = true
	}
}

// A process that ignores SIGTERM is killed after the grace.
func TestStopKillsAfterGrace(t *testing.T) {
	cmd := exec.Command("sh", "-c", `trap "" TERM; echo ready; while :; do sleep 1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The trap is set once the shell says so.
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { err = cmd.Wait(); close(done) }()
	Stop(cmd.Process, done, 200*time.Millisecond)
	if cmd.ProcessState == nil || cmd.ProcessState.String() != "signal: killed" {
		t.Fatalf("process ended with %v (state %v), want killed", err, cmd.ProcessState)
	}
}

func TestCSRAsksForTheNames(t *testing.T) {
	csrPEM, key := CSR(t, []string{"spiffe://cluster.local/ns/a/sa/b"}, []string{"x.example"}, []net.IP{net.ParseIP("10.0.0.1")})
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM CSR: %q", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != "spiffe://cluster.local/ns/a/sa/b" ||
		len(csr.DNSNames) != 1 || csr.DNSNames[0] != "x.example" || len(csr.IPAddresses) != 1 || !csr.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Fatalf("CSR asks for %v %v %v", csr.URIs, csr.DNSNames, csr.IPAddresses)
	}
	if !key.PublicKey.Equal(csr.PublicKey) {
		t.Fatal("CSR is not for the returned key")
	}
}

func TestLogBufferIsBounded(t *testing.T) {
	b := &LogBuffer{Limit: 5}
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := b.Write([]byte(s)); n != 3 || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want 3, nil", s, n, err)
		}
	}
	if got := b.String(); got != "abcde" {
		t.Fatalf("buffer holds %q, want the first 5 bytes %q", got, "abcde")
	}
}

// Start captures the output and stops the process when the test ends.
func TestStartCapturesAndStops(t *testing.T) {
	var p *Proc
	t.Run("inner", func(t *testing.T) {
		p = Start(t, time.Second, "sh", "-c", `echo hello; exec sleep 60`)
		Eventually(t, 10*time.Second, "the greeting", func() string {
			if p.Log.String() != "hello\n" {
				return "log: " + p.Log.String()
			}
			return ""
		})
	})
	select {
	case <-p.Done():
	default:
		t.Fatal("the process still runs after its test ended")
	}
	if p.Err() == nil {
		t.Fatal("the process ended without a signal")
	}
}
