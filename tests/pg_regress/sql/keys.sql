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
SELECT current_setting('data_directory') || '/deident/live.keys' AS live_keys \gset
COPY (SELECT 'k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f')
  TO :'live_keys';
COPY (SELECT) TO PROGRAM 'chmod 0600 deident/live.keys';
ALTER SYSTEM SET deident.key_file = 'deident/live.keys';
SELECT regress_reload();
SELECT deident.key_fingerprint(), deident.pseudonymize('alice@contoso.com');
-- the file is rewritten with another key: the next statement uses it
COPY (SELECT 'k1:202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f')
  TO :'live_keys';
SELECT deident.key_fingerprint(), deident.pseudonymize('alice@contoso.com');
-- fail (chmod g+r: refused from the next statement on, though the content is unchanged)
COPY (SELECT) TO PROGRAM 'chmod 0640 deident/live.keys';
SELECT regress_error($$SELECT deident.pseudonymize('alice@contoso.com')$$);
-- OK: chmod back
COPY (SELECT) TO PROGRAM 'chmod 0600 deident/live.keys';
SELECT deident.key_fingerprint();
-- a procedure that commits keeps its expressions (and their per-call-site check) across
-- transactions: the key file is checked again in each new transaction
CREATE PROCEDURE regress_across_commits() LANGUAGE plpgsql AS $$
DECLARE p text;
BEGIN
  p := deident.pseudonymize('alice@contoso.com');
  RAISE NOTICE 'first transaction: %', p;
  COMMIT;
  EXECUTE $x$COPY (SELECT) TO PROGRAM 'chmod 0640 deident/live.keys'$x$;
  COMMIT;
  p := deident.pseudonymize('alice@contoso.com');
  RAISE NOTICE 'third transaction: %', p;
END $$;
-- fail (the chmod is noticed in the third transaction)
CALL regress_across_commits();
DROP PROCEDURE regress_across_commits();
COPY (SELECT) TO PROGRAM 'rm deident/live.keys';

-- 6. no key material anywhere a user can look: settings hold a path, not a key
SELECT name, setting FROM pg_settings WHERE name LIKE 'deident.%' ORDER BY name;
SELECT count(*) AS key_bytes_in_catalog
  FROM pg_proc WHERE prosrc ~* '000102030405060708090a0b0c0d0e0f';

ALTER SYSTEM RESET deident.key_file;
SELECT regress_reload();
SHOW deident.key_file;
SELECT deident.key_fingerprint();
DROP ROLE regress_analyst;
