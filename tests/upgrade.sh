#!/usr/bin/env bash
# Upgrades, against the running regress cluster in DIR (scripts/regress.sh calls this): every
# earlier version (sql/versions/) is created in a fresh database, with a labelled table and a
# view of the DBA's that calls a k-aggregate (run before the update too: the old SQL on this
# library), and updated with ALTER EXTENSION pg_deident UPDATE; the extension's catalog must then equal a fresh install's, line by line
# (tests/upgrade/catalog.sql: functions, aggregates, types, views, privileges, initial
# privileges, comments), and the DBA's objects must have come through. Prints "test NAME ...
# ok" or "... FAILED"; exit status 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
DIR=$1
status=0
sql() { local db=$1; shift; cluster_psql "$DIR" -d "$db" -Atq "$@"; }

sql postgres -c "CREATE DATABASE upgrade_fresh"
sql upgrade_fresh -c "CREATE EXTENSION pg_deident"
fresh=$(sql upgrade_fresh -f tests/upgrade/catalog.sql)
current=$(sql upgrade_fresh -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_deident'")
sql postgres -c "DROP DATABASE upgrade_fresh"

for script in sql/versions/pg_deident--*.sql; do
  old=${script##*--}; old=${old%.sql}
  name=upgrade_from_${old//./_}
  db=$name
  sql postgres -c "CREATE DATABASE $db"
  out=$(sql "$db" 2>&1 <<SQL
CREATE EXTENSION pg_deident VERSION '$old';
CREATE TABLE staff AS SELECT 'p' || i AS email, i % 3 AS org, i AS hours FROM generate_series(1, 30) i;
SECURITY LABEL FOR deident ON COLUMN staff.email IS 'identifier';
CREATE VIEW staff_hours AS SELECT org, deident.k_sum(hours, email) AS hours FROM staff GROUP BY org;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET enable_hashagg = off;
SELECT 'before: ' || string_agg(org || ':' || hours, ' ' ORDER BY org) FROM staff_hours;
ALTER EXTENSION pg_deident UPDATE;
SQL
  )
  updated=$(sql "$db" -f tests/upgrade/catalog.sql 2>&1)
  after=$(sql "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_deident'" \
            -c "SELECT string_agg(org || ':' || hours, ' ' ORDER BY org) FROM staff_hours" \
            -c "SELECT string_agg(table_name || '.' || column_name || '=' || label, ' ') FROM deident.personal_data" 2>&1)
  expected="$current
0:165 1:145 2:155
staff.email=identifier"
  # the old version's SQL ran on this library before the update, in a parallel plan too
  if [ -n "$fresh" ] && [ "$updated" = "$fresh" ] && [ "$after" = "$expected" ] \
     && [[ $out == *"before: 0:165 1:145 2:155"* ]]; then
    echo "test $name ... ok  ($old to $current: $(echo "$fresh" | wc -l) catalog lines equal a fresh install's; the DBA's label and view kept)"
  else
    echo "test $name ... FAILED"
    echo "$out"
    diff <(echo "$fresh") <(echo "$updated") | head -40
    echo "after the update: $after"
    status=1
  fi
  sql postgres -c "DROP DATABASE $db"
done
# The update refuses a schema that is no longer the superusers' alone: an overload made there
# by another role (this one would make its owner superuser if the script called it) must not
# run with the updater's rights; and CREATE granted to such a role is refused by itself.
old=$(ls sql/versions/pg_deident--*.sql | head -n 1); old=${old##*--}; old=${old%.sql}
sql postgres -c "CREATE DATABASE upgrade_capture" -c "CREATE ROLE upgrade_mallory"
sql upgrade_capture <<SQL
CREATE EXTENSION pg_deident VERSION '$old';
GRANT CREATE ON SCHEMA deident TO upgrade_mallory;
SET ROLE upgrade_mallory;
CREATE FUNCTION deident.format(text, regprocedure) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE upgrade_mallory SUPERUSER';
  END IF;
  RETURN pg_catalog.format(\$1, \$2);
END \$f\$;
RESET ROLE;
SQL
granted=$(sql upgrade_capture -c "ALTER EXTENSION pg_deident UPDATE" 2>&1)
sql upgrade_capture -c "REVOKE CREATE ON SCHEMA deident FROM upgrade_mallory"
owned=$(sql upgrade_capture -c "ALTER EXTENSION pg_deident UPDATE" 2>&1)
sql upgrade_capture -c "DROP FUNCTION deident.format(text, regprocedure)"
cleaned=$(sql upgrade_capture -c "ALTER EXTENSION pg_deident UPDATE" \
            -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_deident'" 2>&1)
super=$(sql postgres -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'upgrade_mallory'")
if [[ $granted == *"is not the superusers' alone"* && $owned == *"is not the superusers' alone"* ]] \
   && [ "$cleaned" = "$current" ] && [ "$super" = f ]; then
  echo "test upgrade_refuses_a_shared_schema ... ok  (CREATE granted, then an object of another role: refused; cleaned: updated)"
else
  echo "test upgrade_refuses_a_shared_schema ... FAILED  (granted: $granted; owned: $owned; cleaned: $cleaned; superuser: $super)"
  status=1
fi
sql postgres -c "DROP DATABASE upgrade_capture" -c "DROP ROLE upgrade_mallory"
exit $status
