# The project's environment, in one place: every script sources this file (directly, or through
# scripts/cluster.sh). It only sets variables.
#
# PGRX_HOME: cargo-pgrx and pgrx-pg-sys's build script read $PGRX_HOME/config.toml to find the
# PostgreSQL to build against; ours (pgrx-config/) names the system PostgreSQL 15, whatever a
# user's ~/.pgrx holds. Plain `cargo build` / `cargo clippy` run outside these scripts get the
# same value from .cargo/config.toml's [env] (cargo-pgrx itself does not read that file).

DEIDENT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PGRX_HOME="$DEIDENT_ROOT/pgrx-config"
PG_MAJOR=15
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
