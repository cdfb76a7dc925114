-- Benchmark: what reading through a restricted role costs. A restricted role's plain
-- `SELECT email FROM people` (rewritten to pseudonyms by the planner hook) against the
-- superuser's `SELECT deident.pseudonymize(email) FROM people`, which is what the restricted
-- role gets; the plain scan `SELECT email FROM people` as the superuser for scale. 1,000,000
-- rows, e-mails of 20-27 bytes, serial plans, default settings, runs interleaved, medians.
-- Each query runs to its end and its rows are discarded (bench/lib/harness.sql). Also one
-- that reads no identifier column (`SELECT org`), which the rewrite must leave as fast as the
-- superuser's. Run with: make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;
SET max_parallel_workers_per_gather = 0;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_people;
DROP ROLE IF EXISTS bench_analyst;
RESET client_min_messages;
CREATE TABLE bench_people AS
  SELECT g AS id, format('employee%s@contoso.com', g) AS email, 'org' || (g % 50) AS org
    FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_people;
SECURITY LABEL FOR deident ON COLUMN bench_people.email IS 'identifier';
CREATE ROLE bench_analyst;
GRANT SELECT ON bench_people TO bench_analyst;
SECURITY LABEL FOR deident ON ROLE bench_analyst IS 'restricted';

-- the restricted role reads exactly the superuser's pseudonyms
SET ROLE bench_analyst;
CREATE TEMP TABLE bench_restricted_read AS SELECT id, email FROM bench_people;
RESET ROLE;
SELECT count(*) AS rows_compared, count(*) FILTER (WHERE a.email IS DISTINCT FROM b.p) AS mismatches
  FROM (SELECT id, deident.pseudonymize(email) AS p FROM bench_people) b
  JOIN bench_restricted_read a USING (id);
DROP TABLE bench_restricted_read;

CREATE TEMP TABLE bench_queries (name text, sql text, ord int, role name);
INSERT INTO bench_queries VALUES
  ('superuser: SELECT email', 'SELECT email FROM bench_people', 1, NULL),
  ('superuser: SELECT deident.pseudonymize(email)', 'SELECT deident.pseudonymize(email) FROM bench_people', 2, NULL),
  ('restricted: SELECT email', 'SELECT email FROM bench_people', 3, 'bench_analyst'),
  ('superuser: SELECT org', 'SELECT org FROM bench_people', 4, NULL),
  ('restricted: SELECT org', 'SELECT org FROM bench_people', 5, 'bench_analyst');

\ir lib/harness.sql

\pset footer off
\echo
\echo 'restricted-role benchmark: 1,000,000 rows, serial, default settings, median of interleaved runs'
SELECT query, runs, round(ms::numeric, 1) AS median_ms FROM bench_medians ORDER BY ord;
\echo 'ratios of medians (target: restricted SELECT email <= 1.2 x superuser SELECT pseudonymize(email))'
WITH med AS (SELECT * FROM bench_medians)
SELECT round(((SELECT ms FROM med WHERE ord = 3) / (SELECT ms FROM med WHERE ord = 2))::numeric, 3)
         AS restricted_vs_pseudonymize,
       round(((SELECT ms FROM med WHERE ord = 5) / (SELECT ms FROM med WHERE ord = 4))::numeric, 3)
         AS restricted_vs_superuser_no_identifier;
SET ROLE bench_analyst;
EXPLAIN (VERBOSE, COSTS OFF) SELECT email FROM bench_people;
RESET ROLE;
DROP TABLE bench_people;
DROP ROLE bench_analyst;
