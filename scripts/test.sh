#!/usr/bin/env bash
# The whole suite: formatting, clippy (warnings are errors), the Rust unit and pgrx in-server
# tests, and pg_regress. Ends with one "N passed, N failed" line over all of them.
# While the suite installs a new build, a "sentinel" server keeps running the build installed
# before it (scripts/sentinel.sh): the install must not crash it nor fail its new sessions.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
. scripts/sentinel.sh
log=$(mktemp /tmp/pg_deident-test.XXXXXX)
sentinel=$(mktemp -d /tmp/pg_deident-sentinel.XXXXXX)
trap 'sentinel_stop "$sentinel" >/dev/null 2>&1; rm -rf "$sentinel" "$log"' EXIT

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
# Not a step: the session's coproc must belong to this shell, not to a pipeline's subshell.
echo "== sentinel server (runs the pg_test build through the install)"
if sentinel_start "$sentinel" >"$sentinel.log" 2>&1; then
  sentinel_started=true
else
  sentinel_started=false
  cat "$sentinel.log"
  echo "test install_keeps_running_server  ... FAILED (the sentinel server did not start)" | tee -a "$log"
fi
rm -f "$sentinel.log"
step "install" scripts/install.sh
step "pg_regress" scripts/regress.sh
status=0
if $sentinel_started; then
  echo "== install safety (the sentinel server)"
  sentinel_check "$sentinel" >"$sentinel.log" 2>&1 || status=1
  tee -a "$log" <"$sentinel.log"
  rm -f "$sentinel.log"
else
  status=1
fi
# Citus: a coordinator and two workers with pg_deident, and the suite tests/citus/ (skipped,
# saying so, where Citus is neither installed nor buildable from its source tarball).
echo "== citus (tests/citus.sh)"
tests/citus.sh 2>&1 | tee -a "$log" || status=1
# The Debian package: built, installed, used by a fresh cluster, removed; then this tree's
# build is installed again (tests/package.sh).
echo "== package"
tests/package.sh 2>&1 | tee -a "$log" || status=1
summary
exit "$status"
