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

. scripts/citus-cluster.sh
BASE=$(mktemp -d /tmp/pg_deident-citus.XXXXXX)
chmod 0755 "$BASE"
PORT0=${CITUS_TEST_PORT:-57640}
OUT=$PWD/target/citus-regress
trap 'citus_cluster_stop "$BASE"; rm -rf "$BASE"' EXIT
citus_cluster_start "$BASE" "$PORT0" || exit 1

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
