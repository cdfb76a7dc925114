#!/usr/bin/env bash
# The whole suite: formatting, clippy (warnings are errors), the Rust unit and pgrx in-server
# tests, and pg_regress. Ends with one "N passed, N failed" line over all of them.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
log=$(mktemp /tmp/pg_deident-test.XXXXXX)
trap 'rm -f "$log"' EXIT

step() { # NAME COMMAND...
  local name=$1; shift
  echo "== $name"
  if ! "$@" 2>&1 | tee -a "$log"; then
    echo "test: $name failed" >&2
    summary; exit 1
  fi
}
summary() {
  local passed failed
  passed=$(grep -hoE 'test result: [a-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
  failed=$(grep -hoE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
  passed=$((passed + $(grep -cE '^(ok|test) .* \.\.\. ok ' "$log" || true)))
  failed=$((failed + $(grep -cE '\.\.\. FAILED' "$log" || true)))
  echo "test: $passed passed, $failed failed"
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets --features pg_test -- -D warnings
step "cargo pgrx test (unit and in-server tests)" scripts/pgtest.sh
step "install" scripts/install.sh
step "pg_regress" scripts/regress.sh
summary
