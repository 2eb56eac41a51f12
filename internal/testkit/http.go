package testkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// maxHTTPErrorBody bounds how much of a refusal's body HTTPOK reads.
const maxHTTPErrorBody = 4096

// HTTPOK GETs url with client and wants 200 OK; any other status is an
// error holding the status and the start of the body (a /ready that says
// why it is not ready).
func HTTPOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTTPErrorBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}
