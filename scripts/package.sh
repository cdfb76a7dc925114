#!/usr/bin/env bash
# `make package`: a Debian package of pg_deident for the system PostgreSQL, and the PGXN
# distribution's META.json, in target/package/.
#   - the .deb: `cargo pgrx package` (a release build) stages the files under their install paths
#     (the library in `pg_config --pkglibdir`, the control and SQL scripts in
#     `pg_config --sharedir`/extension), then `dpkg-deb` wraps them with packaging/control,
#     whose version and architecture come from Cargo.toml and dpkg. It Depends on the server
#     package (postgresql-15): the library is built against that server's headers. dpkg
#     installs each file by renaming a new one over the old, so servers that have the library
#     mapped keep running (scripts/pgrx-install.sh explains why that matters).
#   - META.json: packaging/META.json.in with the version filled in.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$DEIDENT_ROOT"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
name=postgresql-$PG_MAJOR-pg-deident
out=$DEIDENT_ROOT/target/package
# A released version's install script is frozen in sql/versions/: building that version again
# from another tree would ship another script under its name.
if [ -f "sql/versions/pg_deident--$version.sql" ]; then
  echo "package: version $version is released (sql/versions/); move Cargo.toml's version on" >&2
  exit 1
fi
stage=$(mktemp -d "${TMPDIR:-/tmp}/pg_deident-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"

cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$stage/root" >"$stage/build.log" 2>&1 \
  || { cat "$stage/build.log"; exit 1; }
# only the install paths: the library and the extension's files
pkglibdir=$("$PG_CONFIG" --pkglibdir)
extdir=$("$PG_CONFIG" --sharedir)/extension
while IFS= read -r f; do
  case $(dirname "/${f#./}") in
    "$pkglibdir" | "$extdir") ;;
    *) echo "package: unexpected file /${f#./} from cargo pgrx package" >&2; exit 1 ;;
  esac
done < <(cd "$stage/root" && find . -type f)
# earlier versions' install scripts, which pgrx does not package (scripts/pgrx-install.sh)
cp sql/versions/pg_deident--*.sql "$stage/root$extdir/"
find "$stage/root" -type d -exec chmod 0755 {} +
find "$stage/root" -type f -name '*.so' -exec chmod 0644 {} +
find "$stage/root" -type f ! -name '*.so' -exec chmod 0644 {} +

mkdir -p "$stage/root/DEBIAN"
# the C library the build linked against, at least (what dpkg-shlibdeps would say, without
# needing dpkg-dev)
libc=$(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@PG_MAJOR@/$PG_MAJOR/g" \
  -e "s/@LIBC@/$libc/" -e "s/@SIZE@/$(du -sk "$stage/root" | cut -f1)/" \
  packaging/control.in >"$stage/root/DEBIAN/control"
(cd "$stage/root" && find usr -type f -exec md5sum {} + | sort -k 2 >DEBIAN/md5sums)
rm -f "$out"/*.deb
deb=$out/${name}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage/root" "$deb" >/dev/null
sed -e "s/@VERSION@/$version/g" packaging/META.json.in >"$out/META.json"
echo "package: $deb"
echo "package: $out/META.json"
