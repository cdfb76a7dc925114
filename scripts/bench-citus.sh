#!/usr/bin/env bash
# The Citus benchmark (bench/citus.sql) on a throwaway cluster of a coordinator and two
# workers on this machine (scripts/citus-cluster.sh), with the release build; Citus from
# scripts/citus.sh. BENCH_RUNS sets the number of interleaved runs (default 7), BENCH_PAIRS
# the number of adjacent k_sum / sum pairs (default 160: each order half the time; the median
# pair's standard deviation between runs was 0.051 with 40, 0.024 with 160: docs/citus.md,
# "Fourteenth session"). The nodes run
# with PostgreSQL's defaults but for shared_buffers (the tables stay cached) and max_wal_size.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
. scripts/citus-cluster.sh

scripts/citus.sh || { echo "bench-citus: Citus is not available (scripts/citus.sh)"; exit 1; }
BASE=$(mktemp -d /tmp/pg_deident-bench-citus.XXXXXX)
chmod 0755 "$BASE"
PORT0=${CITUS_BENCH_PORT:-57650}
trap 'citus_cluster_stop "$BASE"; rm -rf "$BASE"' EXIT
log=$BASE.install.log
install_extension --release >"$log" 2>&1 || { cat "$log"; exit 1; }
rm -f "$log"
citus_cluster_start "$BASE" "$PORT0" "shared_buffers = 512MB
max_wal_size = 4GB"
citus_node "$PORT0" 0 -c "ALTER DATABASE postgres SET bench.runs = '${BENCH_RUNS:-7}'"
citus_node "$PORT0" 0 -c "ALTER DATABASE postgres SET bench.pairs = '${BENCH_PAIRS:-160}'"
"$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h localhost -p "$PORT0" -U postgres -d postgres -q \
  -f bench/citus.sql
