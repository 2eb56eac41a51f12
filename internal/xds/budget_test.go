package xds

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

// response returns a SotW response of about size bytes.
func response(typeURL string, size int) *discoverygrpc.DiscoveryResponse {
	return &discoverygrpc.DiscoveryResponse{TypeUrl: typeURL, Resources: []*anypb.Any{{TypeUrl: typeURL, Value: []byte(strings.Repeat("x", size))}}}
}

func TestSendBudget(t *testing.T) {
	eds := edsType
	b := newSendBudget(3*largeResponse, -1, 0, newMetrics(nil))
	one, two := &streamHolds{b: b}, &streamHolds{b: b}
	ctx := t.Context()

	// Small responses never take from the budget.
	for range 100 {
		if err := one.take(ctx, response(eds, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	// Two large ones fit in the budget, the third must wait...
	if err := one.take(ctx, response(eds, largeResponse)); err != nil {
		t.Fatal(err)
	}
	if err := two.take(ctx, response(cdsType, largeResponse)); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := two.take(short, response(eds, 2*largeResponse-100)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a response over what is left of the budget: %v, want it to wait", err)
	}
	// ...until the client answers the first stream's EDS.
	one.answered(cdsType) // another type: gives nothing back
	done := make(chan error, 1)
	go func() { done <- two.take(ctx, response(eds, 2*largeResponse-100)) }()
	select {
	case err := <-done:
		t.Fatalf("took the budget (%v) before anything was given back", err)
	case <-time.After(50 * time.Millisecond):
	}
	one.answered(eds)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the budget was not given back by the ACK")
	}
	// A response larger than the whole budget is sent alone, not refused.
	two.releaseAll()
	if err := one.take(ctx, response(eds, 4*largeResponse)); err != nil {
		t.Fatal(err)
	}
	one.releaseAll()
	if !b.sem.TryAcquire(b.limit) {
		t.Fatal("the budget is not whole again after every stream ended")
	}
}

func TestSendBudgetOff(t *testing.T) {
	if b := newSendBudget(-1, 0, 0, newMetrics(nil)); b != nil {
		t.Fatalf("negative budget: %+v, want none", b)
	}
	h := &streamHolds{}
	if err := h.take(t.Context(), response(cdsType, 10*largeResponse)); err != nil {
		t.Fatal(err)
	}
	h.answered(cdsType)
	h.releaseAll()
}

func TestRequestType(t *testing.T) {
	for _, tc := range []struct {
		m    any
		want string
	}{
		{&discoverygrpc.DiscoveryRequest{TypeUrl: cdsType}, ""},
		{&discoverygrpc.DiscoveryRequest{TypeUrl: cdsType, ResponseNonce: "1"}, cdsType},
		{&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType, ResponseNonce: "2"}, edsType},
		{&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: edsType}, ""},
		{&discoverygrpc.DiscoveryResponse{}, ""},
	} {
		if got := requestType(tc.m); got != tc.want {
			t.Errorf("requestType(%v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

// okStream is a server stream whose sends succeed at once; only its
// context matters.
type okStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan any
}

func (s *okStream) Context() context.Context { return s.ctx }
func (s *okStream) SendMsg(m any) error {
	s.sent <- m
	return nil
}

// TestBudgetWaitIsNotASendTimeout: a response that waits for its share of
// the send budget longer than the send timeout, behind another stream's
// response, is sent once the share comes back; its stream is not closed,
// for its client is not the one that is slow.
func TestBudgetWaitIsNotASendTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := New(Config{SendTimeout: timeout, SendBudget: 2 * largeResponse})
	newStream := func() (*timedStream, *okStream) {
		st := &okStream{ctx: t.Context(), sent: make(chan any, 4)}
		ts := s.newTimedStream(st)
		t.Cleanup(ts.stop)
		return ts, st
	}
	first, _ := newStream()
	if err := first.SendMsg(response(edsType, 2*largeResponse)); err != nil {
		t.Fatal(err)
	}
	second, sent := newStream()
	done := make(chan error, 1)
	go func() { done <- second.SendMsg(response(edsType, 2*largeResponse)) }()
	select {
	case err := <-done:
		t.Fatalf("the second response went out (%v) while the first held the whole budget", err)
	case <-time.After(3 * timeout):
	}
	first.holds.answered(edsType) // the first client's ACK
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after waiting %s for the budget: %v, want it sent", 3*timeout, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second response was never sent")
	}
	if len(sent.sent) != 1 {
		t.Errorf("%d sends on the second stream, want 1", len(sent.sent))
	}
	if err := second.SendMsg(response(edsType, 1000)); err != nil {
		t.Errorf("a small response after: %v", err)
	}
}
