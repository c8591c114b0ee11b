#!/usr/bin/env bash
# Installs the system packages Palisade's tests use as real peers, when
# missing: openssl (verifies issued chains), curl (plain clients), gcc for
# the cgo build of Dex, etcd (storage for the kube-apiserver of the
# Kubernetes-mode tests), iptables and iproute2 (traffic capture in network
# namespaces), Chromium (the dashboard's browser tests), nginx-light (a
# peer pair of the benchmarks).
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc)
command -v etcd >/dev/null || need+=(etcd-server)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
