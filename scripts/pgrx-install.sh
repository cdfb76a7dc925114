#!/usr/bin/env bash
# Installs pg_deident into the system PostgreSQL without disturbing servers that are running it:
# builds with `cargo pgrx package` into a staging directory, then puts each file in place by
# copying it next to its destination and renaming it over the old one.
#
#   scripts/pgrx-install.sh [--release]               what scripts/install.sh and the demo run
#   CARGO_PGRX=scripts/pgrx-install.sh cargo pgrx test the install that pgrx's test framework
#                                                      runs (`$CARGO_PGRX pgrx install --test ...`)
#
# Why not `cargo pgrx install`: it copies over the installed library in place (fs::copy, or
# `sudo cp`), which rewrites the code pages of every server process that has the library mapped
# (all of them, with shared_preload_libraries): they crash. Removing the file first avoids that
# but opens a window as long as the build, in which the library does not exist: every new
# session's first call of a pg_deident function then fails ("could not access file
# "$libdir/pg_deident"", dfmgr.c looks the file up by name before it finds the loaded copy), and
# a restart fails. A rename swaps the file in one step: processes that mapped the old file keep
# it (the old inode lives on while mapped), and every lookup by name finds a whole file.
# scripts/test.sh checks both (install_keeps_running_server, install_keeps_new_sessions).
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$DEIDENT_ROOT"

# Called as $CARGO_PGRX by pgrx's test framework: "pgrx install ARGS"; anything else is not ours.
if [ "${1:-}" = pgrx ]; then
  shift
  if [ "${1:-}" != install ]; then exec cargo pgrx "$@"; fi
  shift
fi

profile=(--debug)
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --release) profile=() ;;
    --profile) profile=(--profile "$2"); shift ;;
    --sudo) ;; # we use sudo ourselves when not root
    --test | --no-default-features | --all-features) args+=("$1") ;;
    -c | --pg-config | -F | --features | --manifest-path | -p | --package) args+=("$1" "$2"); shift ;;
    *) echo "pgrx-install: unsupported argument $1" >&2; exit 2 ;;
  esac
  shift
done
have_pg_config=false
for a in "${args[@]}"; do case $a in -c | --pg-config) have_pg_config=true ;; esac; done
$have_pg_config || args+=(--pg-config "$PG_CONFIG")

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/pg_deident-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cargo pgrx package "${profile[@]}" "${args[@]}" --out-dir "$stage"

pkglibdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
# Earlier versions' install scripts (sql/versions/; pgrx packages only the current one and the
# upgrade scripts in sql/): with them a DBA, and tests/upgrade.sh, can create an old version and
# update it.
cp sql/versions/pg_deident--*.sql "$stage$extdir/"
# The library first, the control file last: a CREATE EXTENSION that starts meanwhile finds the
# new script with the new library, or everything old.
mapfile -t files < <(cd "$stage" && for p in '*.so' '*.sql' '*.control'; do find . -type f -name "$p"; done)
[ ${#files[@]} -ge 3 ] || { echo "pgrx-install: cargo pgrx package produced ${#files[@]} files" >&2; exit 1; }
for f in "${files[@]}"; do
  dst=/${f#./}
  case $(dirname "$dst") in
    "$pkglibdir") mode=0755 ;;
    "$extdir") mode=0644 ;;
    *) echo "pgrx-install: unexpected file $dst in the package" >&2; exit 1 ;;
  esac
  tmp=$(dirname "$dst")/.$(basename "$dst").new.$$
  as_root install -m "$mode" "$stage/${f#./}" "$tmp"
  as_root mv -f "$tmp" "$dst"
  echo "pgrx-install: $dst"
done
