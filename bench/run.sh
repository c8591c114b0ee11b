#!/usr/bin/env bash
# Runs Palisade's benchmarks on this machine and writes the report.
#   bench/run.sh           everything, writes BENCHMARKS.md (about 5 minutes on 2 cores)
#   bench/run.sh --quick   short runs, a smaller control-plane scale; writes
#                          $BENCH_OUT (default: a temporary file) and prints it
# Installs what a fresh machine lacks: Debian's haproxy and nginx-light (apt-get), fortio
# and ghostunnel built from the pinned modules under bench/tools/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=()
out=${BENCH_OUT:-$root/BENCHMARKS.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "${1:-}" = "--quick" ]; then
  quick=(-quick)
  out=${BENCH_OUT:-$tmp/BENCHMARKS-quick.md}
fi

make --no-print-directory build

fortio=bench/tools/fortio/bin/fortio
[ -x "$fortio" ] || bench/tools/fortio/build.sh >/dev/null

ghostunnel=bench/tools/ghostunnel/bin/ghostunnel
if [ ! -x "$ghostunnel" ] && ! bench/tools/ghostunnel/build.sh >"$tmp/ghostunnel-build.log" 2>&1; then
  echo "bench: ghostunnel did not build; it will be reported as not measured:" >&2
  tail -20 "$tmp/ghostunnel-build.log" >&2
  ghostunnel=
fi

if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy; } >"$tmp/apt.log" 2>&1 ||
    { echo "bench: apt-get install haproxy failed; HAProxy will be reported as not measured" >&2; tail -5 "$tmp/apt.log" >&2; }
fi
haproxy=$(command -v haproxy || true)

if ! command -v nginx >/dev/null; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light; } >"$tmp/apt-nginx.log" 2>&1 ||
    { echo "bench: apt-get install nginx-light failed; nginx will be reported as not measured" >&2; tail -5 "$tmp/apt-nginx.log" >&2; }
fi
nginx=$(command -v nginx || true)

go build -o "$tmp/meshbench" ./bench/cmd/meshbench
status=0
"$tmp/meshbench" "${quick[@]}" -out "$out" -bin bin -root . -fortio "$fortio" -ghostunnel "$ghostunnel" -haproxy "$haproxy" -nginx "$nginx" || status=$?
if [ ${#quick[@]} -gt 0 ] && [ -f "$out" ]; then
  sed -n '/^## Targets/,/^## HTTP/p' "$out" | sed '$d'
fi
exit $status
