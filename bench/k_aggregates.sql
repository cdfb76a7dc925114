-- Benchmark: the k-anonymity-checked aggregates against the plain ones a user would write:
-- k_sum(v, person) against sum(v), k_count_distinct(person) against count(DISTINCT person).
-- 1,000,000 rows in 1,000 groups, 100,000 persons (text e-mails, 10 rows each, spread over
-- the groups), serial plans, runs interleaved, medians. Run with: make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;
SET max_parallel_workers_per_gather = 0;
SET jit = off;
SET work_mem = '256MB';

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_k;
RESET client_min_messages;
CREATE TABLE bench_k AS
  SELECT ((g::bigint * 7919) % 1000)::int AS grp, format('person%s@example.com', g % 100000) AS person,
         (g * 31) % 1000 AS v
    FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_k;

CREATE TEMP TABLE bench_queries (name text, sql text, ord int);
INSERT INTO bench_queries VALUES
  ('sum(v)', 'SELECT grp, sum(v) FROM bench_k GROUP BY grp', 1),
  ('deident.k_sum(v, person)', 'SELECT grp, deident.k_sum(v, person) FROM bench_k GROUP BY grp', 2),
  ('count(DISTINCT person)', 'SELECT grp, count(DISTINCT person) FROM bench_k GROUP BY grp', 3),
  ('deident.k_count_distinct(person)', 'SELECT grp, deident.k_count_distinct(person) FROM bench_k GROUP BY grp', 4);

-- the answers agree (k = 5; every group has about 1,000 persons)
SELECT count(*) AS groups_compared,
       count(*) FILTER (WHERE a.s IS DISTINCT FROM b.s OR a.d IS DISTINCT FROM b.d) AS mismatches
  FROM (SELECT grp, sum(v) AS s, count(DISTINCT person) AS d FROM bench_k GROUP BY grp) a
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_count_distinct(person) AS d
          FROM bench_k GROUP BY grp) b USING (grp);

\ir lib/harness.sql

\pset footer off
\echo
\echo 'k-aggregate benchmark: 1,000,000 rows, 1,000 groups, 100,000 persons, serial, median of interleaved runs'
SELECT query, runs, round(ms::numeric, 1) AS median_ms FROM bench_medians ORDER BY ord;
\echo 'ratios of medians (targets: k_sum/sum <= 1.25, k_count_distinct/count(DISTINCT) <= 0.30)'
WITH med AS (SELECT * FROM bench_medians)
SELECT round(((SELECT ms FROM med WHERE query = 'deident.k_sum(v, person)')
             / (SELECT ms FROM med WHERE query = 'sum(v)'))::numeric, 3) AS k_sum_vs_sum,
       round(((SELECT ms FROM med WHERE query = 'deident.k_count_distinct(person)')
             / (SELECT ms FROM med WHERE query = 'count(DISTINCT person)'))::numeric, 3)
         AS k_count_distinct_vs_count_distinct;
EXPLAIN (COSTS OFF) SELECT grp, deident.k_count_distinct(person) FROM bench_k GROUP BY grp;
EXPLAIN (COSTS OFF) SELECT grp, count(DISTINCT person) FROM bench_k GROUP BY grp;
DROP TABLE bench_k;
