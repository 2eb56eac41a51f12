package testkit

import (
	"log/slog"
	"testing"
)

// DiscardLogger is a logger that drops everything, for a component whose
// logs the test does not read.
func DiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Logger logs at debug level into the test's output, where `go test -v`
// or a failure shows it. A benchmark's logger discards: its output would
// bury the figures.
func Logger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return DiscardLogger()
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
