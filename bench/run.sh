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
# Kubernetes scale: a Go benchmark against a real kube-apiserver (built
# by make peers), appended to the report.
if [ ${#quick[@]} -eq 0 ] && [ -f "$out" ]; then
  if go test -run '^$' -bench '^BenchmarkPolicyEditTo1000Proxies$' -benchtime 5x -count 1 ./internal/kube/ >"$tmp/kube.txt" 2>&1; then
    line=$(grep '^BenchmarkPolicyEditTo1000Proxies' "$tmp/kube.txt")
    metric() { echo "$line" | awk -v u="$1" '{for (i = 2; i <= NF; i++) if ($i == u) print $(i-1)}'; }
    p50=$(metric edit-p50-ms); mx=$(metric edit-max-ms)
    verdict=met; awk -v m="$mx" 'BEGIN { exit !(m > 1000) }' && verdict="**missed**"
    {
      echo
      echo "## Kubernetes scale"
      echo
      echo "\`go test -bench BenchmarkPolicyEditTo1000Proxies -benchtime 5x ./internal/kube/\`: a control plane in Kubernetes mode (kube.Source and kube.Registry against a real kube-apiserver v1.37.2 and etcd on 127.0.0.1) over 1,000 pods in 100 namespaces, each behind a Service and an EndpointSlice; 1,000 simulated sidecars on its push server, each presenting a certificate for its pod's service account; then 5 times a mesh-wide AuthorizationPolicy created in istio-system through the API server, timed until every one of the 1,000 has received it."
      echo
      echo "| figure | measured | target |"
      echo "| --- | --- | --- |"
      echo "| control plane sync to its first snapshot | $(metric sync-ms) ms | |"
      echo "| control plane heap, 1,000 proxies connected | $(metric heap-MiB) MiB | |"
      echo "| AuthorizationPolicy created through the API server, to all 1,000 proxies, p50 / max of 5 | $p50 / $mx ms | ≤ 1 s: $verdict |"
    } >>"$out"
  else
    { echo; echo "## Kubernetes scale"; echo; echo "Not measured: the benchmark failed:"; echo; echo '```'; tail -20 "$tmp/kube.txt"; echo '```'; } >>"$out"
  fi
fi
if [ ${#quick[@]} -gt 0 ] && [ -f "$out" ]; then
  sed -n '/^## Targets/,/^## HTTP/p' "$out" | sed '$d'
fi
exit $status
