#!/usr/bin/env bash
# The privacy budget across sessions, crashes and replicas, against the running regress
# cluster in DIR (scripts/regress.sh calls this after pg_regress). Each check prints
# "test NAME ... ok" or "... FAILED"; the exit status is 1 if any failed.
#   - concurrent sessions together cannot spend more than the budget;
#   - a backend killed after its charge, and an immediate shutdown, refund nothing;
#   - a hot standby refuses a limited role's dp aggregates; a promoted standby refuses
#     charges until a superuser confirms the ledger.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
DIR=$1
DB=deident_regress
status=0
ok() { echo "test $1 ... ok  ${2:-}"; }
failed() { echo "test $1 ... FAILED  ${2:-}"; status=1; }
sql() { cluster_psql "$DIR" -d "$DB" -Atq "$@"; }
as_analyst() { "$PGBIN/psql" -X -h "$DIR" -p 5432 -U regress_ledger -d "$DB" -Atq "$@"; }
spent() { sql -c "SELECT spent FROM deident.privacy_budget WHERE role = 'regress_ledger'::regrole"; }

sql <<'SQL'
CREATE ROLE regress_ledger LOGIN;
CREATE TABLE regress_ledger_t AS SELECT 'p' || i AS person FROM generate_series(1, 100) i;
SECURITY LABEL FOR deident ON COLUMN regress_ledger_t.person IS 'identifier';
GRANT SELECT ON regress_ledger_t TO regress_ledger;
GRANT USAGE ON SCHEMA deident TO regress_ledger;
SELECT deident.set_privacy_budget('regress_ledger', 10);
SQL
Q="SELECT deident.dp_count(person) IS NOT NULL FROM regress_ledger_t"

# 1. Four sessions, 15 queries each, at ε = 0.5 against a budget of 10: exactly 20 answers.
out=$(mktemp -d)
for s in 1 2 3 4; do
  (for i in $(seq 15); do as_analyst -c "$Q" 2>&1; done >"$out/$s") &
done
wait
answered=$(cat "$out"/* | grep -c '^t$' || true)
refused=$(cat "$out"/* | grep -c 'is exhausted' || true)
if [ "$answered" = 20 ] && [ "$refused" = 40 ] && [ "$(spent)" = 10 ]; then
  ok budget_concurrent_sessions "(20 answered, 40 refused, spent 10 of 10)"
else
  failed budget_concurrent_sessions "(answered $answered, refused $refused, spent $(spent))"
  cat "$out"/* | sort | uniq -c
fi
rm -rf "$out"

# 2. A backend killed after its statement was charged (a cursor is declared, which starts its
# executor and charges it, then the session sleeps): the postmaster reinitializes shared
# memory, the ledger is read back, nothing is refunded.
sql -c "SELECT deident.set_privacy_budget('regress_ledger', 100)"
before=$(spent)
as_analyst -c "BEGIN" -c "DECLARE c CURSOR FOR SELECT deident.dp_count(person) FROM regress_ledger_t" \
  -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
for _ in $(seq 50); do
  pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE usename = 'regress_ledger' AND query LIKE '%pg_sleep%'")
  [ -n "$pid" ] && break
  sleep 0.2
done
sleep 0.5
kill -9 "$pid" 2>/dev/null
wait
for _ in $(seq 50); do sql -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
after=$(spent)
if [ -n "$pid" ] && awk "BEGIN {exit !($after >= $before + 0.5)}"; then
  ok budget_killed_backend "(spent $before before, $after after the crash restart)"
else
  failed budget_killed_backend "(pid '$pid', spent $before before, $after after)"
fi

# 3. An immediate shutdown (no shutdown checkpoint, no clean exit): spent never goes down.
for _ in 1 2 3; do as_analyst -c "$Q" >/dev/null; done
before=$(spent)
as_owner "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null
cluster_start "$DIR"
after=$(spent)
as_analyst -c "$Q" >/dev/null 2>&1
again=$(spent)
if awk "BEGIN {exit !($after >= $before && $again == $after + 0.5)}"; then
  ok budget_immediate_shutdown "(spent $before before, $after after restart, $again after one more)"
else
  failed budget_immediate_shutdown "(spent $before before, $after after, $again after one more)"
fi

# 4. A hot standby refuses a limited role's dp aggregates (a superuser's work); promoted, it
# refuses charges until a superuser confirms the ledger (the file may be older than what the
# old primary spent).
SB=$DIR/standby
as_owner mkdir -p "$SB/sock"
as_owner "$PGBIN/pg_basebackup" -h "$DIR" -p 5432 -U postgres -D "$SB/data" -R -X stream >/dev/null
as_owner "$PGBIN/pg_ctl" -D "$SB/data" -l "$SB/server.log" -w \
  -o "-c unix_socket_directories=$SB/sock -c hot_standby=on" start >/dev/null
sb() { "$PGBIN/psql" -X -h "$SB/sock" -p 5432 -d "$DB" -Atq "$@"; }
standby_analyst=$(sb -U regress_ledger -c "$Q" 2>&1)
standby_super=$(sb -U postgres -c "$Q" 2>&1)
if [[ $standby_analyst == *"cannot be charged or changed during recovery"* ]] && [ "$standby_super" = t ]; then
  ok budget_hot_standby "(the analyst is refused, the superuser answered)"
else
  failed budget_hot_standby "(analyst: $standby_analyst; superuser: $standby_super)"
fi
as_owner "$PGBIN/pg_ctl" -D "$SB/data" -w promote >/dev/null
promoted=$(sb -U regress_ledger -c "$Q" 2>&1)
sb -U postgres -c "SELECT deident.set_privacy_budget('regress_ledger', 100)" >/dev/null
confirmed=$(sb -U regress_ledger -c "$Q" 2>&1)
if [[ $promoted == *"written on another timeline"* ]] && [ "$confirmed" = t ]; then
  ok budget_promoted_standby "(refused until confirmed, then answered)"
else
  failed budget_promoted_standby "(before: $promoted; after: $confirmed)"
fi
as_owner "$PGBIN/pg_ctl" -D "$SB/data" -m fast -w stop >/dev/null
as_owner rm -rf "$SB"

sql <<'SQL'
DROP TABLE regress_ledger_t;
REVOKE USAGE ON SCHEMA deident FROM regress_ledger;
DROP ROLE regress_ledger;
SQL
exit $status
