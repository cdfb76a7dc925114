-- Benchmark: peak memory of a spilling hash aggregate, k_count_distinct against count(*).
-- 100,000 groups of 20 distinct persons (2,000,000 rows), the server's default work_mem
-- (4MB), hash aggregation forced (enable_sort = off), serial. Each query runs in a fresh
-- backend (\c), with jit off and on, twice; the backend's peak resident memory is VmHWM in
-- /proc/<pid>/status, read by the backend itself after the query (pg_read_file, superuser),
-- minus the same for the scan alone (mostly the table's shared buffers). EXPLAIN ANALYZE
-- gives the hash aggregate's own figures. Run with: BENCH_FILES=bench/k_memory.sql make bench
\set ON_ERROR_STOP 1
CREATE EXTENSION IF NOT EXISTS pg_deident;

SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_mem, bench_mem_results;
RESET client_min_messages;
CREATE TABLE bench_mem AS
  SELECT (g % 100000) AS grp, (g / 100000)::bigint AS person FROM generate_series(1, 2000000) g;
VACUUM ANALYZE bench_mem;
CREATE TABLE bench_mem_results (query text, jit bool, run int, batches int, memory_kb int,
                                disk_kb int, vmhwm_kb int);
CREATE OR REPLACE FUNCTION public.bench_mem_measure(label text, q text, with_jit bool, run int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE j json; plan json;
BEGIN
  PERFORM set_config('jit', with_jit::text, true);
  PERFORM set_config('enable_sort', 'off', true);
  PERFORM set_config('max_parallel_workers_per_gather', '0', true);
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO j;
  plan := j -> 0 -> 'Plan';
  INSERT INTO bench_mem_results VALUES (label, with_jit, run, (plan ->> 'HashAgg Batches')::int,
    (plan ->> 'Peak Memory Usage')::int, (plan ->> 'Disk Usage')::int,
    substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\s+(\d+) kB')::int);
END $$;

-- scan: the baseline; count: count(*) alone; kcd: k_count_distinct alone; both: the two
\set scan 'SELECT count(*) FROM bench_mem'
\set count 'SELECT grp, count(*) FROM bench_mem GROUP BY grp'
\set kcd 'SELECT grp, deident.k_count_distinct(person) FROM bench_mem GROUP BY grp'
\set both 'SELECT grp, count(*), deident.k_count_distinct(person) FROM bench_mem GROUP BY grp'
\c
SELECT bench_mem_measure('scan', :'scan', false, 1);
\c
SELECT bench_mem_measure('count', :'count', false, 1);
\c
SELECT bench_mem_measure('kcd', :'kcd', false, 1);
\c
SELECT bench_mem_measure('both', :'both', false, 1);
\c
SELECT bench_mem_measure('scan', :'scan', true, 1);
\c
SELECT bench_mem_measure('count', :'count', true, 1);
\c
SELECT bench_mem_measure('kcd', :'kcd', true, 1);
\c
SELECT bench_mem_measure('both', :'both', true, 1);
\c
SELECT bench_mem_measure('scan', :'scan', false, 2);
\c
SELECT bench_mem_measure('count', :'count', false, 2);
\c
SELECT bench_mem_measure('kcd', :'kcd', false, 2);
\c
SELECT bench_mem_measure('both', :'both', false, 2);
\c
SELECT bench_mem_measure('scan', :'scan', true, 2);
\c
SELECT bench_mem_measure('count', :'count', true, 2);
\c
SELECT bench_mem_measure('kcd', :'kcd', true, 2);
\c
SELECT bench_mem_measure('both', :'both', true, 2);

\pset footer off
\echo
\echo 'k_count_distinct memory: 100,000 groups of 20 persons, work_mem 4MB, hash aggregation, fresh backend per query; peak = VmHWM minus the scan alone'
SELECT r.query, r.jit, r.run, r.batches, r.memory_kb, r.disk_kb, r.vmhwm_kb - s.vmhwm_kb AS peak_over_scan_kb
  FROM bench_mem_results r JOIN bench_mem_results s ON s.query = 'scan' AND s.jit = r.jit AND s.run = r.run
 WHERE r.query <> 'scan' ORDER BY r.jit, r.run, r.query;
\echo 'peak of k_count_distinct / peak of count(*) (target <= 2)'
SELECT k.jit, k.run, round((k.vmhwm_kb - s.vmhwm_kb)::numeric / (c.vmhwm_kb - s.vmhwm_kb), 2) AS ratio
  FROM bench_mem_results k
  JOIN bench_mem_results c ON c.query = 'count' AND c.jit = k.jit AND c.run = k.run
  JOIN bench_mem_results s ON s.query = 'scan' AND s.jit = k.jit AND s.run = k.run
 WHERE k.query = 'kcd' ORDER BY k.jit, k.run;
DROP FUNCTION public.bench_mem_measure(text, text, bool, int);
DROP TABLE bench_mem, bench_mem_results;
