-- Benchmark: the k-anonymity-checked aggregates against the plain ones a user would write:
-- k_sum(v, person) against sum(v) over integer and over numeric, k_count_distinct(person)
-- against count(DISTINCT person). 1,000,000 rows in 1,000 groups, 100,000 persons (text
-- e-mails, 10 rows each, all in one group: 100 persons per group), serial plans, runs
-- interleaved, medians. The headline is at the server's defaults (work_mem 4MB, jit on); the
-- same queries then run with work_mem = 256MB, and in parallel plans. Run with: make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;
SET max_parallel_workers_per_gather = 0;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_k;
RESET client_min_messages;
CREATE TABLE bench_k AS
  SELECT ((g::bigint * 7919) % 1000)::int AS grp, format('person%s@example.com', g % 100000) AS person,
         (g * 31) % 1000 AS v, (((g * 31) % 100000) * 0.01)::numeric(12,2) AS n
    FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_k;

CREATE TEMP TABLE bench_queries (name text, sql text, ord int);
INSERT INTO bench_queries VALUES
  ('sum(v)', 'SELECT grp, sum(v) FROM bench_k GROUP BY grp', 1),
  ('deident.k_sum(v, person)', 'SELECT grp, deident.k_sum(v, person) FROM bench_k GROUP BY grp', 2),
  ('sum(n)', 'SELECT grp, sum(n) FROM bench_k GROUP BY grp', 3),
  ('deident.k_sum(n, person)', 'SELECT grp, deident.k_sum(n, person) FROM bench_k GROUP BY grp', 4),
  ('count(DISTINCT person)', 'SELECT grp, count(DISTINCT person) FROM bench_k GROUP BY grp', 5),
  ('deident.k_count_distinct(person)', 'SELECT grp, deident.k_count_distinct(person) FROM bench_k GROUP BY grp', 6);

-- the answers agree (k = 5; every group has 100 persons)
SELECT count(*) AS groups_compared,
       count(*) FILTER (WHERE a.s IS DISTINCT FROM b.s OR a.sn::text IS DISTINCT FROM b.sn::text
                           OR a.d IS DISTINCT FROM b.d) AS mismatches
  FROM (SELECT grp, sum(v) AS s, sum(n) AS sn, count(DISTINCT person) AS d FROM bench_k GROUP BY grp) a
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_sum(n, person) AS sn,
               deident.k_count_distinct(person) AS d
          FROM bench_k GROUP BY grp) b USING (grp);

\pset footer off
\set settings 'serial plans, default settings (work_mem 4MB, jit on)'
\ir lib/harness.sql
\ir lib/k_report.sql

-- The same with work_mem = 256MB (no plan spills).
SET work_mem = '256MB';
\set settings 'serial plans, work_mem = 256MB'
\ir lib/harness.sql
\ir lib/k_report.sql
RESET work_mem;

-- Parallel plans (two workers, default settings otherwise): each worker's partial states
-- travel to the leader, where they are combined (for k-aggregates, sealed and opened again).
SET max_parallel_workers_per_gather = 2;
\set settings 'parallel plans (2 workers), default settings'
\ir lib/harness.sql
\ir lib/k_report.sql
SET max_parallel_workers_per_gather = 0;

DROP TABLE bench_k;
