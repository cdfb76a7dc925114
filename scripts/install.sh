#!/usr/bin/env bash
# Builds pg_deident and installs it into the system PostgreSQL (root, or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/cluster.sh
install_extension "$@" >/dev/null
