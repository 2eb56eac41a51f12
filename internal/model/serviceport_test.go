package model

import "testing"

func TestServicePortIsTCP(t *testing.T) {
	for proto, want := range map[string]bool{"": true, "TCP": true, "UDP": false, "SCTP": false} {
		if got := (ServicePort{Port: 80, Protocol: proto}).IsTCP(); got != want {
			t.Errorf("protocol %q: IsTCP %v, want %v", proto, got, want)
		}
	}
}

func TestServiceInfoHasPort(t *testing.T) {
	svc := &ServiceInfo{Ports: []ServicePort{{Port: 53, Protocol: "UDP"}, {Port: 80}}}
	for port, want := range map[uint32]bool{53: true, 80: true, 443: false, 0: false} {
		if got := svc.HasPort(port); got != want {
			t.Errorf("port %d: HasPort %v, want %v", port, got, want)
		}
	}
	if (&ServiceInfo{}).HasPort(80) {
		t.Error("no ports: HasPort(80) true")
	}
}
