-- Benchmark: the k-aggregates on Citus (scripts/bench-citus.sh: a coordinator and two workers
-- on this machine), against the plain aggregates a user would write, over a table distributed
-- by an id while the person is another column: k_sum(v, person) against sum(v),
-- k_count_distinct(person) against count(DISTINCT person); and the dp aggregates, which Citus
-- pushes down too (docs/citus.md), against the plain SQL that computes what they compute
-- before the noise (which Citus gathers: its per-person step groups by the person): dp_count against count(DISTINCT person), dp_sum against the two-level query of each
-- person's clamped total (bench/dp.sql's). 1,000,000 rows in 1,000 groups, 100,000 persons
-- (10 rows each), 32 shards; the nodes' default settings (work_mem 4MB, jit on, parallel plans
-- as PostgreSQL chooses them); runs interleaved, medians; then k_sum and sum in adjacent pairs.
-- Run with: make bench-citus
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_citus;
RESET client_min_messages;
CREATE TABLE bench_citus (id bigint, grp int, person text, v int);
SELECT create_distributed_table('bench_citus', 'id') \gset
INSERT INTO bench_citus
  SELECT g, ((g::bigint * 7919) % 1000)::int, format('person%s@example.com', g % 100000), (g * 31) % 1000
    FROM generate_series(1, 1000000) g;
VACUUM ANALYZE bench_citus;
-- the dp aggregates take their persons from an identifier column (docs/differential-privacy.md)
SECURITY LABEL FOR deident ON COLUMN bench_citus.person IS 'identifier';

CREATE TEMP TABLE bench_queries (name text, sql text, ord int);
INSERT INTO bench_queries VALUES
  ('sum(v)', 'SELECT grp, sum(v) FROM bench_citus GROUP BY grp', 1),
  ('deident.k_sum(v, person)', 'SELECT grp, deident.k_sum(v, person) FROM bench_citus GROUP BY grp', 2),
  ('count(DISTINCT person)', 'SELECT grp, count(DISTINCT person) FROM bench_citus GROUP BY grp', 3),
  ('deident.k_count_distinct(person)', 'SELECT grp, deident.k_count_distinct(person) FROM bench_citus GROUP BY grp', 4),
  ('two-level SQL sum', 'SELECT grp, sum(least(greatest(t, 0), 5000)) FROM (SELECT grp, person, sum(v) AS t FROM bench_citus GROUP BY grp, person) s GROUP BY grp', 5),
  ('deident.dp_sum(v, person, 0, 5000)', 'SELECT grp, deident.dp_sum(v, person, 0, 5000) FROM bench_citus GROUP BY grp', 6),
  ('deident.dp_count(person)', 'SELECT grp, deident.dp_count(person) FROM bench_citus GROUP BY grp', 7);

-- the answers agree (k = 5; every group has 100 persons)
SELECT count(*) AS groups_compared,
       count(*) FILTER (WHERE a.s IS DISTINCT FROM b.s OR a.d IS DISTINCT FROM b.d) AS mismatches
  FROM (SELECT grp, sum(v) AS s, count(DISTINCT person) AS d FROM bench_citus GROUP BY grp) a
  JOIN (SELECT grp, deident.k_sum(v, person) AS s, deident.k_count_distinct(person) AS d
          FROM bench_citus GROUP BY grp) b USING (grp);
-- the dp answers are near the exact ones (bench/lib/dp_answers.sql)
\set dp_table bench_citus
\ir lib/dp_answers.sql
\pset footer off
\ir lib/harness.sql
\echo
\echo 'k- and dp aggregates on Citus (coordinator and 2 workers, 32 shards), default settings: 1,000,000 rows, 1,000 groups, 100,000 persons, median of interleaved runs'
SELECT query, runs, round(ms::numeric, 1) AS median_ms FROM bench_medians ORDER BY ord;
\echo 'ratios of medians (targets: k_sum/sum <= 1.5; k_count_distinct/count(DISTINCT) <= 0.5; the dp aggregates, pushed down, against the plain SQL of what they compute)'
WITH med AS (SELECT * FROM bench_medians),
     ratio(ord, name, num, den) AS (VALUES
       (1, 'k_sum_vs_sum', 'deident.k_sum(v, person)', 'sum(v)'),
       (2, 'k_count_distinct_vs_count_distinct', 'deident.k_count_distinct(person)', 'count(DISTINCT person)'),
       (3, 'dp_sum_vs_two_level_sum', 'deident.dp_sum(v, person, 0, 5000)', 'two-level SQL sum'),
       (4, 'dp_count_vs_count_distinct', 'deident.dp_count(person)', 'count(DISTINCT person)'))
SELECT r.name AS ratio, round((n.ms / d.ms)::numeric, 3) AS value
  FROM ratio r JOIN med n ON n.query = r.num JOIN med d ON d.query = r.den ORDER BY r.ord;

-- k_sum against sum in adjacent pairs. This machine's speed moves by a third within seconds
-- (docs/citus.md, "Speed"), so that the ratio of the two medians above moved between 1.24
-- and 1.76 over six runs of this file with one build; a pair's two queries run back to back
-- (each order in half the pairs), and the median of bench.pairs pairs' ratios is the figure
-- that another run reproduces (1.42 to 1.49 over the same six runs with 40 pairs; with 160,
-- the default since, its standard deviation between runs is half 40's: 0.024). Its quartiles
-- show the spread of one pair, and the medians of each order whether going first matters.
CREATE TEMP TABLE bench_pairs (pair int, k_sum float8, sum float8);
DO $$
DECLARE i int; k float8; s float8;
        ksql text := (SELECT sql FROM bench_queries WHERE name = 'deident.k_sum(v, person)');
        ssql text := (SELECT sql FROM bench_queries WHERE name = 'sum(v)');
BEGIN
  FOR i IN 1..current_setting('bench.pairs')::int LOOP
    IF i % 2 = 1 THEN
      k := pg_temp.time_query(ksql, NULL);
      s := pg_temp.time_query(ssql, NULL);
    ELSE
      s := pg_temp.time_query(ssql, NULL);
      k := pg_temp.time_query(ksql, NULL);
    END IF;
    INSERT INTO bench_pairs VALUES (i, k, s);
  END LOOP;
END $$;
\echo 'k_sum / sum in adjacent pairs (the target: <= 1.5): the median pair, and the quartiles'
SELECT count(*) AS pairs,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY k_sum / sum)::numeric, 3) AS median_ratio,
       round(percentile_cont(0.25) WITHIN GROUP (ORDER BY k_sum / sum)::numeric, 3) AS q1,
       round(percentile_cont(0.75) WITHIN GROUP (ORDER BY k_sum / sum)::numeric, 3) AS q3,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY k_sum)::numeric, 1) AS k_sum_median_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY sum)::numeric, 1) AS sum_median_ms,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY k_sum / sum) FILTER (WHERE pair % 2 = 1)::numeric, 3) AS median_k_sum_first,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY k_sum / sum) FILTER (WHERE pair % 2 = 0)::numeric, 3) AS median_sum_first
  FROM bench_pairs;
EXPLAIN (VERBOSE, COSTS OFF) SELECT grp, deident.k_sum(v, person) FROM bench_citus GROUP BY grp;
EXPLAIN (VERBOSE, COSTS OFF) SELECT grp, deident.dp_count(person) FROM bench_citus GROUP BY grp;
EXPLAIN (VERBOSE, COSTS OFF) SELECT grp, deident.dp_sum(v, person, 0, 5000) FROM bench_citus GROUP BY grp;
DROP TABLE bench_citus;
