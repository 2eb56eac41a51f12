package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/internal/testreq"
)

const (
	// rootModule is the module path whose go.mod marks the repository root.
	rootModule = "github.com/causeway-mesh/causeway"
	// kubeModule is the module whose version tools/kube/go.mod pins.
	kubeModule = "k8s.io/kubernetes"
	// etcdModule is the module whose version tools/etcd/go.mod pins.
	etcdModule = "go.etcd.io/etcd/server/v3"

	debianEtcd  = "/usr/bin/etcd"
	installKube = "run tools/kube/build.sh from the repository root (or set CAUSEWAY_KUBE_BIN to a folder holding kube-apiserver and kube-controller-manager)"
	installEtcd = "run tools/etcd/build.sh from the repository root (or set CAUSEWAY_ETCD_BIN to a folder holding etcd; as a fallback, `apt-get install -y etcd-server` puts an older etcd on PATH)"
)

// A tool is one of the pinned tools modules whose build.sh builds binaries
// into ${CACHE_ENV:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/NAME}/VERSION.
type tool struct {
	name     string // folder under tools/ and under the cache
	module   string // the module whose pinned version keys the cache
	binEnv   string // names the binaries' folder outright
	cacheEnv string // replaces the cache root
}

var (
	kubeTool = tool{name: "kube", module: kubeModule, binEnv: "CAUSEWAY_KUBE_BIN", cacheEnv: "CAUSEWAY_KUBE_CACHE"}
	etcdTool = tool{name: "etcd", module: etcdModule, binEnv: "CAUSEWAY_ETCD_BIN", cacheEnv: "CAUSEWAY_ETCD_CACHE"}
)

// Binaries are the paths of the executables the harness runs.
type Binaries struct {
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
}

// FindBinaries locates etcd and the Kubernetes binaries. etcd is the one
// tools/etcd/build.sh builds (in $CAUSEWAY_ETCD_BIN when set, else in
// ${CAUSEWAY_ETCD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/etcd}/VERSION);
// when that is not built and CAUSEWAY_ETCD_BIN is unset, the etcd on PATH,
// else /usr/bin/etcd (Debian's etcd-server 3.4, without the
// RequestWatchProgress that the apiserver's streaming lists need, so clients
// fall back to one whole LIST). The Kubernetes binaries are in $CAUSEWAY_KUBE_BIN when set, else in the folder
// tools/kube/build.sh builds into,
// ${CAUSEWAY_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kube}/VERSION
// with VERSION read from tools/kube/go.mod of the repository that holds the
// working directory. kube-controller-manager is only looked for when
// withControllerManager is set. The error names every missing binary and how
// to install it.
func FindBinaries(withControllerManager bool) (Binaries, error) {
	wd, err := os.Getwd()
	if err != nil {
		return Binaries{}, fmt.Errorf("testenv: read working directory: %w", err)
	}
	return findBinaries(os.Getenv, lookEtcd, wd, withControllerManager)
}

// lookEtcd finds etcd on PATH, else where Debian's etcd-server puts it.
func lookEtcd() (string, error) {
	p, err := exec.LookPath("etcd")
	if err == nil {
		return p, nil
	}
	if isExecutable(debianEtcd) {
		return debianEtcd, nil
	}
	return "", err
}

func findBinaries(getenv func(string) string, lookEtcd func() (string, error), wd string, withControllerManager bool) (Binaries, error) {
	var (
		bins     Binaries
		problems []string
		err      error
	)
	bins.Etcd, err = findEtcd(getenv, lookEtcd, wd)
	if err != nil {
		problems = append(problems, err.Error())
	}

	dir, err := kubeBinDir(getenv, wd)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		names := []string{"kube-apiserver"}
		if withControllerManager {
			names = append(names, "kube-controller-manager")
		}
		var missing []string
		for _, name := range names {
			p := filepath.Join(dir, name)
			switch {
			case !isExecutable(p):
				missing = append(missing, name)
			case name == "kube-apiserver":
				bins.KubeAPIServer = p
			default:
				bins.KubeControllerManager = p
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s not found in %s: %s", strings.Join(missing, " and "), dir, installKube))
		}
	}
	if len(problems) > 0 {
		return bins, errors.New("testenv: " + strings.Join(problems, "; "))
	}
	return bins, nil
}

// findEtcd returns the pinned etcd that tools/etcd/build.sh built, or, when
// it is not built and CAUSEWAY_ETCD_BIN is unset, what lookEtcd finds. A
// CAUSEWAY_ETCD_BIN without an etcd in it is an error, not a fallback.
func findEtcd(getenv func(string) string, lookEtcd func() (string, error), wd string) (string, error) {
	dir, dirErr := binDir(etcdTool, getenv, wd)
	if dirErr == nil {
		p := filepath.Join(dir, "etcd")
		if isExecutable(p) {
			return p, nil
		}
		if getenv(etcdTool.binEnv) != "" {
			return "", fmt.Errorf("etcd not found in %s (CAUSEWAY_ETCD_BIN): %s", dir, installEtcd)
		}
	}
	if p, err := lookEtcd(); err == nil {
		return p, nil
	}
	return "", errors.New("etcd not built by tools/etcd/build.sh, nor on PATH or at " + debianEtcd + ": " + installEtcd)
}

// kubeBinDir is the folder that holds the Kubernetes binaries, derived
// exactly as tools/kube/build.sh derives it.
func kubeBinDir(getenv func(string) string, wd string) (string, error) {
	return binDir(kubeTool, getenv, wd)
}

// binDir is the folder that holds a tool's binaries, derived exactly as its
// build.sh derives it.
func binDir(tl tool, getenv func(string) string, wd string) (string, error) {
	if dir := getenv(tl.binEnv); dir != "" {
		return dir, nil
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", fmt.Errorf("%w; set %s instead", err, tl.binEnv)
	}
	gomod := filepath.Join(root, "tools", tl.name, "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read the pinned %s version: %w; set %s instead", tl.module, err, tl.binEnv)
	}
	version, err := requiredVersion(data, tl.module)
	if err != nil {
		return "", fmt.Errorf("%s: %w", gomod, err)
	}
	cache := getenv(tl.cacheEnv)
	if cache == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				return "", fmt.Errorf("neither %s, XDG_CACHE_HOME nor HOME is set, so the %s binary cache cannot be found; set %s", tl.cacheEnv, tl.name, tl.binEnv)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "causeway", tl.name)
	}
	return filepath.Join(cache, version), nil
}

// moduleRoot walks up from dir to the folder whose go.mod declares the
// Causeway module.
func moduleRoot(dir string) (string, error) {
	for d := filepath.Clean(dir); ; {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(data) == rootModule {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod of %s above %s; run the tests inside the repository", rootModule, dir)
		}
		d = parent
	}
}

// modulePath returns the path of the module directive of a go.mod file.
func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// requiredVersion returns the version a go.mod requires of module, in either
// the one-line form or inside a require block.
func requiredVersion(gomod []byte, module string) (string, error) {
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(stripComment(sc.Text()))
		switch {
		case len(f) == 0:
		case inBlock && f[0] == ")":
			inBlock = false
		case inBlock && len(f) == 2 && f[0] == module:
			return f[1], nil
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			inBlock = true
		case f[0] == "require" && len(f) == 3 && f[1] == module:
			return f[2], nil
		}
	}
	return "", fmt.Errorf("no requirement of %s", module)
}

func stripComment(line string) string {
	before, _, _ := strings.Cut(line, "//")
	return before
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// RequireBinaries returns the binaries a test needs, or skips or fails the
// test (see [testreq.SkipOrFail]) saying how to install what is missing.
func RequireBinaries(t testing.TB, withControllerManager bool) Binaries {
	t.Helper()
	bins, err := FindBinaries(withControllerManager)
	if err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	return bins
}
