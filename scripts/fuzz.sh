#!/usr/bin/env bash
# Runs every native fuzz target of the module for a budget each.
#   scripts/fuzz.sh -short   a few seconds each (CI)
#   scripts/fuzz.sh          FUZZTIME each (default 5m; make fuzz)
# A target is a `func FuzzX(f *testing.F)` in a _test.go file under
# internal/. Inputs that fail are written under the package's
# testdata/fuzz/FuzzX/, where they join the committed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${FUZZTIME:-5m}
if [ "${1:-}" = "-short" ]; then budget=${FUZZTIME:-3s}; fi
go=${GO:-go}
failed=()
start=$(date +%s)
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
    t0=$(date +%s)
    run() { "$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" -parallel "${FUZZ_PARALLEL:-1}" "$pkg" >/tmp/fuzz.$$.log 2>&1; }
    # Go's fuzzing engine can end a short budget with "context deadline
    # exceeded" and no failing input (its coordinator timing out, not a
    # finding); such a run is tried once more. A real finding names the
    # input it wrote under testdata/fuzz and fails at once.
    if run || { grep -q 'context deadline exceeded' /tmp/fuzz.$$.log && ! grep -q 'Failing input written' /tmp/fuzz.$$.log &&
      echo "retry $pkg $target (the engine timed out without a failing input)" && run; }; then
      echo "ok   $pkg $target ($(( $(date +%s) - t0 ))s)"
    else
      echo "FAIL $pkg $target"
      grep -v 'level=' /tmp/fuzz.$$.log | tail -20
      failed+=("$pkg $target")
    fi
  done
done < <(grep -rlE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' --include='*_test.go' internal | sort)
rm -f /tmp/fuzz.$$.log
echo "fuzzing took $(( $(date +%s) - start ))s in all, $budget a target"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}"
  exit 1
fi
