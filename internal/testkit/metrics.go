package testkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MetricValue reads the value of a counter or gauge (or an untyped
// metric). It fails the test if m cannot be read or is of another type.
func MetricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatalf("read the metric %s: %v", m.Desc(), err)
	}
	switch {
	case out.Counter != nil:
		return out.GetCounter().GetValue()
	case out.Gauge != nil:
		return out.GetGauge().GetValue()
	case out.Untyped != nil:
		return out.GetUntyped().GetValue()
	}
	t.Fatalf("the metric %s is neither a counter nor a gauge", m.Desc())
	return 0
}
