#!/usr/bin/env bash
# Citus for the distributed tests (tests/citus.sh): uses the Citus installed in the system
# PostgreSQL if there is one; otherwise builds it from the source tarball (CITUS_TARBALL,
# default ../shared/vendor/citus/citus-13.2.2.tar.gz beside this tree, with the patch that
# PostgreSQL 15.20 needs, whose README says why) and installs it. Exits 3, saying why, when
# neither is there; `make test` then skips the distributed tests and says so.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$DEIDENT_ROOT"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
  echo "citus: installed ($("$PG_CONFIG" --pkglibdir)/citus.so)"
  exit 0
fi
VENDOR=$(cd "$DEIDENT_ROOT/.." && pwd)/shared/vendor/citus
TARBALL=${CITUS_TARBALL:-$VENDOR/citus-13.2.2.tar.gz}
if [ ! -f "$TARBALL" ]; then
  echo "citus: no Citus installed and no source tarball at $TARBALL"
  exit 3
fi
PATCH=${CITUS_PATCH:-$(dirname "$TARBALL")/pg15-have_createdb_privilege.patch}

# What the build needs (the tarball's README): Debian packages.
scripts/apt-install.sh build-essential libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev \
  | sed 's/^/citus: /'

SRC=$DEIDENT_ROOT/target/citus/src
LOG=$DEIDENT_ROOT/target/citus/build.log
rm -rf "$SRC"
mkdir -p "$SRC"
tar -xzf "$TARBALL" -C "$SRC" --strip-components=1
if [ -f "$PATCH" ]; then
  (cd "$SRC" && patch -p1 --quiet <"$PATCH")
fi
echo "citus: building $(basename "$TARBALL") (a few minutes; log in $LOG)"
(
  cd "$SRC"
  ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl >"$LOG" 2>&1
  make -j"$(nproc)" >>"$LOG" 2>&1
) || { tail -n 30 "$LOG"; exit 1; }
(cd "$SRC" && as_root make install >>"$LOG" 2>&1) || { tail -n 30 "$LOG"; exit 1; }
echo "citus: installed from source"
