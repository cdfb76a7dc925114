#!/usr/bin/env bash
# `cargo pgrx test`: the #[test] unit tests and the #[pg_test] in-server tests. As root the
# test server runs as `postgres`, in a data directory it owns.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
# `cargo pgrx test` installs the library itself: never over the file a running server maps.
unlink_installed_library
if [ "$(id -u)" = 0 ]; then
  pgdata=$(mktemp -d /tmp/pg_deident-pgtest.XXXXXX)
  chown postgres: "$pgdata"
  trap 'rm -rf "$pgdata"' EXIT
  cargo pgrx test pg15 --runas postgres --pgdata "$pgdata"
else
  cargo pgrx test pg15
fi
