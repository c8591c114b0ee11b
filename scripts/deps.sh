#!/usr/bin/env bash
# Installs the system packages Palisade's tests use as real peers, when
# missing: openssl (verifies issued chains), curl (plain clients), gcc for
# the cgo build of Dex.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v gcc >/dev/null || need+=(gcc)
# The capture test in internal/proxy (root): a network namespace with
# nat REDIRECT rules (iproute2, iptables for IPv4 and IPv6).
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
