package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/testreq"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

const (
	// istioModule is the module whose version tools/istio/go.mod pins.
	istioModule  = "istio.io/istio"
	installIstio = "run tools/istio/build.sh from the repository root (or set CAUSEWAY_ISTIO_BIN to a folder holding pilot-discovery, crd-all.gen.yaml and istio-version)"

	// maxCRDBytes bounds the CRD file read (Istio's is about 1 MB).
	maxCRDBytes = 16 << 20
	// crdTimeout bounds installing the CRDs and waiting for them.
	crdTimeout = time.Minute
)

// IstioBinaries are what tools/istio/build.sh leaves in its cache folder:
// istiod's pilot-discovery, Istio's CRDs of the same module and the version
// string the binary reports (which proxies announce as ISTIO_VERSION).
type IstioBinaries struct {
	// PilotDiscovery is the path of the pilot-discovery binary.
	PilotDiscovery string
	// CRDs is the path of crd-all.gen.yaml.
	CRDs string
	// Version is the release the binary reports, e.g. 1.31-dev.
	Version string
	// PilotAgent is the path of the sidecar agent built from the same
	// module (pilot-agent), when the cache holds it, and EnvoyBootstrap its
	// Envoy bootstrap template (the proxyv2 image's
	// /var/lib/istio/envoy/envoy_bootstrap_tmpl.json); see
	// [RequirePilotAgent].
	PilotAgent     string
	EnvoyBootstrap string
}

// FindIstio locates the oracle's files: in $CAUSEWAY_ISTIO_BIN when set,
// else in the folder tools/istio/build.sh builds into,
// ${CAUSEWAY_ISTIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/istio}/VERSION
// with VERSION read from tools/istio/go.mod of the repository that holds the
// working directory. The error says how to build what is missing.
func FindIstio() (IstioBinaries, error) {
	wd, err := os.Getwd()
	if err != nil {
		return IstioBinaries{}, fmt.Errorf("testenv: read working directory: %w", err)
	}
	return findIstio(os.Getenv, wd)
}

func findIstio(getenv func(string) string, wd string) (IstioBinaries, error) {
	dir, err := istioBinDir(getenv, wd)
	if err != nil {
		return IstioBinaries{}, fmt.Errorf("testenv: %w", err)
	}
	bins := IstioBinaries{
		PilotDiscovery: filepath.Join(dir, "pilot-discovery"),
		CRDs:           filepath.Join(dir, "crd-all.gen.yaml"),
		PilotAgent:     filepath.Join(dir, "pilot-agent"),
		EnvoyBootstrap: filepath.Join(dir, "envoy_bootstrap_tmpl.json"),
	}
	var missing []string
	if !isExecutable(bins.PilotDiscovery) {
		missing = append(missing, "pilot-discovery")
	}
	if fi, err := os.Stat(bins.CRDs); err != nil || !fi.Mode().IsRegular() {
		missing = append(missing, "crd-all.gen.yaml")
	}
	data, err := readBounded(filepath.Join(dir, "istio-version"), 256)
	if err != nil || strings.TrimSpace(string(data)) == "" {
		missing = append(missing, "istio-version")
	} else {
		bins.Version = strings.TrimSpace(string(data))
	}
	if len(missing) > 0 {
		return bins, fmt.Errorf("testenv: %s not found in %s: %s", strings.Join(missing, ", "), dir, installIstio)
	}
	return bins, nil
}

// istioBinDir is the folder of the oracle's files, derived exactly as
// tools/istio/build.sh derives it.
func istioBinDir(getenv func(string) string, wd string) (string, error) {
	if dir := getenv("CAUSEWAY_ISTIO_BIN"); dir != "" {
		return dir, nil
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return "", err
	}
	gomod := filepath.Join(root, "tools", "istio", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("read the pinned Istio version: %w; set CAUSEWAY_ISTIO_BIN instead", err)
	}
	version, err := requiredVersion(data, istioModule)
	if err != nil {
		return "", fmt.Errorf("%s: %w", gomod, err)
	}
	cache := getenv("CAUSEWAY_ISTIO_CACHE")
	if cache == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			home := getenv("HOME")
			if home == "" {
				return "", errors.New("neither CAUSEWAY_ISTIO_CACHE, XDG_CACHE_HOME nor HOME is set, so the istiod cache cannot be found; set CAUSEWAY_ISTIO_BIN")
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "causeway", "istio")
	}
	return filepath.Join(cache, version), nil
}

// RequireIstio returns the oracle's files, or skips or fails the test (see
// [testreq.SkipOrFail]) saying how to build them.
func RequireIstio(t testing.TB) IstioBinaries {
	t.Helper()
	bins, err := FindIstio()
	if err != nil {
		testreq.SkipOrFail(t, "%v", err)
	}
	return bins
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates every CustomResourceDefinition of the multi-document
// YAML file path in the cluster (one already there is left as it is) and
// waits until the apiserver serves each of them (condition Established).
// It returns the names of the CRDs.
func (c *Cluster) InstallCRDs(ctx context.Context, path string) ([]string, error) {
	data, err := readBounded(path, maxCRDBytes)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: CRDs: %w", c.ID, err)
	}
	return c.installCRDs(ctx, data, path)
}

// installCRDs is InstallCRDs of the YAML data, read from source.
func (c *Cluster) installCRDs(ctx context.Context, data []byte, source string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, crdTimeout)
	defer cancel()
	client, err := dynamic.NewForConfig(c.config)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: dynamic client: %w", c.ID, err)
	}
	crds := client.Resource(crdResource)
	var names []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(bytes.NewReader(data)), 64<<10)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("cluster %s: decode %s: %w", c.ID, source, err)
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("cluster %s: create CRD %s: %w", c.ID, obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}
	for _, name := range names {
		if err := waitEstablished(ctx, crds, name); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.ID, err)
		}
	}
	return names, nil
}

// waitEstablished polls CRD name until its Established condition is True.
func waitEstablished(ctx context.Context, crds dynamic.NamespaceableResourceInterface, name string) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		obj, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(obj) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("CRD %s not established before the deadline (last error: %w): %w", name, err, ctx.Err())
			}
			return fmt.Errorf("CRD %s not established before the deadline: %w", name, ctx.Err())
		case <-ticker.C:
		}
	}
}

func established(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// RequirePilotAgent returns the files of [RequireIstio] with a pilot-agent,
// or skips or fails the test (see [SkipOrFail]) saying how to build it.
func RequirePilotAgent(t testing.TB) IstioBinaries {
	t.Helper()
	bins := RequireIstio(t)
	if fi, err := os.Stat(bins.EnvoyBootstrap); !isExecutable(bins.PilotAgent) || err != nil || !fi.Mode().IsRegular() {
		testreq.SkipOrFail(t, "testenv: pilot-agent or envoy_bootstrap_tmpl.json not found beside %s: %s", bins.PilotAgent, installIstio)
	}
	return bins
}
