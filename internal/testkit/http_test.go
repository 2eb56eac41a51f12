package testkit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHTTPGetWants200AndSaysWhyNot(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			fmt.Fprint(w, "ok")
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", maxHTTPBody+10))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "  not synced: cluster2\n")
		}
	}))
	defer srv.Close()
	if body, err := HTTPGet(t.Context(), srv.Client(), srv.URL+"/ready"); err != nil || string(body) != "ok" {
		t.Fatalf("200: %q, %v; want ok", body, err)
	}
	if err := HTTPOK(t.Context(), srv.Client(), srv.URL+"/ready"); err != nil {
		t.Fatalf("HTTPOK of a 200: %v", err)
	}
	if body, err := HTTPGet(t.Context(), srv.Client(), srv.URL+"/big"); err != nil || len(body) != maxHTTPBody {
		t.Fatalf("a large body: %d bytes, %v; want the first %d", len(body), err, maxHTTPBody)
	}
	err := HTTPOK(t.Context(), srv.Client(), srv.URL+"/other")
	if err == nil || !strings.Contains(err.Error(), "503 not synced: cluster2") {
		t.Fatalf("503: %v; want the status and the body", err)
	}
	if err := HTTPOK(t.Context(), srv.Client(), "http://127.0.0.1:1/ready"); err == nil {
		t.Fatal("a refused connection: no error")
	}
}
