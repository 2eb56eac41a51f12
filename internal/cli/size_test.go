package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxCLIFileLines keeps the CLI thin: cobra wiring and output formatting,
// with the logic in the packages it calls. A file that grows past it is
// split by topic (serve.go, serve_config.go, serve_<group>.go).
const maxCLIFileLines = 300

func TestCLIFilesStayShort(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte("\n")); n > maxCLIFileLines {
			t.Errorf("%s has %d lines, more than %d: split it by topic, or move logic out of the CLI", f, n, maxCLIFileLines)
		}
	}
}
