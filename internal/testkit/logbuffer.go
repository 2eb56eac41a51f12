package testkit

import (
	"bytes"
	"sync"
)

// defaultLogLimit is how much of a process's output a LogBuffer keeps when
// its Limit is 0.
const defaultLogLimit = 1 << 20

// LogBuffer collects a process's output for a test: safe for the
// process's two streams and a reader at once, and bounded so that a
// runaway log cannot grow it without end. It keeps the first Limit bytes
// (1 MiB when 0) and drops the rest, reporting every write as whole.
type LogBuffer struct {
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.Limit
	if limit <= 0 {
		limit = defaultLogLimit
	}
	if room := limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns what the buffer holds.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
