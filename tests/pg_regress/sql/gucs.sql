--
-- gucs: an analyst (no superuser) may call every function, but can neither read nor change
-- any deident.* setting, placeholders included.
--
CREATE ROLE regress_analyst LOGIN;
CREATE ROLE regress_reader LOGIN IN ROLE pg_read_all_settings;

SET ROLE regress_analyst;
-- OK: the functions are for everyone
SELECT deident.pseudonymize('alice@contoso.com') AS pseudonym,
       deident.pseudonymize_uuid('alice@contoso.com') AS uuid,
       deident.pseudonymize_bigint('alice@contoso.com') AS bigint,
       deident.key_fingerprint() AS fingerprint;
-- fail (SHOW, current_setting)
SHOW deident.key_file;
SHOW deident.active_key;
SELECT current_setting('deident.key_file');
SELECT current_setting('deident.active_key', true);
-- hidden from pg_settings and SHOW ALL (deident.min_group_size is not secret)
SELECT name FROM pg_settings WHERE name LIKE 'deident.%';
SELECT name FROM pg_show_all_settings() WHERE name LIKE 'deident.%';
-- fail (SET, set_config, SET LOCAL, ALTER ROLE ... SET, ALTER SYSTEM)
SET deident.key_file = '/tmp/attacker.keys';
SELECT set_config('deident.key_file', '/tmp/attacker.keys', false);
BEGIN;
SET LOCAL deident.active_key = 'k2';
ROLLBACK;
ALTER ROLE regress_analyst SET deident.key_file = '/tmp/attacker.keys';
ALTER SYSTEM SET deident.key_file = '/tmp/attacker.keys';
-- fail (placeholders: the prefix is reserved, so no new deident.* setting can be made up)
SET deident.min_group_size_typo = 1;
SELECT set_config('deident.anything', 'x', false);
SELECT current_setting('deident.anything', true) IS NULL AS no_placeholder;
RESET ROLE;
-- fail (not even a superuser makes a placeholder)
SET deident.anything = 'x';
SELECT count(*) AS role_settings FROM pg_db_role_setting
 WHERE EXISTS (SELECT FROM unnest(setconfig) c WHERE c LIKE 'deident.%');

-- pg_read_all_settings may read settings, as PostgreSQL grants it (see README): the path is
-- visible to such a member, never the key
SET ROLE regress_reader;
SHOW deident.key_file;
RESET ROLE;

-- deident.min_group_size survives an analyst's RESET ALL and DISCARD ALL: a pooler that set
-- it as a superuser and then SET ROLE to the analyst keeps it (GUC_NO_RESET_ALL)
SET deident.min_group_size = 12;
SET ROLE regress_analyst;
RESET ALL;
SHOW deident.min_group_size;
-- fail (and a RESET of it alone needs a superuser, as SET does)
RESET deident.min_group_size;
DISCARD ALL;
SHOW deident.min_group_size;
RESET ROLE;
RESET deident.min_group_size;
SHOW deident.min_group_size;

DROP ROLE regress_analyst, regress_reader;
