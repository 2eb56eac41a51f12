package testkit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// maxHTTPBody bounds how much of a body HTTPGet reads.
const maxHTTPBody = 8 << 20

// HTTPGet GETs url with client and returns the body (its first 8 MiB) of a
// 200 OK; any other status is an error holding the status and the body
// (a /ready that says why it is not ready).
func HTTPGet(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

// HTTPOK is HTTPGet for a caller that wants only the 200.
func HTTPOK(ctx context.Context, client *http.Client, url string) error {
	_, err := HTTPGet(ctx, client, url)
	return err
}
