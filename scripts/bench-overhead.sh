#!/usr/bin/env bash
# What the preloaded library costs a workload that touches no labelled table: pgbench -S
# (the built-in select-only script, simple protocol: every statement parsed, analysed and
# planned, so every hook runs) against one server, restarted alternately with and without
# shared_preload_libraries = 'pg_deident' (A B B A ..., so that drift hits both alike),
# BENCH_OVERHEAD_RUNS pairs (default 7) of BENCH_OVERHEAD_SECONDS (default 10) each, one
# client. The database has the extension, a labelled table and a restricted role, so the
# caches the hooks consult are not trivially empty; pgbench runs as the superuser, which is
# not restricted. Called by scripts/bench.sh with the cluster directory; the cluster is
# stopped when this returns.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
DIR=$1
RUNS=${BENCH_OVERHEAD_RUNS:-7}
SECS=${BENCH_OVERHEAD_SECONDS:-10}

cluster_psql "$DIR" -q -d postgres -c "DROP DATABASE IF EXISTS bench_pgbench" -c "CREATE DATABASE bench_pgbench"
"$PGBIN/pgbench" -q -i -s 10 -h "$DIR" -p 5432 -U postgres bench_pgbench >/dev/null 2>&1
cluster_psql "$DIR" -q -d bench_pgbench <<'SQL'
CREATE EXTENSION pg_deident;
CREATE TABLE bench_labelled (email text);
SECURITY LABEL FOR deident ON COLUMN bench_labelled.email IS 'identifier';
DROP ROLE IF EXISTS bench_overhead_analyst;
CREATE ROLE bench_overhead_analyst;
SECURITY LABEL FOR deident ON ROLE bench_overhead_analyst IS 'restricted';
SQL

restart() { # PRELOAD ('pg_deident' or '')
  as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
  as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-c shared_preload_libraries='$1'" start >/dev/null
  # warm the cache and the backend-independent state
  "$PGBIN/pgbench" -n -S -T 2 -h "$DIR" -p 5432 -U postgres bench_pgbench >/dev/null 2>&1
}
tps() {
  "$PGBIN/pgbench" -n -S -T "$SECS" -c 1 -h "$DIR" -p 5432 -U postgres bench_pgbench 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
with=(); without=()
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then order="pg_deident none"; else order="none pg_deident"; fi
  for lib in $order; do
    if [ "$lib" = pg_deident ]; then restart pg_deident; with+=("$(tps)")
    else restart ''; without+=("$(tps)"); fi
  done
done
restart pg_deident
cluster_psql "$DIR" -q -d bench_pgbench -c "DROP ROLE bench_overhead_analyst" >/dev/null 2>&1 || true
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mw=$(median "${with[@]}"); mo=$(median "${without[@]}")
echo
echo "preload overhead: pgbench -S (scale 10, 1 client, simple protocol), $RUNS interleaved pairs of ${SECS}s"
echo "  tps with pg_deident preloaded:    ${with[*]}  (median $mw)"
echo "  tps without:                      ${without[*]}  (median $mo)"
awk -v w="$mw" -v o="$mo" 'BEGIN { printf "  cost of the preload: %.1f%% (target: under 3%%)\n", 100 * (o - w) / o }'
