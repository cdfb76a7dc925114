#!/usr/bin/env bash
# Runs the pg_regress suite (tests/pg_regress) against a throwaway cluster that preloads the
# installed pg_deident. Key-ring fixtures, good and bad, are written into the data directory
# (data/deident/), so that tests name them by relative path and the output is stable.
# Then the same cluster is restarted without the preload for the `nopreload` schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh

DIR=$(mktemp -d /tmp/pg_deident-regress.XXXXXX)
OUT=$PWD/target/regress
trap 'cluster_stop "$DIR"; rm -rf "$DIR"' EXIT
cluster_create "$DIR" deident/regress.keys <<'CONF'
max_parallel_workers_per_gather = 2
log_min_messages = log
CONF

# Fixtures. K1 is SPEC's test key (bytes 0x00..0x1f), K2 is bytes 0x20..0x3f.
K1=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
K2=202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
F=$DIR/data/deident
as_owner mkdir -m 0700 "$F"
fixture() { # NAME MODE CONTENT
  printf '%b' "$3" | as_owner tee "$F/$1" >/dev/null
  as_owner chmod "$2" "$F/$1"
}
fixture regress.keys   0600 "# regress key ring\n\nk1:$K1\nk2:$K2\n"
fixture k2only.keys    0600 "k2:$K2\n"
fixture otherk1.keys   0600 "k1:$K2\n"
fixture groupread.keys 0640 "k1:$K1\n"
fixture worldread.keys 0604 "k1:$K1\n"
fixture nocolon.keys   0600 "# ok\nk1:$K1\nk3 $K2\n"
fixture badid.keys     0600 "key one:$K1\n"
fixture badhex.keys    0600 "k1:${K1}zz\n"
fixture short.keys     0600 "k1:${K1:0:62}\n"
fixture dup.keys       0600 "k1:$K1\nk2:$K2\nk1:$K2\n"
fixture empty.keys     0600 "# nothing here\n\n"
as_owner mkdir -m 0700 "$F/adir"

cluster_start "$DIR"
mkdir -p "$OUT"
PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
run_schedule() { # SCHEDULE OUTPUT_DIR (one each: pg_regress rewrites its regression.diffs)
  mkdir -p "$2"
  "$PG_REGRESS" --use-existing --host="$DIR" --port=5432 --user=postgres \
    --inputdir=tests/pg_regress --outputdir="$2" --dbname=deident_regress \
    --schedule="tests/pg_regress/$1"
}
cluster_psql "$DIR" -q -d postgres -c "CREATE DATABASE deident_regress"
status=0
run_schedule schedule "$OUT" || status=1

# The extended protocol (Parse, Bind, Execute), which pg_regress does not speak: a parallel
# query's workers start under the statement timestamp of the Execute message, not of the Bind
# that started the executor. Both pgbench modes must run the query without an error.
cluster_psql "$DIR" -q -d deident_regress -c "CREATE TABLE regress_protocol AS
  SELECT 'alice@contoso.com'::text AS v FROM generate_series(1, 20000); ANALYZE regress_protocol"
for mode in extended prepared; do
  if "$PGBIN/pgbench" -n -M "$mode" -t 5 -h "$DIR" -p 5432 -U postgres \
       -f tests/protocol/parallel.pgbench deident_regress >"$OUT/pgbench-$mode.log" 2>&1; then
    echo "test parallel_query_${mode}_protocol ... ok "
  else
    echo "test parallel_query_${mode}_protocol ... FAILED"; cat "$OUT/pgbench-$mode.log"; status=1
  fi
done
cluster_psql "$DIR" -q -d deident_regress -c "DROP TABLE regress_protocol"

# Dump and restore: every label survives pg_dump / pg_restore into a fresh database.
dump=$DIR/regress.dump
"$PGBIN/pg_dump" -h "$DIR" -p 5432 -U postgres -Fc -f "$dump" deident_regress
cluster_psql "$DIR" -q -d postgres -c "CREATE DATABASE regress_restored"
"$PGBIN/pg_restore" -h "$DIR" -p 5432 -U postgres --exit-on-error -d regress_restored "$dump"
labels_of() {
  cluster_psql "$DIR" -At -d "$1" -c "SELECT objtype, objname, label FROM pg_seclabels
    WHERE provider = 'deident' ORDER BY objname; TABLE deident.personal_data ORDER BY 1, 2, 3"
}
before=$(labels_of deident_regress); after=$(labels_of regress_restored)
if [ -n "$before" ] && [ "$before" = "$after" ]; then
  echo "test dump_restore                  ... ok  ($(echo "$before" | wc -l) label rows kept)"
else
  echo "test dump_restore                  ... FAILED"; diff <(echo "$before") <(echo "$after"); status=1
fi

# The privacy budget across sessions, a killed backend, an immediate shutdown and a standby.
tests/budget.sh "$DIR" || status=1

# Every earlier version, updated to this one, has the catalog of a fresh install.
tests/upgrade.sh "$DIR" || status=1

# The same server, restarted without the preload: the extension must refuse to work.
as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -w -o "-c shared_preload_libraries=" restart >/dev/null
run_schedule schedule_nopreload "$OUT/nopreload" || status=1

# The server log has the paths that analysts were not shown, and never a key.
if ! grep -q 'LOG:  pseudonymization key file has group or world access: Key file: "deident/groupread.keys"' "$DIR/server.log"; then
  echo "regress: the server log lacks the path withheld from an analyst" >&2; status=1
fi
# Key material nowhere a user or an operator can look: the server log, every catalog, table,
# setting and role of the cluster (pg_dumpall), and what the tests printed. The fixtures are
# the only place the keys may be.
keyless() { # NAME FILE...
  if grep -qiE "${K1:8:24}|${K2:8:24}" "${@:2}"; then
    echo "test no_key_material_in_$1 ... FAILED"; status=1
  else
    echo "test no_key_material_in_$1 ... ok "
  fi
}
"$PGBIN/pg_dumpall" -h "$DIR" -p 5432 -U postgres -f "$DIR/dumpall.sql"
keyless server_log "$DIR/server.log"
keyless pg_dumpall "$DIR/dumpall.sql"
keyless regress_output "$OUT"/results/*.out

if [ $status -ne 0 ]; then
  echo "regress: differences in $OUT/regression.diffs and $OUT/nopreload/regression.diffs" >&2
  cat "$OUT/regression.diffs" "$OUT/nopreload/regression.diffs" >&2 2>/dev/null || true
  echo "regress: server log:" >&2; tail -n 40 "$DIR/server.log" >&2
fi
exit $status
