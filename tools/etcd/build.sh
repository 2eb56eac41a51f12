#!/usr/bin/env bash
# Builds the etcd server from the go.etcd.io/etcd/server/v3 module pinned in
# this folder's go.mod, into a cache keyed by that version, and prints the
# folder that holds it. The first build takes a minute or two; later calls
# return at once. The test harness (internal/testenv) and the bench look in
# the same folder, or in $CAUSEWAY_ETCD_BIN when that is set, before falling
# back to an etcd on PATH (Debian's etcd-server 3.4, which lacks the
# RequestWatchProgress that kube-apiserver's streaming lists need).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$here/go.mod")
cache=${CAUSEWAY_ETCD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/etcd}
out="$cache/$version"
if [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building etcd $version into $out (a minute or two the first time)" >&2
cd "$here"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/etcd.tmp" .
mv "$out/etcd.tmp" "$out/etcd"
echo "$out"
