#!/usr/bin/env bash
# The benchmarks (bench/*.sql) against a throwaway cluster with the release build.
# BENCH_RUNS sets the number of interleaved runs (default 7); BENCH_FILES the files to run
# (default bench/*.sql). The server runs with PostgreSQL's defaults but for shared_buffers
# (the tables stay cached) and max_wal_size; a benchmark file sets anything else it needs.
# Then, unless BENCH_OVERHEAD=0, the cost of the preload itself (scripts/bench-overhead.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh

DIR=$(mktemp -d /tmp/pg_deident-bench.XXXXXX)
trap 'cluster_stop "$DIR"; rm -rf "$DIR"' EXIT
log=$DIR.install.log
install_extension --release >"$log" 2>&1 || { cat "$log"; exit 1; }
rm -f "$log"
cluster_create "$DIR" "$DIR/keys/bench.keys" <<'CONF'
shared_buffers = 1GB
max_wal_size = 4GB
CONF
new_key_file "$DIR/keys/bench.keys" bench
cluster_start "$DIR"
for f in ${BENCH_FILES:-bench/*.sql}; do
  cluster_psql "$DIR" -d postgres -q -c "ALTER DATABASE postgres SET bench.runs = '${BENCH_RUNS:-7}'"
  cluster_psql "$DIR" -d postgres -q -f "$f"
done
if [ "${BENCH_OVERHEAD:-1}" != 0 ]; then
  scripts/bench-overhead.sh "$DIR"
fi
