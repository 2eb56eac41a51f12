package bench

import (
	"strings"
	"testing"
	"time"
)

func TestLeaseHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lease := func(rv uint64, holder string, acquire, renew time.Duration) leaseAt {
		return leaseAt{rv: rv, holder: holder, acquire: t0.Add(acquire), renew: t0.Add(renew), durationSeconds: 4}
	}
	tests := []struct {
		name     string
		leases   []leaseAt
		holders  []string
		overlaps int
	}{
		{"renewals, then taken after expiry", []leaseAt{
			lease(10, "a", 0, 0), lease(12, "a", 0, time.Second), lease(20, "b", 6*time.Second, 6*time.Second),
		}, []string{"a", "b"}, 0},
		{"released, then taken at once", []leaseAt{
			lease(10, "a", 0, time.Second), lease(11, "", 2*time.Second, 2*time.Second), lease(12, "b", 2*time.Second, 2*time.Second),
		}, []string{"a", "", "b"}, 0},
		{"taken while valid", []leaseAt{
			lease(10, "a", 0, time.Second), lease(11, "b", 3*time.Second, 3*time.Second),
		}, []string{"a", "b"}, 1},
		{"out of order input is sorted", []leaseAt{
			lease(20, "b", 6*time.Second, 6*time.Second), lease(10, "a", 0, 0),
		}, []string{"a", "b"}, 0},
	}
	for _, tt := range tests {
		changes, overlaps := leaseHistory(tt.leases)
		var holders []string
		for _, c := range changes {
			holders = append(holders, c.Holder)
		}
		if strings.Join(holders, ",") != strings.Join(tt.holders, ",") || len(overlaps) != tt.overlaps {
			t.Errorf("%s: holders %q, overlaps %q; want %q and %d overlaps", tt.name, holders, overlaps, tt.holders, tt.overlaps)
		}
	}
}

func TestNonLeaderWrites(t *testing.T) {
	leases := []leaseAt{{rv: 10, holder: "a"}, {rv: 20, holder: "a"}, {rv: 30, holder: ""}, {rv: 40, holder: "b"}}
	writes := []rootWrite{
		{rv: 15, namespace: "n1", writer: "a"},
		{rv: 25, namespace: "n2", writer: "a"},
		{rv: 35, namespace: "n3", writer: "b"}, // the Lease was free
		{rv: 45, namespace: "n4", writer: "a"}, // b held it
		{rv: 46, namespace: "n5", writer: "b"},
		{rv: 47, namespace: "n6"}, // no writer named
	}
	got := nonLeaderWrites(leases, writes)
	if len(got) != 3 || !strings.HasPrefix(got[0], "n3/") || !strings.HasPrefix(got[1], "n4/") || !strings.HasPrefix(got[2], "n6/") {
		t.Errorf("non-leader writes %q: want n3, n4 and n6", got)
	}
}
