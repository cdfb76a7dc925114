# Sourced (after scripts/cluster.sh): a Citus cluster of a coordinator and two workers on this
# machine, each preloading citus and then pg_deident and reading the same key ring (SPEC's
# test key as k1), for tests/citus.sh and scripts/bench-citus.sh. Citus must be installed
# (scripts/citus.sh).

# citus_cluster_start BASE PORT0 [EXTRA_CONF]: nodes in BASE/n0..n2 on ports PORT0..PORT0+2,
# n0 the coordinator; the caller stops them (citus_cluster_stop BASE).
citus_cluster_start() {
  local base=$1 port0=$2 extra=${3:-} n
  local k1=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
  for n in 0 1 2; do
    cluster_create "$base/n$n" deident/citus.keys <<CONF
shared_preload_libraries = 'citus,pg_deident'
listen_addresses = 'localhost'
port = $((port0 + n))
wal_level = logical
max_prepared_transactions = 20
max_worker_processes = 16
citus.log_remote_commands = off
$extra
CONF
    as_owner mkdir -m 0700 "$base/n$n/data/deident"
    printf 'k1:%s\n' "$k1" | as_owner tee "$base/n$n/data/deident/citus.keys" >/dev/null
    as_owner chmod 0600 "$base/n$n/data/deident/citus.keys"
    cluster_start "$base/n$n" || { cat "$base/n$n/server.log"; return 1; }
  done
  for n in 0 1 2; do citus_node "$port0" "$n" -c "CREATE EXTENSION citus" || return 1; done
  citus_node "$port0" 0 -c "SELECT citus_set_coordinator_host('localhost', $port0)" \
    -c "SELECT citus_add_node('localhost', $((port0 + 1)))" \
    -c "SELECT citus_add_node('localhost', $((port0 + 2)))" >/dev/null
}

citus_cluster_stop() { # BASE
  local n
  for n in 0 1 2; do cluster_stop "$1/n$n"; done
}

citus_node() { # PORT0 N [psql args...]
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h localhost -p $(($1 + $2)) -U postgres -d postgres -Atq "${@:3}"
}
