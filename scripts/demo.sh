#!/usr/bin/env bash
# The demo: builds and installs pg_deident, starts a throwaway cluster that preloads it with a
# freshly generated key file (0600), loads the synthetic people data and prints the reports.
# `scripts/demo.sh stop` (make demo-stop) stops the cluster. Safe to run again: it replaces
# the previous demo cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh

DIR=${DEIDENT_DEMO_DIR:-/tmp/pg_deident-demo}
if [ "${1:-}" = stop ]; then
  cluster_stop "$DIR"
  echo "demo: stopped the cluster in $DIR"
  exit 0
fi

echo "demo: building and installing pg_deident (release build; a few minutes the first time)"
log=$(mktemp /tmp/pg_deident-install.XXXXXX)
install_extension --release >"$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
rm -f "$log"
echo "demo: creating a cluster in $DIR with a new key file"
cluster_create "$DIR" "$DIR/keys/pg_deident.keys" </dev/null
new_key_file "$DIR/keys/pg_deident.keys" "demo_$(date -u +%Y%m%d)"
cluster_start "$DIR"
cluster_psql "$DIR" -d postgres -q -f demo/people.sql
cluster_psql "$DIR" -d postgres -f demo/report.sql

cat <<MSG

demo: the cluster is running (Unix socket only, no TCP). Connect with
        psql -h $DIR -U postgres postgres
      the key file is $DIR/keys/pg_deident.keys (mode 0600, owner $(owner_name)).
      Stop it with
        make demo-stop
MSG
