package testkit

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestSucceeds(t *testing.T) {
	var err error
	cond := Succeeds(func() error { return err })
	if got := cond(); got != "" {
		t.Fatalf("with no error: %q, want \"\"", got)
	}
	err = errors.New("not ready")
	if got := cond(); got != "not ready" {
		t.Fatalf("with an error: %q, want the error's text", got)
	}
}

func TestEventuallyFailsWithTheLastAnswer(t *testing.T) {
	r := record(func(rt testing.TB) {
		Eventually(rt, 30*time.Millisecond, "the answer", Succeeds(func() error { return errors.New("still 41") }))
	})
	if r.fatal != "the answer:\nstill 41" {
		t.Fatalf("failure %q, want the last answer", r.fatal)
	}
}

func TestMetricValue(t *testing.T) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "h"})
	c.Add(3)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	g.Set(-2)
	if got := MetricValue(t, c); got != 3 {
		t.Errorf("counter %v, want 3", got)
	}
	if got := MetricValue(t, g); got != -2 {
		t.Errorf("gauge %v, want -2", got)
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h"})
	r := record(func(rt testing.TB) { MetricValue(rt, h) })
	if !strings.Contains(r.fatal, "neither a counter nor a gauge") {
		t.Fatalf("a histogram: failure %q, want a refusal", r.fatal)
	}
}

func TestMustAny(t *testing.T) {
	a := MustAny(t, wrapperspb.String("x"))
	var s wrapperspb.StringValue
	if err := anypb.UnmarshalTo(a, &s, proto.UnmarshalOptions{}); err != nil || s.GetValue() != "x" {
		t.Fatalf("unwrapped %q (%v), want x", s.GetValue(), err)
	}
}

func TestLoggers(t *testing.T) {
	if DiscardLogger().Enabled(t.Context(), 12) {
		t.Error("the discarding logger is enabled")
	}
	if !Logger(t).Enabled(t.Context(), -4) {
		t.Error("the test logger does not log at debug level")
	}
	if Logger(&testing.B{}).Enabled(t.Context(), 12) {
		t.Error("a benchmark's logger is enabled")
	}
}

func TestFreeLoopbackAddrs(t *testing.T) {
	addrs, err := FreeLoopbackAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 || addrs[0] == addrs[1] || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("addresses %q, want two distinct loopback ones", addrs)
	}
}

func TestSocketAddress(t *testing.T) {
	sa := SocketAddress("10.0.0.1", 8080).GetSocketAddress()
	if sa.GetAddress() != "10.0.0.1" || sa.GetPortValue() != 8080 || sa.GetProtocol() != corev3.SocketAddress_TCP {
		t.Fatalf("address %v, want TCP 10.0.0.1:8080", sa)
	}
}
