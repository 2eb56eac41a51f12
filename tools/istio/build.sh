#!/usr/bin/env bash
# Builds istiod's pilot-discovery and the sidecar's pilot-agent from the
# istio.io/istio module pinned in this folder's go.mod, into a cache keyed by
# that version, and copies Istio's CRDs
# from the same module beside it (crd-all.gen.yaml) with the version string
# the binary reports (istio-version), and the sidecar injection template and
# the istiod chart's values (injection-template.yaml, injection-values.yaml)
# that the injection parity test gives istiod. Prints the folder that
# holds them. The first build takes several minutes; later calls return at
# once. The parity test (test/parity) runs this binary as its oracle, found in
# $CAUSEWAY_ISTIO_BIN or, when that is unset, in the same cache folder; the
# pilot-agent test (internal/server) runs pilot-agent from the same folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="require" && $2=="istio.io/istio" {print $3}' "$here/go.mod")
cache=${CAUSEWAY_ISTIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/istio}
out="$cache/$version"
if [ -x "$out/pilot-discovery" ] && [ -x "$out/pilot-agent" ] && [ -s "$out/envoy_bootstrap_tmpl.json" ] && [ -s "$out/crd-all.gen.yaml" ] && [ -s "$out/istio-version" ] &&
  [ -s "$out/injection-template.yaml" ] && [ -s "$out/injection-values.yaml" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
cd "$here"
GOFLAGS=-mod=mod go mod download istio.io/istio
dir=$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' istio.io/istio)
# Istio's own Makefile stamps the release as the module's VERSION file plus
# "-dev"; proxies announce the same string in ISTIO_VERSION.
istio_version="$(tr -d '[:space:]' <"$dir/VERSION")-dev"
printf '%s\n' "$istio_version" >"$out/istio-version"
if [ ! -s "$out/crd-all.gen.yaml" ]; then
  cp "$dir/manifests/charts/base/files/crd-all.gen.yaml" "$out/crd-all.gen.yaml.tmp"
  chmod 0644 "$out/crd-all.gen.yaml.tmp"
  mv "$out/crd-all.gen.yaml.tmp" "$out/crd-all.gen.yaml"
fi
chart="$dir/manifests/charts/istio-control/istio-discovery"
for f in "files/injection-template.yaml:injection-template.yaml" "values.yaml:injection-values.yaml"; do
  if [ ! -s "$out/${f#*:}" ]; then
    cp "$chart/${f%%:*}" "$out/${f#*:}.tmp"
    chmod 0644 "$out/${f#*:}.tmp"
    mv "$out/${f#*:}.tmp" "$out/${f#*:}"
  fi
done
if [ ! -x "$out/pilot-discovery" ]; then
  echo "building istiod (pilot-discovery) $version into $out (several minutes the first time)" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X istio.io/istio/pkg/version.buildVersion=$istio_version -X istio.io/istio/pkg/version.buildGitRevision=$version" \
    -o "$out/pilot-discovery.tmp" istio.io/istio/pilot/cmd/pilot-discovery
  mv "$out/pilot-discovery.tmp" "$out/pilot-discovery"
fi
# pilot-agent's Envoy bootstrap template, which the proxyv2 image holds at
# /var/lib/istio/envoy/envoy_bootstrap_tmpl.json.
if [ ! -s "$out/envoy_bootstrap_tmpl.json" ]; then
  cp "$dir/tools/packaging/common/envoy_bootstrap.json" "$out/envoy_bootstrap_tmpl.json.tmp"
  chmod 0644 "$out/envoy_bootstrap_tmpl.json.tmp"
  mv "$out/envoy_bootstrap_tmpl.json.tmp" "$out/envoy_bootstrap_tmpl.json"
fi
if [ ! -x "$out/pilot-agent" ]; then
  echo "building the sidecar agent (pilot-agent) $version into $out (minutes the first time)" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X istio.io/istio/pkg/version.buildVersion=$istio_version -X istio.io/istio/pkg/version.buildGitRevision=$version" \
    -o "$out/pilot-agent.tmp.$$" istio.io/istio/pilot/cmd/pilot-agent
  mv "$out/pilot-agent.tmp.$$" "$out/pilot-agent"
fi
echo "$out"
