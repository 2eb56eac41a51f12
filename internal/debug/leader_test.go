package debug

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/leader"
)

func TestLeaderInReport(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 1, 30, 0, time.UTC)
	f := newFixture(t)
	st := leader.Status{Enabled: true, Lease: "istio-system/causeway-leader", Identity: "istiod-b", Leader: "istiod-a",
		Holder: "istiod-a", RenewTime: now.Add(-1500 * time.Millisecond), LeaseDurationSeconds: 15}
	f.srv.Handle(PathLeader, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(st)
	}))
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	rep, err := FetchReport(t.Context(), ts.Client(), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Leader == nil || rep.Leader.Holder != "istiod-a" {
		t.Fatalf("leader = %+v", rep.Leader)
	}
	var b strings.Builder
	if err := WriteTable(&b, rep, now); err != nil {
		t.Fatal(err)
	}
	want := "leader: istiod-a (lease istio-system/causeway-leader, renewed 1.5s ago); this replica istiod-b is following\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table without %q:\n%s", want, b.String())
	}
}

func TestLeaderLine(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		st   leader.Status
		want string
	}{
		{"leading", leader.Status{Enabled: true, Lease: "ns/l", Identity: "a", Holder: "a", IsLeader: true, RenewTime: now.Add(-time.Second)},
			"leader: a (lease ns/l, renewed 1s ago); this replica a is leading"},
		{"free", leader.Status{Enabled: true, Lease: "ns/l", Identity: "a"},
			"leader: none (the lease is free) (lease ns/l); this replica a is following"},
		{"unreadable", leader.Status{Enabled: true, Lease: "ns/l", Identity: "a", Leader: "b", LeaseError: "forbidden"},
			"leader: b as last observed (lease ns/l not read: forbidden); this replica a is following"},
		{"off", leader.Status{Identity: "a", IsLeader: true}, "leader: election off; this replica (a) writes"},
	} {
		if got := leaderLine(&tt.st, now); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
