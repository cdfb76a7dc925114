--
-- nopreload: the server was restarted without shared_preload_libraries = 'pg_deident'.
--
CREATE DATABASE regress_nopreload;
\c regress_nopreload
-- fail (CREATE EXTENSION says how to fix it)
CREATE EXTENSION pg_deident;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'pg_deident';
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'deident';
-- fail (an existing installation refuses to work rather than run without its settings)
\c regress_deident_kept
SELECT deident.pseudonymize('alice@contoso.com');
SELECT deident.key_fingerprint();
\c deident_regress
DROP DATABASE regress_deident_kept;
DROP DATABASE regress_nopreload;
