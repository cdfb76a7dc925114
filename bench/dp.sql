-- Benchmark: the differentially private aggregates against what a user would write instead
-- (issue 10): dp_sum(v, person, 0, 5000) against the hand-written two-level SQL that does the
-- same bounding (sum per person and group, clamp, sum per group), and dp_count(person)
-- against count(DISTINCT person). The same data as bench/k_aggregates.sql: 1,000,000 rows in
-- 1,000 groups, 100,000 persons (10 rows each, all in one group). Interleaved runs, medians,
-- first at the server's defaults (work_mem 4MB, jit on, up to 2 parallel workers a query: the
-- planner chooses), then with serial plans only (max_parallel_workers_per_gather = 0), then at
-- work_mem = 256MB.
-- dp_sum also runs as a role with a privacy budget, to show what charging 1,000 groups costs
-- (a superuser is not charged), and count(*) shows the floor: the scan and the hash aggregate
-- that every query here pays before any aggregate does its work. Run with: make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_dp;
DROP ROLE IF EXISTS bench_dp_analyst;
RESET client_min_messages;
CREATE TABLE bench_dp AS
  SELECT ((g::bigint * 7919) % 1000)::int AS grp, format('person%s@example.com', g % 100000) AS person,
         (g * 31) % 1000 AS v
    FROM generate_series(1, 1000000) g;
SECURITY LABEL FOR deident ON COLUMN bench_dp.person IS 'identifier';
VACUUM ANALYZE bench_dp;
CREATE ROLE bench_dp_analyst;
GRANT SELECT ON bench_dp TO bench_dp_analyst;
GRANT USAGE ON SCHEMA deident TO bench_dp_analyst;
SELECT deident.set_privacy_budget('bench_dp_analyst', 1e9);

CREATE TEMP TABLE bench_queries (name text, sql text, ord int, role name);
INSERT INTO bench_queries VALUES
  ('two-level SQL sum', 'SELECT grp, sum(least(greatest(t, 0), 5000)) FROM (SELECT grp, person, sum(v) AS t FROM bench_dp GROUP BY grp, person) s GROUP BY grp', 1, NULL),
  ('deident.dp_sum(v, person, 0, 5000)', 'SELECT grp, deident.dp_sum(v, person, 0, 5000) FROM bench_dp GROUP BY grp', 2, NULL),
  ('deident.dp_sum, charged to a budget', 'SELECT grp, deident.dp_sum(v, person, 0, 5000) FROM bench_dp GROUP BY grp', 3, 'bench_dp_analyst'),
  ('count(DISTINCT person)', 'SELECT grp, count(DISTINCT person) FROM bench_dp GROUP BY grp', 4, NULL),
  ('deident.dp_count(person)', 'SELECT grp, deident.dp_count(person) FROM bench_dp GROUP BY grp', 5, NULL),
  ('count(*), the floor', 'SELECT grp, count(*) FROM bench_dp GROUP BY grp', 6, NULL);

-- the dp answers are near the exact ones (bench/lib/dp_answers.sql)
\set dp_table bench_dp
\ir lib/dp_answers.sql

\pset footer off
\set settings 'default settings (work_mem 4MB, jit on, max_parallel_workers_per_gather 2)'
\ir lib/harness.sql
\ir lib/dp_report.sql

SET max_parallel_workers_per_gather = 0;
\set settings 'serial plans (max_parallel_workers_per_gather = 0), work_mem 4MB'
\ir lib/harness.sql
\ir lib/dp_report.sql
RESET max_parallel_workers_per_gather;

SET work_mem = '256MB';
\set settings 'work_mem = 256MB'
\ir lib/harness.sql
\ir lib/dp_report.sql
RESET work_mem;

SELECT "limit", round(spent::numeric, 1) AS spent FROM deident.privacy_budget WHERE role = 'bench_dp_analyst'::regrole;
DROP TABLE bench_dp;
REVOKE USAGE ON SCHEMA deident FROM bench_dp_analyst;
DROP ROLE bench_dp_analyst;
