package kubeconv

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/internal/model"
)

// FuzzParseGatewayPort: any label value gives a port in 1..65535 or the
// default (0) with an error, never both; the error quotes the value cut
// short and holds no control character; a Service carrying the label is
// never dropped for it.
func FuzzParseGatewayPort(f *testing.F) {
	for _, s := range []string{"15443", "1", "65535", "0", "65536", "-1", "tls", "", " 15443", "+15443", "0x3c43", "١٥٤٤٣", "15443\n", strings.Repeat("9", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, err := ParseGatewayPort(v)
		switch {
		case err == nil && (p < 1 || p > 65535):
			t.Fatalf("ParseGatewayPort(%q) = %d without an error", v, p)
		case err != nil && p != 0:
			t.Fatalf("ParseGatewayPort(%q) = %d and %v", v, p, err)
		case err == nil && strings.TrimLeft(v, "0") != strconv.FormatUint(uint64(p), 10):
			t.Fatalf("ParseGatewayPort(%q) = %d: not the number written", v, p)
		}
		if err != nil {
			checkMessage(t, err.Error())
		}
		svc := gatewayServiceWith(map[string]string{model.LabelGatewayPort: v}, nil)
		got, err := Service("c", svc)
		if err != nil {
			t.Fatalf("Service with gatewayPort %q: %v, want it kept", v, err)
		}
		if got.GatewayPort != p {
			t.Fatalf("Service GatewayPort %d, ParseGatewayPort %d", got.GatewayPort, p)
		}
	})
}

// FuzzParseNodeSelector: any annotation gives a selector or nil with an
// error, never both; the error is bounded and free of control characters;
// the Service is kept.
func FuzzParseNodeSelector(f *testing.F) {
	for _, s := range []string{`{"kubernetes.io/os": "linux"}`, `{}`, `null`, `[]`, `{"a": 1}`, `{"a": null}`, `os=linux`, ``, `{"a":"b"} x`, `"\u0000"`, `{"\u001b[2J": "x"}`, strings.Repeat("{", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sel, err := ParseNodeSelector(v)
		switch {
		case err != nil && sel != nil:
			t.Fatalf("ParseNodeSelector(%q) = %v and %v", v, sel, err)
		case err == nil && sel == nil:
			t.Fatalf("ParseNodeSelector(%q) = nil without an error", v)
		}
		if err != nil {
			checkMessage(t, err.Error())
		}
		svc := gatewayServiceWith(nil, map[string]string{model.AnnotationNodeSelect: v})
		if _, err := Service("c", svc); err != nil {
			t.Fatalf("Service with nodeSelector %q: %v, want it kept", v, err)
		}
	})
}

// checkMessage fails on a message that could mislead a terminal or flood a
// log: control characters, or far more than the quoted prefix.
func checkMessage(t *testing.T, msg string) {
	t.Helper()
	if len(msg) > 1024 {
		t.Fatalf("message of %d bytes: %.100q...", len(msg), msg)
	}
	for _, r := range msg {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			t.Fatalf("message holds control character %U: %q", r, msg)
		}
	}
}

func gatewayServiceWith(labels, annotations map[string]string) *corev1.Service {
	if labels == nil {
		labels = map[string]string{}
	}
	labels[model.LabelNetwork] = "network1"
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "eastwest", Labels: labels, Annotations: annotations},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "tls", Port: 15443, Protocol: corev1.ProtocolTCP}}},
	}
}
