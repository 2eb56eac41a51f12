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

	debianEtcd  = "/usr/bin/etcd"
	installKube = "run tools/kube/build.sh from the repository root (or set CAUSEWAY_KUBE_BIN to a folder holding kube-apiserver and kube-controller-manager)"
	installEtcd = "install it with `apt-get install -y etcd-server` (or put an etcd binary on PATH)"
)

// Binaries are the paths of the executables the harness runs.
type Binaries struct {
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
}

// FindBinaries locates etcd (on PATH, else /usr/bin/etcd) and the Kubernetes
// binaries: in $CAUSEWAY_KUBE_BIN when set, else in the folder
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
	)
	if p, err := lookEtcd(); err == nil {
		bins.Etcd = p
	} else {
		problems = append(problems, "etcd not found on PATH or at "+debianEtcd+": "+installEtcd)
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

// kubeBinDir is the folder that holds the Kubernetes binaries, derived
// exactly as tools/kube/build.sh derives it.
func kubeBinDir(getenv func(string) string, wd string) (string, error) {
	if dir := getenv("CAUSEWAY_KUBE_BIN"); dir != "" {
		return dir, nil
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	gomod := filepath.Join(root, "tools", "kube", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read the pinned Kubernetes version: %w; set CAUSEWAY_KUBE_BIN instead", err)
	}
	version, err := requiredVersion(data, kubeModule)
	if err != nil {
		return "", fmt.Errorf("%s: %w", gomod, err)
	}
	cache := getenv("CAUSEWAY_KUBE_CACHE")
	if cache == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				return "", errors.New("neither CAUSEWAY_KUBE_CACHE, XDG_CACHE_HOME nor HOME is set, so the Kubernetes binary cache cannot be found; set CAUSEWAY_KUBE_BIN")
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "causeway", "kube")
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
			return "", fmt.Errorf("no go.mod of %s above %s; run the tests inside the repository or set CAUSEWAY_KUBE_BIN", rootModule, dir)
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
