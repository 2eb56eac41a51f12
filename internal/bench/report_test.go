package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSweepReport: a sweep is judged and printed by its points, not by the
// single run it does not have.
func TestSweepReport(t *testing.T) {
	r := &Results{Sweep: []SweepPoint{
		{Services: 100, Proxies: 50, StartSeconds: 1.1, PeakRSSBytes: 100 << 20},
		{Services: 5000, Proxies: 500, Lost: 3, WrongViews: 1, Error: "bench: start: timeout"},
	}}
	want := []string{"S=5000 P=500: bench: start: timeout", "S=5000 P=500: 3 changes never delivered", "S=5000 P=500: 1 proxies hold a wrong view"}
	if diff := cmp.Diff(want, r.Failures()); diff != "" {
		t.Errorf("Failures (-want +got):\n%s", diff)
	}
	if f := (&Results{Sweep: r.Sweep[:1]}).Failures(); len(f) != 0 {
		t.Errorf("a clean sweep: failures %q", f)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "to every proxy full") || strings.Contains(out, "verify:") {
		t.Errorf("a sweep's table prints the single run it does not have:\n%s", out)
	}
	if !strings.Contains(out, "5000  500") {
		t.Errorf("a sweep's table lacks its points:\n%s", out)
	}
}
