package testkit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHTTPOKWants200AndSaysWhyNot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "  not synced: cluster2\n%s", strings.Repeat("x", 2*maxHTTPErrorBody))
	}))
	defer srv.Close()
	if err := HTTPOK(t.Context(), srv.Client(), srv.URL+"/ready"); err != nil {
		t.Fatalf("200: %v", err)
	}
	err := HTTPOK(t.Context(), srv.Client(), srv.URL+"/other")
	if err == nil || !strings.Contains(err.Error(), "503 not synced: cluster2") {
		t.Fatalf("503: %v; want the status and the body", err)
	}
	if len(err.Error()) > maxHTTPErrorBody+len(srv.URL)+64 {
		t.Fatalf("the error holds %d bytes: the body is not bounded", len(err.Error()))
	}
	if err := HTTPOK(t.Context(), srv.Client(), "http://127.0.0.1:1/ready"); err == nil {
		t.Fatal("a refused connection: no error")
	}
}
