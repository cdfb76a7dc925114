# Throwaway PostgreSQL clusters for the demo, the regression tests and the benchmark.
# Source this file; it defines functions and changes nothing by itself.
# A cluster lives in one directory: data/, keys/ (the key ring, 0700/0600), server.log, and the
# Unix socket (no TCP: listen_addresses is empty, so nothing listens on the network).

. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PGBIN=$("$PG_CONFIG" --bindir)

# Run a command as the cluster's owner: `postgres` when we are root (PostgreSQL refuses root).
as_owner() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
owner_name() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }

# Builds the extension and installs it into the system PostgreSQL (needs root, or sudo), safely
# for servers that are running it (scripts/pgrx-install.sh says how).
install_extension() { # [--release]
  "$DEIDENT_ROOT/scripts/pgrx-install.sh" "$@"
}

cluster_stop() { # DIR
  if [ -f "$1/data/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# Writes a random 32-byte key as KEY_ID:HEX to FILE, owner-only.
new_key_file() { # FILE KEY_ID
  local hex
  hex=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  (umask 077; printf '# pg_deident key ring (generated %s)\n%s:%s\n' "$(date -u +%FT%TZ)" "$2" "$hex" >"$1")
  chmod 0600 "$1"
  [ "$(id -u)" = 0 ] && chown postgres: "$1"
  return 0
}

# Creates DIR (removing an earlier cluster there) with an initialized, not yet started cluster
# that preloads pg_deident and uses KEY_FILE. Extra postgresql.conf lines come on stdin.
cluster_create() { # DIR KEY_FILE_SETTING
  local dir=$1
  cluster_stop "$dir"
  rm -rf "$dir"
  mkdir -p "$dir/keys"
  chmod 0700 "$dir/keys"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    --no-instructions >"$dir/initdb.log"
  {
    echo "shared_preload_libraries = 'pg_deident'"
    echo "deident.key_file = '$2'"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    echo "port = 5432"
    echo "fsync = off"
    cat
  } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
}

cluster_start() { # DIR
  as_owner "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w start >/dev/null
}

# psql against the cluster in DIR, as postgres, stopping at the first error.
cluster_psql() { # DIR [psql args...]
  local dir=$1; shift
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres "$@"
}
