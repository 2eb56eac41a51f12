package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// profiler fetches Go runtime profiles of the server under measurement from
// its debug API (/debug/pprof/), into Config.ProfileDir, so that a run's
// figures come with the frames that bound them (`go tool pprof -top
// bin/causeway DIR/cpu-churn-100.pprof`).
type profiler struct {
	dir       string
	debugAddr string
	client    *http.Client
}

// newProfiler returns nil when dir is empty: no profiles.
func newProfiler(dir, debugAddr string) (*profiler, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: make the profile folder: %w", err)
	}
	return &profiler{dir: dir, debugAddr: debugAddr, client: &http.Client{}}, nil
}

// heap saves the server's heap profile as heap-NAME.pprof.
func (p *profiler) heap(ctx context.Context, name string) error {
	if p == nil {
		return nil
	}
	return p.fetch(ctx, "heap?gc=1", "heap-"+name+".pprof")
}

// cpu starts a CPU profile of d and returns a function that waits for it
// and reports its error; the profile is saved as cpu-NAME.pprof.
func (p *profiler) cpu(ctx context.Context, name string, d time.Duration) func() error {
	if p == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	secs := max(1, int(d.Seconds()))
	go func() { done <- p.fetch(ctx, "profile?seconds="+strconv.Itoa(secs), "cpu-"+name+".pprof") }()
	return func() error { return <-done }
}

func (p *profiler) fetch(ctx context.Context, query, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.debugAddr+"/debug/pprof/"+query, nil)
	if err != nil {
		return fmt.Errorf("bench: profile request: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("bench: fetch the server's %s profile: %w", query, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("bench: the server's %s profile: %s: %s (is --profiling off?)", query, resp.Status, body)
	}
	path := filepath.Join(p.dir, file)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: save the profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("bench: save the profile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: save the profile %s: %w", path, err)
	}
	return nil
}
