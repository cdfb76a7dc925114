#!/usr/bin/env bash
# Installs what building and testing pg_deident needs, on Debian 12; safe to run again.
# Debian packages, cargo-pgrx 0.18.1, the project's pgrx configuration (pgrx-config/), and the
# `postgres` OS user that test clusters run as when we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

PGRX_VERSION=0.18.1
PACKAGES=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang pkg-config sudo)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

scripts/apt-install.sh "${PACKAGES[@]}" | sed 's/^/deps: /'

if ! id postgres >/dev/null 2>&1; then
  as_root useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$tool" || { echo "deps: cargo $tool is missing and cannot be installed" >&2; exit 1; }
  fi
done

if ! cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx $PGRX_VERSION"; then
  echo "deps: installing cargo-pgrx $PGRX_VERSION (a few minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --quiet
fi

if ! grep -qx "pg$PG_MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml" 2>/dev/null; then
  cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG" >/dev/null
fi
