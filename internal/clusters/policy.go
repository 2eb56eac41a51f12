package clusters

import (
	"fmt"
	"strings"
	"time"
)

// StalePolicy says what happens to the endpoints of a cluster whose API
// server cannot be reached.
type StalePolicy struct {
	// DropAfter, when positive, removes a stale cluster's objects from the
	// model once it has been unreachable that long. Zero keeps them until
	// it comes back (fail-static), the default.
	DropAfter time.Duration
}

// String renders the policy as --stale-cluster-policy takes it.
func (p StalePolicy) String() string {
	if p.DropAfter <= 0 {
		return "keep"
	}
	return "drop-after=" + p.DropAfter.String()
}

// ParseStalePolicy parses --stale-cluster-policy: "keep" (or empty) or
// "drop-after=DURATION" with a positive Go duration (e.g. drop-after=5m).
func ParseStalePolicy(s string) (StalePolicy, error) {
	switch {
	case s == "" || s == "keep":
		return StalePolicy{}, nil
	case strings.HasPrefix(s, "drop-after="):
		v := strings.TrimPrefix(s, "drop-after=")
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return StalePolicy{}, fmt.Errorf("stale cluster policy %q: %q is not a positive duration: write e.g. drop-after=5m", s, v)
		}
		return StalePolicy{DropAfter: d}, nil
	}
	return StalePolicy{}, fmt.Errorf("stale cluster policy %q: want keep or drop-after=DURATION (e.g. drop-after=5m)", s)
}
