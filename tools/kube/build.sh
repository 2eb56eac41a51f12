#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the Kubernetes Go
# modules pinned in this folder's go.mod, into a cache keyed by that version,
# and prints the folder that holds them. The first build takes minutes; later
# calls return at once. The test harness (internal/testenv) looks in the same
# folder, or in $CAUSEWAY_KUBE_BIN when that is set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/go.mod")
cache=${CAUSEWAY_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kube}
out="$cache/$version"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building Kubernetes $version binaries into $out (several minutes the first time)" >&2
cd "$here"
for cmd in kube-apiserver kube-controller-manager; do
  echo "  go build k8s.io/kubernetes/cmd/$cmd" >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "$out"
