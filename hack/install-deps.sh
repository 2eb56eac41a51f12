#!/usr/bin/env bash
# Installs what Causeway's tests need on a fresh Debian machine: openssl,
# iproute2, haproxy (the gateway benchmark's point of comparison, whose
# configuration a test checks), the pinned etcd 3.6 built from the Go module
# proxy (tools/etcd/build.sh, cached after the first run; it replaces Debian's
# etcd-server 3.4, which lacks the RequestWatchProgress that the apiserver's
# streaming lists need), the pinned Kubernetes binaries built the same way
# (tools/kube/build.sh), and the pinned istiod with Istio's CRDs, the parity test's
# oracle (tools/istio/build.sh, cached the same way).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# Debian installs haproxy in /usr/sbin, which is not on every user's PATH.
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts a packaged etcd and haproxy as services where systemd runs;
# the tests start their own on free ports, so running ones do no harm (Debian's
# haproxy.cfg opens no TCP port).
tools/etcd/build.sh >/dev/null
tools/kube/build.sh >/dev/null
tools/istio/build.sh >/dev/null
