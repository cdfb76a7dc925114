#!/usr/bin/env bash
# What the preloaded library costs a workload that touches no labelled table: pgbench -S
# (the built-in select-only script, simple protocol: every statement parsed, analysed and
# planned, so every hook runs) against one server, restarted alternately with and without
# shared_preload_libraries = 'pg_deident' (A B B A ..., so that drift hits both alike),
# BENCH_OVERHEAD_RUNS pairs (default 7) of BENCH_OVERHEAD_SECONDS (default 10) each, one
# client. Two figures per run: transactions per second, and the server's CPU time per
# transaction (the backend's utime + stime from /proc over the middle of the run, divided by
# the transactions committed meanwhile). The second is the library's cost; the first also
# carries the scheduling of one client and one backend ping-ponging on two cores, which moves
# by far more than 3% from one restart to the next on this kind of machine. A third figure
# leaves the network and the scheduler out: pgbench -S's statement run 100,000 times by a DO
# block through dynamic SQL (each time parsed, analysed, planned and executed, so every hook
# runs), in microseconds per statement. The database has the extension, a labelled table and a restricted role, so the
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
# Prints "TPS CPU_US_PER_XACT" for one run.
run() {
  local out pid c0 c1 x0 x1 tick
  out=$(mktemp)
  "$PGBIN/pgbench" -n -S -T "$SECS" -c 1 -h "$DIR" -p 5432 -U postgres bench_pgbench >"$out" 2>&1 &
  sleep 1
  pid=$(cluster_psql "$DIR" -At -d bench_pgbench -c \
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1")
  xacts() { cluster_psql "$DIR" -At -d bench_pgbench -c \
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); x0=$(xacts)
  sleep $((SECS - 3))
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); x1=$(xacts)
  wait
  tick=$(getconf CLK_TCK)
  # the two counting queries commit a transaction each
  awk -v t="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")" -v c=$((c1 - c0)) \
      -v x=$((x1 - x0 - 1)) -v hz="$tick" 'BEGIN { printf "%.0f %.2f\n", t, c / hz * 1e6 / x }'
  rm -f "$out"
}
# Prints microseconds per statement of pgbench -S's SELECT, run in the server.
in_server() {
  cluster_psql "$DIR" -At -d bench_pgbench <<'SQL'
DO $$
DECLARE t0 timestamptz; b int; n int := 100000;
BEGIN
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    EXECUTE 'SELECT abalance FROM pgbench_accounts WHERE aid = $1' INTO b USING 1 + (i * 7919) % 1000000;
  END LOOP;
  RAISE NOTICE '%', round((1e6 * extract(epoch FROM clock_timestamp() - t0) / n)::numeric, 3);
END $$;
SQL
}
in_server_us() { in_server 2>&1 | sed -n 's/.*NOTICE: *//p'; }

with=(); without=(); cpu_with=(); cpu_without=(); srv_with=(); srv_without=()
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then order="pg_deident none"; else order="none pg_deident"; fi
  for lib in $order; do
    if [ "$lib" = pg_deident ]; then
      restart pg_deident; read -r t c < <(run); with+=("$t"); cpu_with+=("$c")
      srv_with+=("$(in_server_us)")
    else
      restart ''; read -r t c < <(run); without+=("$t"); cpu_without+=("$c")
      srv_without+=("$(in_server_us)")
    fi
  done
done
restart pg_deident
cluster_psql "$DIR" -q -d bench_pgbench -c "DROP ROLE bench_overhead_analyst" >/dev/null 2>&1 || true
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mw=$(median "${with[@]}"); mo=$(median "${without[@]}")
cw=$(median "${cpu_with[@]}"); co=$(median "${cpu_without[@]}")
sw=$(median "${srv_with[@]}"); so=$(median "${srv_without[@]}")
echo
echo "preload overhead: pgbench -S (scale 10, 1 client, simple protocol), $RUNS interleaved pairs of ${SECS}s"
echo "  server CPU us/transaction, preloaded: ${cpu_with[*]}  (median $cw)"
echo "  server CPU us/transaction, without:   ${cpu_without[*]}  (median $co)"
echo "  tps, preloaded: ${with[*]}  (median $mw)"
echo "  tps, without:   ${without[*]}  (median $mo)"
echo "  in the server, us/statement, preloaded: ${srv_with[*]}  (median $sw)"
echo "  in the server, us/statement, without:   ${srv_without[*]}  (median $so)"
awk -v w="$cw" -v o="$co" 'BEGIN { printf "  cost of the preload in server CPU per transaction: %+.1f%% (target: under 3%%)\n", 100 * (w - o) / o }'
awk -v w="$sw" -v o="$so" -v c="$co" 'BEGIN { printf "  in the server: %+.3f us per statement, %+.1f%% of the statement, %+.1f%% of a pgbench -S transaction'"'"'s server CPU\n", w - o, 100 * (w - o) / o, 100 * (w - o) / c }'
awk -v w="$mw" -v o="$mo" 'BEGIN { printf "  tps difference: %+.1f%% (scheduling noise included)\n", 100 * (o - w) / o }'
