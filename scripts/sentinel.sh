# A "sentinel" server for scripts/test.sh: it runs pg_deident while the suite installs another
# build of it, the way a DBA's server does during an upgrade. Source this file (after
# scripts/cluster.sh); it defines functions and changes nothing by itself.
#
#   sentinel_start DIR    a cluster preloading the installed build; one psql session (a bash
#                         coproc) that has called deident.pseudonymize; a prober that opens a new
#                         session every half second and calls deident.pseudonymize_uuid
#   sentinel_check DIR    after the install: prints the two test lines
#                           test install_keeps_running_server ... ok | FAILED
#                           test install_keeps_new_sessions   ... ok | FAILED
#                         and returns non-zero if either failed
#   sentinel_stop DIR     stops everything (safe to call more than once)
#
# The key is SPEC's public test key (bytes 0x00..0x1f), so the answers are known: a running
# session must keep computing the right pseudonym, not merely some answer.

SENTINEL_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
SENTINEL_TEXT=v93e04Lf13mhIkvv9IgWVb                   # pseudonymize('alice@contoso.com')
SENTINEL_UUID=6f74462f-c288-82af-b180-f9c4c364f403     # pseudonymize_uuid('alice@contoso.com')
SENTINEL_FINGERPRINT=aa64df96b4a4ccb8
SENTINEL_IN=''  # fds of the long-lived session, duplicated from the coproc's (bash closes a
SENTINEL_OUT='' # coproc's own fds in subshells)
SENTINEL_PROBER=''

# One statement in the long-lived session; prints its one-line answer, or fails after 30 s or
# when the session is gone.
sentinel_ask() { # SQL
  printf '%s\n' "$1" >&"$SENTINEL_OUT" 2>/dev/null || return 1
  local line
  IFS= read -r -t 30 line <&"$SENTINEL_IN" || return 1
  printf '%s\n' "$line"
}

sentinel_start() { # DIR
  local dir=$1 answer
  cluster_create "$dir" "$dir/keys/sentinel.keys" </dev/null
  # shellcheck disable=SC2016 # $1 is expanded by the inner sh
  printf 'k1:%s\n' "$SENTINEL_KEY" | as_owner sh -c 'umask 077; cat >"$1"' sh "$dir/keys/sentinel.keys"
  cluster_start "$dir"
  cluster_psql "$dir" -q -d postgres -c "CREATE EXTENSION pg_deident"

  coproc SENTINEL_PSQL { "$PGBIN/psql" -X -At -h "$dir" -p 5432 -U postgres -d postgres 2>&1; }
  exec {SENTINEL_IN}<&"${SENTINEL_PSQL[0]}" {SENTINEL_OUT}>&"${SENTINEL_PSQL[1]}"
  answer=$(sentinel_ask "SELECT deident.pseudonymize('alice@contoso.com');") || answer=''
  if [ "$answer" != "$SENTINEL_TEXT" ]; then
    echo "sentinel: the session answered '$answer'" >&2
    return 1
  fi
  sentinel_ask "SELECT pg_backend_pid();" >"$dir/session.pid"
  head -n 1 "$dir/data/postmaster.pid" >"$dir/postmaster.pid"

  : >"$dir/probe.log"
  (
    while [ ! -e "$dir/probe.stop" ]; do
      out=$("$PGBIN/psql" -X -At -h "$dir" -p 5432 -U postgres -d postgres \
        -c "SELECT deident.pseudonymize_uuid('alice@contoso.com')" 2>&1 | sed -n 1p)
      if [ "$out" = "$SENTINEL_UUID" ]; then echo ok; else echo "failed: $out"; fi >>"$dir/probe.log"
      sleep 0.5
    done
  ) &
  SENTINEL_PROBER=$!
}

sentinel_check() { # DIR
  local dir=$1 status=0 answer expected postmaster probes failures
  touch "$dir/probe.stop"
  [ -n "$SENTINEL_PROBER" ] && wait "$SENTINEL_PROBER" 2>/dev/null
  SENTINEL_PROBER=''

  # The same session, the same function; then one it has not called yet, which makes the
  # server look the library up by name again (fmgr, dfmgr.c).
  expected="$(cat "$dir/session.pid")|$SENTINEL_TEXT|$SENTINEL_FINGERPRINT"
  answer=$(sentinel_ask "SELECT pg_backend_pid() || '|' || deident.pseudonymize('alice@contoso.com') || '|' || deident.key_fingerprint();") || answer='(no answer: the session is gone)'
  postmaster=$(cat "$dir/postmaster.pid")
  if [ "$answer" = "$expected" ] && kill -0 "$postmaster" 2>/dev/null &&
    [ "$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)" = "$postmaster" ] &&
    ! grep -qE 'terminated by signal|was terminated|server process .* exited' "$dir/server.log"; then
    echo "test install_keeps_running_server  ... ok  (one session and its postmaster survived the install)"
  else
    echo "test install_keeps_running_server  ... FAILED"
    echo "  expected '$expected', got '$answer'; postmaster $postmaster $(kill -0 "$postmaster" 2>/dev/null && echo alive || echo gone)"
    grep -E 'terminated|exited|PANIC|FATAL|could not' "$dir/server.log" | tail -n 8 | sed 's/^/  server log: /'
    status=1
  fi

  probes=$(wc -l <"$dir/probe.log")
  failures=$(grep -c '^failed' "$dir/probe.log" || true)
  if [ "$probes" -gt 0 ] && [ "$failures" -eq 0 ]; then
    echo "test install_keeps_new_sessions    ... ok  ($probes new sessions during the install, all answered)"
  else
    echo "test install_keeps_new_sessions    ... FAILED ($failures of $probes new sessions failed)"
    grep '^failed' "$dir/probe.log" | sort | uniq -c | sort -rn | sed -n 1,3p | sed 's/^/  /'
    status=1
  fi
  return $status
}

sentinel_stop() { # DIR
  local dir=$1
  [ -d "$dir" ] && touch "$dir/probe.stop"
  if [ -n "$SENTINEL_PROBER" ]; then wait "$SENTINEL_PROBER" 2>/dev/null; SENTINEL_PROBER=''; fi
  if [ -n "$SENTINEL_OUT" ]; then
    printf '\\q\n' >&"$SENTINEL_OUT" 2>/dev/null
    exec {SENTINEL_OUT}>&- {SENTINEL_IN}<&-
    SENTINEL_OUT='' SENTINEL_IN=''
  fi
  cluster_stop "$dir"
}
