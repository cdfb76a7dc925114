--
-- setup: install the extension, and the helpers the other files use.
--
-- OK: the server preloads pg_deident
CREATE EXTENSION pg_deident;
SELECT extname, extnamespace::regnamespace AS schema, extrelocatable
  FROM pg_extension WHERE extname = 'pg_deident';
-- fail (fixed schema: not relocatable)
ALTER EXTENSION pg_deident SET SCHEMA public;
-- every function for users, with its volatility, strictness and parallel safety
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel,
       pg_get_function_result(p.oid) AS result
  FROM pg_proc p WHERE p.pronamespace = 'deident'::regnamespace
   AND p.prokind = 'f' AND p.proname NOT LIKE '\_%'
 ORDER BY p.oid::regprocedure::text;
-- the aggregates: one per person type (text, uuid, bigint, integer) and value type, all
-- parallel safe with a combine function, and, for internal states, serialize and deserialize
-- functions (a k_state is sealed when it is flattened instead)
SELECT p.proname, count(*) AS overloads, string_agg(DISTINCT p.proparallel::text, '') AS parallel,
       bool_and(a.aggcombinefn <> 0 AND (a.aggtranstype <> 'internal'::regtype
                                          OR a.aggserialfn <> 0 AND a.aggdeserialfn <> 0)) AS partial,
       string_agg(DISTINCT format_type(a.aggtranstype, NULL), ',') AS state,
       string_agg(DISTINCT pg_get_function_result(p.oid), ', ') AS results
  FROM pg_proc p JOIN pg_aggregate a ON a.aggfnoid = p.oid
 WHERE p.pronamespace = 'deident'::regnamespace GROUP BY p.proname ORDER BY p.proname;
-- the k-aggregates' (and dp_count's) support functions are over k_state, none over internal
-- but deident._k_partial's four (its transition value is internal: src/aggregates/partial.rs,
-- Packed; they run for deident._k_partial alone), and for PUBLIC (Citus checks the caller's
-- privilege on them); they refuse to run outside an aggregate (k_state.sql)
SELECT 'internal'::regtype = ANY (p.proargtypes::oid[]) AS over_internal, count(*) AS support_functions,
       count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE')) AS executable_by_public
  FROM pg_proc p WHERE p.pronamespace = 'deident'::regnamespace AND p.proname LIKE '\_k\_%'
 GROUP BY 1 ORDER BY 1;

-- regress_error(sql): runs sql and shows the error it raises: SQLSTATE, message, detail, hint.
CREATE FUNCTION regress_error(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  msg text; det text; hnt text;
BEGIN
  EXECUTE sql;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg
      || CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
      || CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END $$;

-- regress_reload(): reloads the configuration; the backend applies it before its next
-- statement (postgres.c, ConfigReloadPending), which the sleep leaves time to be signalled.
CREATE FUNCTION regress_reload() RETURNS void LANGUAGE sql AS $$
  SELECT pg_reload_conf(); SELECT pg_sleep(0.3);
$$;

-- fail (a schema named deident made beforehand by a role that is not a superuser: it could
-- hold objects that would capture calls to ours)
CREATE DATABASE regress_squat;
CREATE ROLE regress_squatter;
GRANT CREATE ON DATABASE regress_squat TO regress_squatter;
\c regress_squat
SET ROLE regress_squatter;
CREATE SCHEMA deident;
RESET ROLE;
CREATE EXTENSION pg_deident;
-- fail (a superuser's schema that grants CREATE to others, or already holds objects)
ALTER SCHEMA deident OWNER TO postgres;
GRANT CREATE ON SCHEMA deident TO regress_squatter;
CREATE EXTENSION pg_deident;
REVOKE CREATE ON SCHEMA deident FROM regress_squatter;
CREATE FUNCTION deident.format(text, text, text) RETURNS text LANGUAGE sql AS 'SELECT ''captured''';
CREATE EXTENSION pg_deident;
-- OK: an empty schema of the superuser's own
DROP FUNCTION deident.format(text, text, text);
CREATE EXTENSION pg_deident;
SELECT extname FROM pg_extension WHERE extname = 'pg_deident';
\c deident_regress
DROP DATABASE regress_squat;
DROP ROLE regress_squatter;

-- A second database keeps the extension for the schedule run without the preload.
CREATE DATABASE regress_deident_kept;
\c regress_deident_kept
CREATE EXTENSION pg_deident;
\c deident_regress
