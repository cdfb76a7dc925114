#!/usr/bin/env bash
# The Debian package (scripts/package.sh) on this machine: it installs, a fresh cluster
# creates the extension from it and gives SPEC's pseudonyms, and it removes cleanly. Prints
# "test NAME ... ok" or "... FAILED" lines; exit status 1 if any failed. Afterwards the
# extension built from this tree is installed again (scripts/pgrx-install.sh), as it was.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
status=0
ok() { echo "test $1 ... ok  ${2:-}"; }
failed() { echo "test $1 ... FAILED  ${2:-}"; status=1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

out=$(scripts/package.sh) || { echo "$out"; failed package_builds; exit 1; }
deb=$(echo "$out" | sed -n 's/^package: \(.*\.deb\)$/\1/p')
name=$(dpkg-deb -f "$deb" Package)
version=$(dpkg-deb -f "$deb" Version)
meta=$(dirname "$deb")/META.json
if [[ "$(dpkg-deb -f "$deb" Depends)" == "postgresql-$PG_MAJOR, libc6 (>= "* ]] \
   && dpkg-deb -I "$deb" md5sums >/dev/null \
   && [ "$(grep -c "\"version\": \"$version\"" "$meta")" = 2 ] && ! grep -q '@' <(grep -v maintainers "$meta"); then
  ok package_builds "($(basename "$deb"), $(du -k "$deb" | cut -f1) kB, and META.json)"
else
  failed package_builds "(Depends: $(dpkg-deb -f "$deb" Depends))"
fi

lib=$("$PG_CONFIG" --pkglibdir)/pg_deident.so
control=$("$PG_CONFIG" --sharedir)/extension/pg_deident.control
dpkg_log=$(mktemp)
as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$dpkg_log" 2>&1 || cat "$dpkg_log"
if dpkg-query -W -f='${Status}' "$name" | grep -q "install ok installed" \
   && dpkg -L "$name" | grep -qx "$lib" && dpkg -L "$name" | grep -qx "$control"; then
  ok package_installs "($(dpkg -L "$name" | grep -c '\.sql$') SQL scripts, the library, the control file)"
else
  failed package_installs
fi

# A fresh cluster with SPEC's test key: CREATE EXTENSION from the package, SPEC's vectors.
DIR=$(mktemp -d /tmp/pg_deident-package.XXXXXX)
trap 'cluster_stop "$DIR"; rm -rf "$DIR"' EXIT
cluster_create "$DIR" deident/spec.keys </dev/null
as_owner mkdir -m 0700 "$DIR/data/deident"
printf 'k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n' \
  | as_owner tee "$DIR/data/deident/spec.keys" >/dev/null
as_owner chmod 0600 "$DIR/data/deident/spec.keys"
cluster_start "$DIR"
got=$(cluster_psql "$DIR" -d postgres -Atq -c "CREATE EXTENSION pg_deident" \
  -c "SELECT deident.pseudonymize('alice@contoso.com') || ' ' || deident.pseudonymize('alice@contoso.com', 'hr')")
if [ "$got" = "v93e04Lf13mhIkvv9IgWVb 9td7vVl8PG62dsYqhCVAZA" ]; then
  ok package_creates_extension "(SPEC's vectors from the packaged library)"
else
  failed package_creates_extension "(got: $got)"
fi
cluster_stop "$DIR"

as_root env DEBIAN_FRONTEND=noninteractive dpkg -r "$name" >"$dpkg_log" 2>&1 || cat "$dpkg_log"
rm -f "$dpkg_log"
left=$(ls "$lib" "$control" "$("$PG_CONFIG" --sharedir)"/extension/pg_deident--*.sql 2>/dev/null)
if ! dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" && [ -z "$left" ]; then
  ok package_removes "(no pg_deident file left)"
else
  failed package_removes "(left: $left)"
fi

scripts/pgrx-install.sh >/dev/null 2>&1 || { echo "package: could not reinstall the tree's build" >&2; status=1; }
exit $status
