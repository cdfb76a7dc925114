#!/usr/bin/env bash
# `make citus-test`: pg_deident on a Citus cluster of a coordinator and two workers on this
# machine, each preloading citus and then pg_deident and reading the same key ring; then the
# pg_regress suite tests/citus/ against the coordinator (distributed tables: pseudonyms,
# labels, the k- and dp-aggregates against the same table undistributed, restricted roles).
# Citus comes from scripts/citus.sh (installed, or built from the source tarball); without
# either, this prints that the tests were skipped and exits 0. Prints "test NAME ... ok" or
# "... FAILED" lines (pg_regress's own); exit status 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh

scripts/citus.sh
case $? in
  0) ;;
  3) echo "citus-test: skipped: Citus is not installed and its source tarball is not there"; exit 0 ;;
  *) echo "test citus_build ... FAILED"; exit 1 ;;
esac

BASE=$(mktemp -d /tmp/pg_deident-citus.XXXXXX)
chmod 0755 "$BASE"
PORT0=${CITUS_TEST_PORT:-57640}
OUT=$PWD/target/citus-regress
trap 'for n in 0 1 2; do cluster_stop "$BASE/n$n"; done; rm -rf "$BASE"' EXIT
K1=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
for n in 0 1 2; do
  cluster_create "$BASE/n$n" deident/citus.keys <<CONF
shared_preload_libraries = 'citus,pg_deident'
listen_addresses = 'localhost'
port = $((PORT0 + n))
wal_level = logical
max_prepared_transactions = 20
max_worker_processes = 16
citus.log_remote_commands = off
CONF
  as_owner mkdir -m 0700 "$BASE/n$n/data/deident"
  printf 'k1:%s\n' "$K1" | as_owner tee "$BASE/n$n/data/deident/citus.keys" >/dev/null
  as_owner chmod 0600 "$BASE/n$n/data/deident/citus.keys"
  cluster_start "$BASE/n$n" || { cat "$BASE/n$n/server.log"; exit 1; }
done
node() { # N [psql args...]
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h localhost -p $((PORT0 + $1)) -U postgres -d postgres -Atq "${@:2}"
}
for n in 0 1 2; do node "$n" -c "CREATE EXTENSION citus" || exit 1; done
node 0 -c "SELECT citus_set_coordinator_host('localhost', $PORT0)" \
       -c "SELECT citus_add_node('localhost', $((PORT0 + 1)))" \
       -c "SELECT citus_add_node('localhost', $((PORT0 + 2)))" >/dev/null || exit 1

mkdir -p "$OUT"
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
status=0
"$PG_REGRESS" --use-existing --host=localhost --port="$PORT0" --user=postgres \
  --inputdir=tests/citus --outputdir="$OUT" --dbname=postgres \
  --schedule=tests/citus/schedule || status=1
if [ $status -ne 0 ]; then
  cat "$OUT/regression.diffs" >&2 2>/dev/null || true
  for n in 0 1 2; do echo "citus-test: node $n log:" >&2; tail -n 20 "$BASE/n$n/server.log" >&2; done
fi
exit $status
