package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Dockerfile is not built here (no Docker engine): these tests check
// what its build relies on instead. It builds the image the manifests run.

// repoRoot is the folder of the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/causeway-mesh/causeway\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod of github.com/causeway-mesh/causeway above the working directory")
		}
		dir = parent
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, data []byte) []instruction {
	t.Helper()
	var (
		out  []instruction
		cur  strings.Builder
		scan = bufio.NewScanner(bytes.NewReader(data))
	)
	for scan.Scan() {
		line := strings.TrimSpace(scan.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("Dockerfile ends inside a continued line: %q", cur.String())
	}
	return out
}

// stages splits the instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

// dockerignore matches paths as Docker does: patterns relative to the
// context root, `*` and `?` within a path element, `**` across elements,
// a directory excluding what it holds, `!` re-including, the last match
// winning.
type dockerignore []struct {
	re      *regexp.Regexp
	include bool
}

func parseDockerignore(data string) dockerignore {
	var d dockerignore
	for line := range strings.SplitSeq(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		include := strings.HasPrefix(line, "!")
		pat := strings.Trim(strings.TrimPrefix(line, "!"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(pat); i++ {
			switch {
			case strings.HasPrefix(pat[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(pat[i:], "**"):
				re.WriteString(".*")
				i++
			case pat[i] == '*':
				re.WriteString("[^/]*")
			case pat[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(pat[i : i+1]))
			}
		}
		re.WriteString("(/.*)?$")
		d = append(d, struct {
			re      *regexp.Regexp
			include bool
		}{regexp.MustCompile(re.String()), include})
	}
	return d
}

func (d dockerignore) excluded(path string) bool {
	ex := false
	for _, p := range d {
		if p.re.MatchString(path) {
			ex = !p.include
		}
	}
	return ex
}

func TestDockerignoreMatcher(t *testing.T) {
	d := parseDockerignore("# comment\n.git\nbin/\n**/testdata\n**/*_test.go\ncauseway\n*.out\n!keep.out\n")
	tests := map[string]bool{
		".git/config":                      true,
		"bin/golangci-lint":                true,
		"internal/install/testdata/a.yaml": true,
		"internal/install/diff_test.go":    true,
		"causeway":                         true,
		"cmd/causeway/main.go":             false,
		"x.out":                            true,
		"keep.out":                         false,
		"internal/install/diff.go":         false,
		"go.mod":                           false,
	}
	for path, want := range tests {
		if got := d.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ignoreData, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignore := parseDockerignore(string(ignoreData))
	st := stages(parseDockerfile(t, data))
	if len(st) != 2 {
		t.Fatalf("%d stages, want 2 (build, then the final image)", len(st))
	}
	build, final := st[0], st[1]

	// The build stage: Go of go.mod, static, trimmed, the causeway binary.
	if from := build[0].args; from != "golang:1.26 AS build" {
		t.Errorf("build stage FROM %q, want golang:1.26 AS build", from)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod); len(m) < 2 || string(m[1]) != "1.26" {
		t.Errorf("go.mod wants Go %s; the build image is golang:1.26", m)
	}
	var (
		buildCmd string
		copied   []string
	)
	for _, in := range build {
		switch in.cmd {
		case "RUN":
			if strings.Contains(in.args, "go build") {
				buildCmd = in.args
			}
		case "COPY":
			fields := strings.Fields(in.args)
			copied = append(copied, fields[:len(fields)-1]...)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "-trimpath", "-o /out/causeway ./cmd/causeway",
		"-X github.com/causeway-mesh/causeway/internal/version.Version=${VERSION}"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("the build command lacks %q:\n%s", want, buildCmd)
		}
	}
	if !strings.HasSuffix(buildCmd, "./cmd/causeway") {
		t.Errorf("the build command does not build ./cmd/causeway last: %s", buildCmd)
	}
	ver, err := os.ReadFile(filepath.Join(root, "internal", "version", "version.go"))
	if err != nil || !strings.Contains(string(ver), "var Version = ") {
		t.Errorf("internal/version has no var Version for -X: %v", err)
	}
	for _, src := range copied {
		src = strings.TrimSuffix(src, "/")
		if _, err := os.Stat(filepath.Join(root, src)); err != nil {
			t.Errorf("COPY %s: %v", src, err)
		}
		if ignore.excluded(src) {
			t.Errorf("COPY %s, but .dockerignore leaves it out of the context", src)
		}
	}

	// Every file the build reads is copied and in the context.
	list := exec.CommandContext(t.Context(), "go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/causeway")
	list.Dir = root
	list.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	files := 0
	for dec.More() {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Path string }
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/causeway-mesh/causeway" {
			continue
		}
		for _, f := range slices.Concat(p.GoFiles, p.EmbedFiles) {
			rel, err := filepath.Rel(root, filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			rel = filepath.ToSlash(rel)
			files++
			if !slices.ContainsFunc(copied, func(c string) bool {
				c = strings.TrimSuffix(c, "/")
				return rel == c || strings.HasPrefix(rel, c+"/")
			}) {
				t.Errorf("the build reads %s, which no COPY copies", rel)
			}
			if ignore.excluded(rel) {
				t.Errorf("the build reads %s, which .dockerignore leaves out", rel)
			}
		}
	}
	if files < 50 {
		t.Errorf("go list named only %d files of the module", files)
	}
	for _, p := range []string{".git/HEAD", "bin/causeway", "causeway"} {
		if !ignore.excluded(p) {
			t.Errorf(".dockerignore lets %s into the context", p)
		}
	}

	// The final image: distroless static (or scratch), a non-root user,
	// the binary as entrypoint.
	if from := final[0].args; from != "gcr.io/distroless/static-debian12:nonroot" && from != "scratch" {
		t.Errorf("final FROM %q, want distroless static nonroot or scratch", from)
	}
	var user, entry, binCopy string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "COPY":
			binCopy = in.args
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final USER %q, want a non-root user", user)
	}
	if uid, _, _ := strings.Cut(user, ":"); uid != "65532" {
		t.Errorf("final USER %q: the manifests run as 65532", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entry), &ep); err != nil || !slices.Equal(ep, []string{"/causeway"}) {
		t.Errorf(`ENTRYPOINT %s, want ["/causeway"] (%v)`, entry, err)
	}
	if binCopy != "--from=build /out/causeway /causeway" {
		t.Errorf("final COPY %q, want the build's /out/causeway as /causeway", binCopy)
	}
}
