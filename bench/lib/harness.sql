-- The benchmarks' timing harness, included (\ir) by each bench/*.sql after it has filled
-- bench_queries (name, sql, ord): one warm-up pass, then bench.runs passes, each running every
-- query once (interleaved, so that drift hits all alike; in ord order rotated by the pass
-- number, so that no query always runs after the same one), then the medians.
-- A query runs as the role in bench_queries.role, if the file gave that column a value (SET
-- ROLE before the clock starts, RESET after it stops). EXECUTE runs a query to its end and
-- discards its rows, as a client that reads them all would see, less the transfer.
-- Included again (another setting, the same queries), it starts afresh.
SET client_min_messages = warning;
DROP VIEW IF EXISTS bench_medians;
DROP TABLE IF EXISTS bench_runs;
DROP FUNCTION IF EXISTS pg_temp.time_query(text, name);
ALTER TABLE bench_queries ADD COLUMN IF NOT EXISTS role name;
RESET client_min_messages;
CREATE TEMP TABLE bench_runs (query text, run int, ms float8);
CREATE FUNCTION pg_temp.time_query(sql text, role name) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; ms float8; BEGIN
  IF role IS NOT NULL THEN EXECUTE format('SET ROLE %I', role); END IF;
  t0 := clock_timestamp();
  EXECUTE sql;
  ms := 1000 * extract(epoch FROM clock_timestamp() - t0);
  IF role IS NOT NULL THEN RESET ROLE; END IF;
  RETURN ms;
END $$;

SELECT count(pg_temp.time_query(sql, role)) AS warm_up_queries FROM bench_queries;
DO $$
DECLARE r int; q record;
BEGIN
  FOR r IN 1..current_setting('bench.runs')::int LOOP
    -- the order rotates by one query each pass, so that each query follows each other one
    -- equally often (a query that spills to disk slows the one after it)
    FOR q IN SELECT * FROM bench_queries
              ORDER BY (ord + r) % (SELECT count(*) FROM bench_queries), ord LOOP
      INSERT INTO bench_runs VALUES (q.name, r, pg_temp.time_query(q.sql, q.role));
    END LOOP;
  END LOOP;
END $$;
CREATE TEMP VIEW bench_medians AS
  SELECT q.name AS query, q.ord, count(r.ms) AS runs,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ms) AS ms
    FROM bench_queries q JOIN bench_runs r ON r.query = q.name GROUP BY q.name, q.ord;
