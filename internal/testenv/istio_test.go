package testenv

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFindIstio(t *testing.T) {
	const version = "v0.0.0-20260827124520-eed52ebb66ad"
	repo := t.TempDir()
	writeTree(t, repo, map[string]string{
		"go.mod":             "module " + rootModule + "\n",
		"tools/istio/go.mod": "module x\n\nrequire istio.io/istio " + version + "\n",
	})
	cache := t.TempDir()
	built := filepath.Join(cache, "causeway", "istio", version)
	writeTree(t, built, map[string]string{
		"pilot-discovery":  "#!/bin/sh\n",
		"crd-all.gen.yaml": "kind: CustomResourceDefinition\n",
		"istio-version":    "1.31-dev\n",
	})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	t.Run("the cache folder build.sh writes, from tools/istio/go.mod", func(t *testing.T) {
		bins, err := findIstio(env(map[string]string{"XDG_CACHE_HOME": cache}), filepath.Join(repo, "internal", "x"))
		if err != nil {
			t.Fatal(err)
		}
		// pilot-agent and its bootstrap template are named in the same
		// folder; only RequirePilotAgent needs them there.
		want := IstioBinaries{PilotDiscovery: filepath.Join(built, "pilot-discovery"), CRDs: filepath.Join(built, "crd-all.gen.yaml"), Version: "1.31-dev",
			PilotAgent: filepath.Join(built, "pilot-agent"), EnvoyBootstrap: filepath.Join(built, "envoy_bootstrap_tmpl.json")}
		if bins != want {
			t.Errorf("findIstio = %+v, want %+v", bins, want)
		}
	})
	t.Run("CAUSEWAY_ISTIO_BIN wins", func(t *testing.T) {
		bins, err := findIstio(env(map[string]string{"CAUSEWAY_ISTIO_BIN": built, "XDG_CACHE_HOME": "/nowhere"}), "/")
		if err != nil || bins.PilotDiscovery != filepath.Join(built, "pilot-discovery") {
			t.Errorf("findIstio = %+v, %v; want the binary of CAUSEWAY_ISTIO_BIN", bins, err)
		}
	})
	t.Run("an empty folder says how to build", func(t *testing.T) {
		_, err := findIstio(env(map[string]string{"CAUSEWAY_ISTIO_BIN": t.TempDir()}), "/")
		if err == nil || !strings.Contains(err.Error(), "pilot-discovery, crd-all.gen.yaml, istio-version not found") || !strings.Contains(err.Error(), "tools/istio/build.sh") {
			t.Errorf("findIstio: %v, want an error naming every missing file and tools/istio/build.sh", err)
		}
	})
}
