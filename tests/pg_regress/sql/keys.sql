--
-- keys: SPEC "Keys": the key ring file, the active key, reloads, file changes, and every
-- error. No key bytes and no key-file line ever appear in a message; the path and the active
-- key id are shown to superusers only.
--
CREATE ROLE regress_analyst LOGIN;

-- 1. the active key: '' is the first key; naming k2 switches every default call
SHOW deident.key_file;
SHOW deident.active_key;
SELECT deident.key_fingerprint() AS active, deident.pseudonymize('alice@contoso.com');
ALTER SYSTEM SET deident.active_key = 'k2';
SELECT regress_reload();
SHOW deident.active_key;
SELECT deident.key_fingerprint() = deident.key_fingerprint('k2') AS k2_is_active,
       deident.pseudonymize('alice@contoso.com') = deident.pseudonymize('alice@contoso.com', '', 22, 'k2') AS uses_k2;
-- fail (the active key is not in the file)
ALTER SYSTEM SET deident.active_key = 'k9';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- an explicit key id still needs a usable key ring
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com', '', 22, 'k1')$$);
-- the analyst is told neither the setting nor the path
SET ROLE regress_analyst;
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
RESET ROLE;
ALTER SYSTEM RESET deident.active_key;
SELECT regress_reload();

-- 2. key rotation: another file after a reload
ALTER SYSTEM SET deident.key_file = 'deident/k2only.keys';
SELECT regress_reload();
SELECT deident.key_fingerprint() AS k2, deident.pseudonymize('alice@contoso.com');
-- fail (k1 is gone with the old file)
SELECT regress_error($$SELECT deident.key_fingerprint('k1')$$);

-- 3. every broken key file, as a superuser sees it: the path and line number, never a line
-- fail (missing)
ALTER SYSTEM SET deident.key_file = 'deident/absent.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- fail (group-readable, then world-readable)
ALTER SYSTEM SET deident.key_file = 'deident/groupread.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
SELECT regress_error($$SELECT deident.key_fingerprint()$$);
ALTER SYSTEM SET deident.key_file = 'deident/worldread.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize_uuid('alice@contoso.com')$$);
-- fail (no colon on line 3; the line holds a key that must not be echoed)
ALTER SYSTEM SET deident.key_file = 'deident/nocolon.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- fail (bad key id, bad hex digit, short key, duplicate id, no keys at all)
ALTER SYSTEM SET deident.key_file = 'deident/badid.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
ALTER SYSTEM SET deident.key_file = 'deident/badhex.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
ALTER SYSTEM SET deident.key_file = 'deident/short.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize_bigint('alice@contoso.com')$$);
ALTER SYSTEM SET deident.key_file = 'deident/dup.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
ALTER SYSTEM SET deident.key_file = 'deident/empty.keys';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- fail (a directory)
ALTER SYSTEM SET deident.key_file = 'deident/adir';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- fail (no key file configured)
ALTER SYSTEM SET deident.key_file = '';
SELECT regress_reload();
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);

-- 4. the same failures as an analyst sees them: no path, no setting; the hint sends them to
-- a superuser. Messages for the server log only are never sent, whatever client_min_messages.
SET ROLE regress_analyst;
SET client_min_messages = log;
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
RESET ROLE;
ALTER SYSTEM SET deident.key_file = 'deident/nocolon.keys';
SELECT regress_reload();
SET ROLE regress_analyst;
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
RESET ROLE;
ALTER SYSTEM SET deident.key_file = 'deident/groupread.keys';
SELECT regress_reload();
SET ROLE regress_analyst;
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
RESET client_min_messages;
RESET ROLE;

-- 5. the file changes under a running server, with no reload: a new key, a chmod, a fix
-- (the key files are copies of the fixtures: no key is ever written in a test's text)
-- (each program reads the row COPY writes to it first: one that exits before COPY has
-- written it fails the statement with a broken pipe, as CI once saw)
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/live.keys && chmod 0600 deident/live.keys';
ALTER SYSTEM SET deident.key_file = 'deident/live.keys';
SELECT regress_reload();
SELECT deident.key_fingerprint(), deident.pseudonymize('alice@contoso.com');
-- the file is rewritten with other keys (k2 alone): the next statement uses it
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/live.keys';
SELECT deident.key_fingerprint(), deident.pseudonymize('alice@contoso.com');
-- fail (chmod g+r: refused from the next statement on, though the content is unchanged)
COPY (SELECT) TO PROGRAM 'cat >/dev/null; chmod 0640 deident/live.keys';
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- OK: chmod back
COPY (SELECT) TO PROGRAM 'cat >/dev/null; chmod 0600 deident/live.keys';
SELECT deident.key_fingerprint();
-- a procedure that commits keeps its expressions (and their per-call-site check) across
-- transactions: the key file is checked again in each new transaction
CREATE PROCEDURE regress_across_commits() LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  p := deident.pseudonymize('alice@contoso.com');
  RAISE NOTICE 'first transaction: %', p;
  COMMIT;
  EXECUTE $x$COPY (SELECT) TO PROGRAM 'cat >/dev/null; chmod 0640 deident/live.keys'$x$;
  COMMIT;
  p := deident.pseudonymize('alice@contoso.com');
  RAISE NOTICE 'third transaction: %', p;
END $$;
-- fail (the chmod is noticed in the third transaction)
CALL regress_across_commits();
DROP PROCEDURE regress_across_commits();
COPY (SELECT) TO PROGRAM 'cat >/dev/null; rm deident/live.keys';

-- 6. no key material anywhere a user can look: settings hold a path, not a key (the whole
-- cluster's catalogs, tables and settings, the server log and these outputs are searched for
-- key bytes by scripts/regress.sh, with pg_dumpall)
SELECT name, setting FROM pg_settings WHERE name LIKE 'deident.%' ORDER BY name;

-- 7. key rotation is atomic per statement: a statement keeps the key ring it started with,
-- in every expression, nested query and parallel worker; the next statement sees the new one
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys && chmod 0600 deident/rotate.keys';
ALTER SYSTEM SET deident.key_file = 'deident/rotate.keys';
SELECT regress_reload();
-- regress_rotate(v): v's pseudonym, then the key file rewritten in place with k2 alone
CREATE FUNCTION regress_rotate(v text) RETURNS text LANGUAGE plpgsql PARALLEL RESTRICTED AS $$
DECLARE p text := deident.pseudonymize(v);
BEGIN
  COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
  RETURN p;
END $$;
-- OK: the call after the rewrite, in the same statement, still uses the statement's key
SELECT regress_rotate('alice@contoso.com') AS before_rewrite,
       deident.pseudonymize('alice@contoso.com') AS after_rewrite_same_statement;
-- the next statement uses the new key
SELECT deident.key_fingerprint(), deident.pseudonymize('alice@contoso.com');
-- an unknown key id is echoed short: at most 32 printable characters
SELECT regress_error($$SELECT deident.pseudonymize('a', '', 22, repeat('x', 500))$$);
SELECT regress_error($$SELECT deident.key_fingerprint(E'k\u00e9\n')$$);
-- a parallel query whose workers start after the file changed under the statement: the
-- workers read another ring than the leader published, and the statement fails rather than
-- compare K2 pseudonyms with a K1 one (without the check it would answer 0, silently)
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
CREATE TABLE regress_same AS SELECT 'alice@contoso.com'::text AS v FROM generate_series(1, 5000);
ANALYZE regress_same;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FILTER (WHERE deident.pseudonymize(v) = (SELECT regress_rotate(v) FROM regress_same LIMIT 1))
  FROM regress_same;
-- fail (the key ring changed while the statement ran)
SELECT count(*) FILTER (WHERE deident.pseudonymize(v) = (SELECT regress_rotate(v) FROM regress_same LIMIT 1))
  FROM regress_same;
-- OK: with the file left alone, workers and leader agree (5000 rows match), and the workers
-- did the hashing
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FILTER (WHERE deident.pseudonymize(v) = (SELECT deident.pseudonymize(v) FROM regress_same LIMIT 1))
  FROM regress_same;
SELECT count(*) FILTER (WHERE deident.pseudonymize(v) = (SELECT deident.pseudonymize(v) FROM regress_same LIMIT 1))
  FROM regress_same;
-- a parallel index build does not run through the executor, so its workers cannot check the
-- ring: refused with its own message (an IMMUTABLE wrapper is needed to index a pseudonym at
-- all, and is wrong: the pseudonym changes with the key)
CREATE FUNCTION regress_pz(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT deident.pseudonymize(v) $$;
ALTER TABLE regress_same SET (parallel_workers = 2);
SET max_parallel_maintenance_workers = 2;
-- fail (workers cannot check the ring)
CREATE INDEX regress_same_pz ON regress_same (regress_pz(v));
-- OK: without workers
SET max_parallel_maintenance_workers = 0;
CREATE INDEX regress_same_pz ON regress_same (regress_pz(v));
RESET max_parallel_maintenance_workers;
DROP INDEX regress_same_pz;
DROP FUNCTION regress_pz(text);
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
DROP TABLE regress_same;
DROP FUNCTION regress_rotate(text);
-- a cursor keeps the ring of its query across FETCHes (each a statement of its own), however
-- the file changes between them; a new query in the same transaction takes the new ring
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
BEGIN;
DECLARE regress_c CURSOR FOR
  SELECT g, deident.pseudonymize('alice@contoso.com') FROM generate_series(1, 4) g;
FETCH 2 FROM regress_c;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
FETCH 2 FROM regress_c;
SELECT deident.pseudonymize('alice@contoso.com') AS new_query;
COMMIT;
-- but a statement that reads such a cursor and also pseudonymizes anew would use two rings:
-- refused, whichever comes first
CREATE FUNCTION regress_fetch() RETURNS text LANGUAGE plpgsql
  AS $$ DECLARE c refcursor := 'regress_c2'; r text; BEGIN FETCH c INTO r; RETURN r; END $$;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
BEGIN;
DECLARE regress_c2 CURSOR FOR
  SELECT deident.pseudonymize('alice@contoso.com') FROM generate_series(1, 4);
FETCH 1 FROM regress_c2;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
SAVEPOINT s;
-- fail (the cursor's ring, then the statement's)
SELECT regress_fetch() AS from_cursor, deident.pseudonymize('alice@contoso.com') AS fresh;
ROLLBACK TO s;
-- fail (the statement's ring, then the cursor's)
SELECT deident.pseudonymize('alice@contoso.com') AS fresh, regress_fetch() AS from_cursor;
ROLLBACK;
DROP FUNCTION regress_fetch();
-- a PL/pgSQL expression keeps its call site for the transaction: it takes each statement's
-- ring, and a parameter (the domain) that changes from call to call is not mistaken for a
-- constant
CREATE FUNCTION regress_p(v text, d text) RETURNS text LANGUAGE plpgsql
  AS $$ BEGIN RETURN deident.pseudonymize(v, d); END $$;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
BEGIN;
SELECT regress_p('alice@contoso.com', '') AS k1;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
SELECT regress_p('alice@contoso.com', '') AS k2, regress_p('alice@contoso.com', 'hr') AS k2_hr,
       deident.pseudonymize('alice@contoso.com', 'hr', 22, 'k2') AS expected_k2_hr;
COMMIT;
DROP FUNCTION regress_p(text, text);
-- a k_state sealed under a key that the file no longer holds is refused from the next
-- statement on, also right after a statement read it under the old ring (a review had such a
-- state accepted once, as a literal and through a cursor, when the input function kept what
-- it opened for the combine function that followed)
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
CREATE AGGREGATE regress_partial(integer, text) (SFUNC = deident._k_trans, STYPE = deident.k_state);
CREATE AGGREGATE regress_combined(deident.k_state) (SFUNC = deident._k_combine,
  STYPE = deident.k_state, FINALFUNC = deident._k_sum_int8_final, FINALFUNC_MODIFY = READ_WRITE);
CREATE TABLE regress_k1_state AS
  SELECT regress_partial(g, 'p' || g)::text AS s FROM generate_series(1, 10) g;
SELECT s AS k1_state FROM regress_k1_state \gset
-- OK: read and combined under the ring that sealed it
SELECT regress_combined(s::deident.k_state) AS combined FROM regress_k1_state;
SELECT :'k1_state'::deident.k_state IS NOT NULL AS read_before_rotation;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
-- fail (a literal, parsed before its statement's executor starts; terse: the error's
-- position would quote the state, whose nonce is random)
\set VERBOSITY terse
SELECT :'k1_state'::deident.k_state IS NOT NULL AS read_after_rotation;
\set VERBOSITY default
-- fail (a cursor whose first FETCH comes after the rotation)
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/regress.keys deident/rotate.keys';
BEGIN;
DECLARE regress_kc CURSOR FOR SELECT regress_combined(s::deident.k_state) FROM regress_k1_state;
SELECT s::deident.k_state IS NOT NULL AS read_before_rotation FROM regress_k1_state;
COPY (SELECT) TO PROGRAM 'cat >/dev/null; cp deident/k2only.keys deident/rotate.keys';
FETCH regress_kc;
ROLLBACK;
DROP TABLE regress_k1_state;
DROP AGGREGATE regress_partial(integer, text);
DROP AGGREGATE regress_combined(deident.k_state);
COPY (SELECT) TO PROGRAM 'cat >/dev/null; rm deident/rotate.keys';

-- 8. the path and the active key id go only to a superuser at the prompt: the session user
-- and the current user both superusers. Not to an analyst calling a superuser's SECURITY
-- DEFINER function (superuser() is true inside it), nor after a superuser's SET ROLE.
ALTER SYSTEM SET deident.key_file = 'deident/groupread.keys';
SELECT regress_reload();
CREATE FUNCTION regress_definer_fingerprint() RETURNS text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT deident.key_fingerprint() $$;
GRANT EXECUTE ON FUNCTION regress_definer_fingerprint() TO regress_analyst;
-- OK: a superuser at the prompt is told the path
SELECT regress_error($$SELECT regress_definer_fingerprint()$$);
-- an analyst's session calling the superuser's function: no path
SET SESSION AUTHORIZATION regress_analyst;
SELECT session_user, current_user;
SELECT regress_error($$SELECT regress_definer_fingerprint()$$);
RESET SESSION AUTHORIZATION;
-- the same for the active key id
ALTER SYSTEM SET deident.key_file = 'deident/regress.keys';
ALTER SYSTEM SET deident.active_key = 'k9';
SELECT regress_reload();
SET SESSION AUTHORIZATION regress_analyst;
SELECT regress_error($$SELECT regress_definer_fingerprint()$$);
RESET SESSION AUTHORIZATION;
SELECT regress_error($$SELECT regress_definer_fingerprint()$$);
ALTER SYSTEM RESET deident.active_key;
DROP FUNCTION regress_definer_fingerprint();

ALTER SYSTEM RESET deident.key_file;
SELECT regress_reload();
SHOW deident.key_file;
SELECT deident.key_fingerprint();
DROP ROLE regress_analyst;
