package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// causewayPkg is the package of the causeway binary.
const causewayPkg = "github.com/causeway-mesh/causeway/cmd/causeway"

// buildTimeout bounds one go build.
const buildTimeout = 5 * time.Minute

// errNoMain is what a build says when the test binary's TestMain did not
// call Main: there is no folder to build into that is removed at the end.
var errNoMain = errors.New("testkit: build: call os.Exit(testkit.Main(m)) from the package's TestMain first")

// builds are the binaries built for this test binary, in a folder Main
// makes before the tests run and removes after them.
var builds = &builder{}

// builder builds each package once into dir.
type builder struct {
	dir string

	mu    sync.Mutex
	built map[string]*build
}

// build is one package's build: done once, shared by every caller.
type build struct {
	once sync.Once
	bin  string
	err  error
}

// Main runs the tests of m and then removes the binaries BuildCauseway
// built; it returns the exit code. Call it from the package's TestMain:
// os.Exit(testkit.Main(m)).
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "causeway-testkit-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testkit: %v\n", err)
		return 1
	}
	builds.dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	return code
}

// BuildCauseway builds the causeway binary of the working tree once for
// the test binary and returns its path; later and concurrent calls wait
// for that build and share it. The build may take 5 minutes; its error
// holds the compiler's output. The package's TestMain must call Main.
func BuildCauseway() (string, error) { return builds.get(causewayPkg) }

// CausewayBinary is BuildCauseway for a test: a failed build fails it.
func CausewayBinary(t testing.TB) string {
	t.Helper()
	bin, err := BuildCauseway()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// get returns the binary of pkg, building it on the first call.
func (b *builder) get(pkg string) (string, error) {
	if b.dir == "" {
		return "", errNoMain
	}
	b.mu.Lock()
	if b.built == nil {
		b.built = map[string]*build{}
	}
	one := b.built[pkg]
	if one == nil {
		one = &build{bin: filepath.Join(b.dir, fmt.Sprintf("%d-%s", len(b.built), filepath.Base(pkg)))}
		b.built[pkg] = one
	}
	b.mu.Unlock()
	one.once.Do(func() { one.err = goBuild(one.bin, pkg) })
	return one.bin, one.err
}

// goBuild builds pkg into bin within buildTimeout.
func goBuild(bin, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, out.String())
	}
	return nil
}
