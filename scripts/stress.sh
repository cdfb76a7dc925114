#!/usr/bin/env bash
# make stress: pg_deident under concurrent load while its keys rotate, then under sqlsmith.
# docs/stress.md describes what runs and what the report means. Not part of make test.
#
# A throwaway cluster with the release build and forced parallel plans:
#  1. pgbench, STRESS_CLIENTS clients (8) for STRESS_SECONDS (60), drawing from the query
#     catalogue in tests/stress/setup.sql (every pseudonymize variant, domains, explicit key
#     ids checked against known answers, the k-aggregates over every value type checked against
#     plain SQL, k_anonymity) and running the atomicity probe, while a background loop rotates
#     the keys every STRESS_ROTATE_EVERY seconds (0.1): it rewrites the key file atomically
#     (write a temporary file, mv) cycling through three orderings of the ring, and every fifth
#     time moves deident.active_key (ALTER SYSTEM, pg_reload_conf()).
#  2. sqlsmith as a non-superuser for STRESS_SQLSMITH_QUERIES queries (5000) or
#     STRESS_SQLSMITH_SECONDS (150), whichever ends first, the rotation still running.
# Then the report (also in target/stress/report.txt). Exit status non-zero on a backend crash,
# a mixed-key answer, a wrong answer, an unexpected error in the pgbench workload, or key
# material in the server log.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh

CLIENTS=${STRESS_CLIENTS:-8}
DURATION=${STRESS_SECONDS:-60}
ROTATE_EVERY=${STRESS_ROTATE_EVERY:-0.1}
SMITH_QUERIES=${STRESS_SQLSMITH_QUERIES:-5000}
SMITH_SECONDS=${STRESS_SQLSMITH_SECONDS:-150}
# An error whose message matches this is the correct refusal of a statement during which the
# key ring changed (counted apart from "mixed", and not a failure).
KEY_CHANGE_PATTERN=${STRESS_KEY_CHANGE_PATTERN:-'key ring changed while the statement ran'}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v sqlsmith >/dev/null; then
  echo "stress: installing sqlsmith (Debian package)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlsmith >/dev/null
fi

OUT=$PWD/target/stress
DIR=$(mktemp -d /tmp/pg_deident-stress.XXXXXX)
ROTATOR=''
cleanup() {
  touch "$DIR/rotate.stop"
  if [ -n "$ROTATOR" ]; then wait "$ROTATOR" 2>/dev/null || true; fi
  cluster_stop "$DIR"
  if [ -f "$DIR/server.log" ]; then cp "$DIR/server.log" "$OUT/server.log"; fi
  rm -rf "$DIR"
}
rm -rf "$OUT"
mkdir -p "$OUT"
trap cleanup EXIT

echo "stress: building and installing the release build"
install_extension --release >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
# What we installed, to check that the server runs it: an install by anyone else meanwhile
# (one not holding /tmp/pg_deident-test.lock) would make the figures someone else's.
LIB=$("$PG_CONFIG" --pkglibdir)/pg_deident.so
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
SCRIPT=$EXTDIR/pg_deident--$(sed -nE "s/^default_version = '(.*)'/\1/p" "$EXTDIR/pg_deident.control").sql
LIB_INODE=$(stat -c %i "$LIB")
SCRIPT_SUM=$(sha256sum <"$SCRIPT")
ours() { # true if the server runs the library we installed and the script is still ours
  [ "$(stat -c %i "$LIB")" = "$LIB_INODE" ] && [ "$(sha256sum <"$SCRIPT")" = "$SCRIPT_SUM" ] &&
    as_root grep -q " $LIB_INODE .*pg_deident.so" "/proc/$(head -n 1 "$DIR/data/postmaster.pid")/maps"
}

cluster_create "$DIR" "$DIR/keys/stress.keys" <<'CONF'
shared_preload_libraries = 'pg_deident, auto_explain'
max_connections = 60
max_worker_processes = 40
max_parallel_workers = 32
max_parallel_workers_per_gather = 2
shared_buffers = 256MB
log_line_prefix = '%m [%p] %a %e '
track_functions = all
# A sample of the pgbench statements' plans (enabled for that role and database only), to
# show that the probe ran with parallel workers under load.
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_timing = off
auto_explain.log_nested_statements = on
auto_explain.sample_rate = 0
CONF

# Three keys, a b c, random, never printed; three rings holding all three in different orders,
# so that '' (the first key) changes with every rewrite while every id stays valid.
hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
KA=$(hex) KB=$(hex) KC=$(hex)
ring() { # N CONTENT
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  printf '%s' "$2" | as_owner sh -c 'umask 077; cat >"$1"' sh "$DIR/keys/ring$1"
}
ring 0 "# stress ring 0
a:$KA
b:$KB
c:$KC
"
ring 1 "# stress ring 1
b:$KB
c:$KC
a:$KA
"
ring 2 "# stress ring 2
c:$KC
a:$KA
b:$KB
"
# Replaces the key file atomically with ring N: a new file (0600, the server's user), renamed.
install_ring() { # N
  # shellcheck disable=SC2016
  as_owner sh -c 'umask 077; cp "$1" "$2.tmp" && mv -f "$2.tmp" "$2"' sh "$DIR/keys/ring$1" "$DIR/keys/stress.keys"
}
install_ring 0
cluster_start "$DIR"

ours || { echo "stress: pg_deident was replaced by another install before the server started; run again" >&2; exit 1; }
echo "stress: loading tests/stress/setup.sql"
cluster_psql "$DIR" -q -d postgres -c "CREATE DATABASE stress"
cluster_psql "$DIR" -q -d stress -f tests/stress/setup.sql
ours || { echo "stress: pg_deident was replaced by another install during the setup; run again" >&2; exit 1; }
cluster_psql "$DIR" -q -d postgres <<SQL
ALTER DATABASE stress SET parallel_setup_cost = 0;
ALTER DATABASE stress SET parallel_tuple_cost = 0;
ALTER DATABASE stress SET min_parallel_table_scan_size = 0;
ALTER DATABASE stress SET min_parallel_index_scan_size = 0;
ALTER DATABASE stress SET stress.key_change_pattern = \$\$$KEY_CHANGE_PATTERN\$\$;
ALTER ROLE postgres IN DATABASE stress SET auto_explain.sample_rate = 0.1;
SQL
echo "stress: the atomicity probe's plan, idle:"
cluster_psql "$DIR" -At -d stress -c "SELECT * FROM stress.probe_plan()" | sed 's/^/  /'

rotator() {
  local i=0 actives=('' b '' c)
  export PGAPPNAME=rotator
  while [ ! -e "$DIR/rotate.stop" ]; do
    i=$((i + 1))
    if install_ring $((i % 3)); then echo file; else echo "file failed"; fi
    if [ $((i % 5)) -eq 0 ]; then
      if cluster_psql "$DIR" -q -d postgres \
        -c "ALTER SYSTEM SET deident.active_key = '${actives[$(((i / 5) % 4))]}'" \
        -c "SELECT pg_reload_conf()" >/dev/null 2>&1; then echo active; else echo "active failed"; fi
    fi
    sleep "$ROTATE_EVERY"
  done >>"$DIR/rotations"
}
rotator &
ROTATOR=$!

echo "stress: pgbench, $CLIENTS clients for $DURATION s, keys rotating every $ROTATE_EVERY s"
pgbench_status=0
PGAPPNAME=pgbench "$PGBIN/pgbench" -n -h "$DIR" -p 5432 -U postgres -c "$CLIENTS" -j 2 -T "$DURATION" -P 15 \
  -f tests/stress/workload.pgbench@1 -f tests/stress/probe.pgbench@1 stress >"$OUT/pgbench.log" 2>&1 ||
  pgbench_status=$?
grep -E '^progress|^number of transactions actually|^tps|aborted' "$OUT/pgbench.log" | sed 's/^/  /' || true

echo "stress: sqlsmith, at most $SMITH_QUERIES queries or $SMITH_SECONDS s, as a non-superuser"
cluster_psql "$DIR" -q -d stress -c "SELECT pg_stat_reset()" >/dev/null
SECONDS=0
smith_status=0
timeout "$SMITH_SECONDS" sqlsmith --seed=2026 --exclude-catalog --max-queries="$SMITH_QUERIES" --verbose \
  --target="host=$DIR port=5432 user=stress_smith dbname=stress application_name=sqlsmith options='-c statement_timeout=2000'" \
  >"$OUT/sqlsmith.log" 2>&1 || smith_status=$?
smith_seconds=$SECONDS

touch "$DIR/rotate.stop"
wait "$ROTATOR" || true
ROTATOR=''
sleep 1 # let the last log lines reach the file

# ---- the report ------------------------------------------------------------------------
status=0
{
  echo "== stress report ($(date -u +%FT%TZ), pgbench $CLIENTS clients x $DURATION s, sqlsmith seed 2026)"
  echo "key rotations: $(grep -cx file "$DIR/rotations" || true) key-file rewrites," \
    "$(grep -cx active "$DIR/rotations" || true) active_key changes," \
    "$(grep -c failed "$DIR/rotations" || true) failed"
  echo "pgbench: $(grep -E '^number of transactions actually processed' "$OUT/pgbench.log" | sed 's/.*: //') transactions," \
    "$(grep -E '^tps' "$OUT/pgbench.log" | sed -n 1p | sed 's/ (.*//'), exit status $pgbench_status"
  echo "pgbench outcomes by query (from stress.outcomes):"
  cluster_psql "$DIR" -d stress -c "
    SELECT name AS query, outcome, count(*) AS n FROM stress.outcomes
     GROUP BY 1, 2 ORDER BY 1, (outcome <> 'ok'), 3 DESC" | sed 's/^/  /'
  # The probe's sampled plans (auto_explain): how many ran with parallel workers.
  awk '/Query Text: SELECT count\(\*\) FROM \(SELECT deident.pseudonymize\(v\) FROM stress.same_value GROUP BY 1\) pseudonyms/ { inq = 1; next }
       /^20[0-9][0-9]-/ { inq = 0 }
       inq && /Workers Launched:/ { n++; if ($NF > 0) p++ }
       END { printf "atomicity probe, sampled plans (auto_explain, 10%%): %d, with parallel workers launched: %d\n", n, p }' \
    "$DIR/server.log"
  echo "sqlsmith: $(grep -oE 'queries: [0-9]+' "$OUT/sqlsmith.log" | tail -n 1 || true) in $smith_seconds s," \
    "$(if [ "$smith_status" = 124 ]; then echo "stopped at the time limit"; else echo "exit status $smith_status"; fi)"
  echo "pg_deident functions called during the sqlsmith run (pg_stat_user_functions):"
  cluster_psql "$DIR" -d stress -c "
    SELECT funcname, sum(calls) AS calls FROM pg_stat_user_functions
     WHERE schemaname = 'deident' GROUP BY 1 ORDER BY 2 DESC" | sed 's/^/  /'
  # log_line_prefix '%m [%p] %a %e ': time, pid, application (parallel workers have none),
  # SQLSTATE. One line per error: application, level, SQLSTATE, message with quoted names,
  # argument lists and numbers blanked.
  awk 'match($0, /^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] /) {
         rest = substr($0, RLENGTH + 1); sp = index(rest, " ")
         app = substr(rest, 1, sp - 1); rest = substr(rest, sp + 1)
         state = substr(rest, 1, 5); rest = substr(rest, 7)
         level = rest; sub(/:  .*/, "", level)
         if (level != "ERROR" && level != "FATAL" && level != "PANIC") next
         msg = rest; sub(/^[A-Z]+:  /, "", msg); gsub(/"[^"]*"/, "\"…\"", msg)
         gsub(/\([^()]*\)/, "(…)", msg); gsub(/[0-9]+/, "N", msg)
         print (app == "" ? "(worker)" : app), level, state, msg }' "$DIR/server.log" >"$OUT/errors.txt"
  echo "errors in the server log: $(wc -l <"$OUT/errors.txt"); by application, level and SQLSTATE:"
  cut -d ' ' -f 1-3 "$OUT/errors.txt" | sort | uniq -c | sort -rn | sed 's/^/  /'
  echo "  the errors whose message names pg_deident's objects:"
  grep -F deident "$OUT/errors.txt" | sort | uniq -c | sort -rn | sed 's/^/  /' || echo "    none"
  echo "  the 15 most frequent messages (all of them: target/stress/errors.txt):"
  sort "$OUT/errors.txt" | uniq -c | sort -rn | sed -n 1,15p | sed 's/^/  /'
} | tee "$OUT/report.txt"

crashes=$(grep -cE 'terminated by signal|was terminated by exception|all server processes terminated' "$DIR/server.log" || true)
mixed=$(cluster_psql "$DIR" -At -d stress -c "SELECT count(*) FROM stress.outcomes WHERE outcome = 'mixed'")
wrong=$(cluster_psql "$DIR" -At -d stress -c "SELECT count(*) FROM stress.outcomes WHERE outcome = 'wrong'")
refused=$(cluster_psql "$DIR" -At -d stress -c "SELECT count(*) FILTER (WHERE name = 'atomicity probe') || ' of the probes, ' || count(*) FILTER (WHERE name <> 'atomicity probe') || ' of the other statements' FROM stress.outcomes WHERE outcome LIKE 'refused:%'")
errors=$(cluster_psql "$DIR" -At -d stress -c "SELECT count(*) FROM stress.outcomes WHERE outcome LIKE 'error %'")
probes=$(cluster_psql "$DIR" -At -d stress -c "SELECT count(*) FROM stress.outcomes WHERE name = 'atomicity probe'")
leaked=none
for k in "$KA" "$KB" "$KC"; do
  if grep -rqiF -- "${k:8:24}" "$DIR/server.log" "$OUT"; then leaked=FOUND; fi
done
{
  echo "backend crashes: $crashes"
  echo "atomicity probe: $probes runs, mixed-key answers: $mixed"
  echo "statements refused because the key ring changed while they ran: $refused"
  echo "wrong answers: $wrong; unexpected errors in the pgbench workload: $errors"
  echo "key material in the server log or the outputs: $leaked"
} | tee -a "$OUT/report.txt"
if [ "$crashes" -gt 0 ]; then
  status=1
  echo "stress: crash lines of the server log:"
  grep -E -A 3 'terminated by signal|was terminated by exception' "$DIR/server.log" | sed -n 1,40p
fi
if [ "$mixed" -gt 0 ]; then
  status=1
  echo "stress: mixed-key answers (distinct pseudonyms of one value in one statement), first ones:"
  cluster_psql "$DIR" -At -d stress -c "SELECT at, detail FROM stress.outcomes WHERE outcome = 'mixed' ORDER BY at LIMIT 5"
fi
[ "$wrong" -eq 0 ] && [ "$errors" -eq 0 ] && [ "$leaked" = none ] || status=1
if [ "$pgbench_status" -ne 0 ]; then status=1; fi
if [ $status -eq 0 ]; then echo "stress: PASSED"; else echo "stress: FAILED"; fi
echo "stress: outputs in $OUT (report.txt, errors.txt, pgbench.log, sqlsmith.log, server.log)"
exit $status
