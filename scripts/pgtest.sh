#!/usr/bin/env bash
# `cargo pgrx test`: the #[test] unit tests and the #[pg_test] in-server tests. As root the
# test server runs as `postgres`, in a data directory it owns.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
# pgrx's test framework installs the library by running `$CARGO_PGRX pgrx install --test ...`;
# ours builds the same and swaps the files in by rename, never writing over the library that
# running servers have mapped (scripts/pgrx-install.sh).
export CARGO_PGRX="$DEIDENT_ROOT/scripts/pgrx-install.sh"
if [ "$(id -u)" = 0 ]; then
  pgdata=$(mktemp -d /tmp/pg_deident-pgtest.XXXXXX)
  chown postgres: "$pgdata"
  trap 'rm -rf "$pgdata"' EXIT
  cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"
else
  cargo pgrx test pg15
fi
