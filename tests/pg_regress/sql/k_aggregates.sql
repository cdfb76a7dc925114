--
-- k_aggregates: k_count, k_count_distinct, k_sum, k_avg answer only for groups of at least
-- deident.min_group_size distinct non-NULL persons, and then exactly what plain SQL gives.
-- Every comparison below is against the slow way:
--   CASE WHEN count(DISTINCT person) >= k THEN <plain aggregate> END
--
SHOW deident.min_group_size;

-- Data: 30 groups; group g has g distinct persons (1..30), each with 1 to 5 rows; some rows
-- have a NULL person, some a NULL value. Values of every type from the same integer.
CREATE TABLE regress_k AS
SELECT g AS grp, p AS person_int, (g * 1000 + p)::bigint AS person_big,
       format('p%s-%s@example.com', g, p) AS person_text,
       md5(format('p%s-%s', g, p))::uuid AS person_uuid,
       v::smallint AS v2, v::integer AS v4, (v * 1000000000000)::bigint AS v8,
       (v / 7.0)::numeric(20,6) AS vn, (v / 4.0)::real AS vr, (v / 3.0)::double precision AS vd
  FROM generate_series(1, 30) g, generate_series(1, g) p,
       LATERAL generate_series(1, 1 + (g * p) % 5) r,
       LATERAL (SELECT ((g * 37 + p * 11 + r * 5) % 101 - 30) AS v) x;
INSERT INTO regress_k (grp, person_int, person_text, v4, vn)
  SELECT g, NULL, NULL, 1000, 1000 FROM generate_series(1, 30) g;     -- NULL persons
INSERT INTO regress_k (grp, person_int, person_text, person_big, person_uuid, v4)
  SELECT g, 1, format('p%s-1@example.com', g), g * 1000 + 1, md5(format('p%s-1', g))::uuid, NULL
    FROM generate_series(1, 30) g;                                      -- NULL values
SELECT count(*) AS rows, count(DISTINCT person_text) AS persons FROM regress_k;

-- 1. k_count / k_count_distinct against the slow way, for k = 2, 5, 10, 29, 30, 31
CREATE FUNCTION regress_k_mismatches(k int) RETURNS TABLE (check_name text, mismatches bigint)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SET deident.min_group_size = %s', k);
  RETURN QUERY
  WITH fast AS (
    SELECT grp,
           deident.k_count(person_text) AS c_text, deident.k_count(person_int) AS c_int,
           deident.k_count(person_big) AS c_big, deident.k_count(person_uuid) AS c_uuid,
           deident.k_count_distinct(person_text) AS d_text, deident.k_count_distinct(person_int) AS d_int,
           deident.k_count_distinct(person_big) AS d_big, deident.k_count_distinct(person_uuid) AS d_uuid,
           deident.k_sum(v2, person_text) AS s2, deident.k_sum(v4, person_text) AS s4,
           deident.k_sum(v8, person_uuid) AS s8, deident.k_sum(vn, person_big) AS sn,
           deident.k_sum(vr, person_int) AS sr, deident.k_sum(vd, person_text) AS sd,
           deident.k_avg(v2, person_text) AS a2, deident.k_avg(v4, person_int) AS a4,
           deident.k_avg(v8, person_text) AS a8, deident.k_avg(vn, person_uuid) AS an,
           deident.k_avg(vr, person_big) AS ar, deident.k_avg(vd, person_text) AS ad
      FROM regress_k GROUP BY grp),
  slow AS (
    SELECT grp,
           CASE WHEN count(DISTINCT person_text) >= k THEN count(person_text) END AS c_text,
           CASE WHEN count(DISTINCT person_int) >= k THEN count(person_int) END AS c_int,
           CASE WHEN count(DISTINCT person_big) >= k THEN count(person_big) END AS c_big,
           CASE WHEN count(DISTINCT person_uuid) >= k THEN count(person_uuid) END AS c_uuid,
           CASE WHEN count(DISTINCT person_text) >= k THEN count(DISTINCT person_text) END AS d_text,
           CASE WHEN count(DISTINCT person_int) >= k THEN count(DISTINCT person_int) END AS d_int,
           CASE WHEN count(DISTINCT person_big) >= k THEN count(DISTINCT person_big) END AS d_big,
           CASE WHEN count(DISTINCT person_uuid) >= k THEN count(DISTINCT person_uuid) END AS d_uuid
      FROM regress_k GROUP BY grp),
  -- sums and averages count only rows with both a value and a person
  slow_v AS (
    SELECT grp,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN sum(v2) END FROM regress_k i WHERE i.grp = o.grp AND v2 IS NOT NULL AND person_text IS NOT NULL) AS s2,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN sum(v4) END FROM regress_k i WHERE i.grp = o.grp AND v4 IS NOT NULL AND person_text IS NOT NULL) AS s4,
      (SELECT CASE WHEN count(DISTINCT person_uuid) >= k THEN sum(v8) END FROM regress_k i WHERE i.grp = o.grp AND v8 IS NOT NULL AND person_uuid IS NOT NULL) AS s8,
      (SELECT CASE WHEN count(DISTINCT person_big) >= k THEN sum(vn) END FROM regress_k i WHERE i.grp = o.grp AND vn IS NOT NULL AND person_big IS NOT NULL) AS sn,
      (SELECT CASE WHEN count(DISTINCT person_int) >= k THEN sum(vr) END FROM regress_k i WHERE i.grp = o.grp AND vr IS NOT NULL AND person_int IS NOT NULL) AS sr,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN sum(vd) END FROM regress_k i WHERE i.grp = o.grp AND vd IS NOT NULL AND person_text IS NOT NULL) AS sd,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN avg(v2) END FROM regress_k i WHERE i.grp = o.grp AND v2 IS NOT NULL AND person_text IS NOT NULL) AS a2,
      (SELECT CASE WHEN count(DISTINCT person_int) >= k THEN avg(v4) END FROM regress_k i WHERE i.grp = o.grp AND v4 IS NOT NULL AND person_int IS NOT NULL) AS a4,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN avg(v8) END FROM regress_k i WHERE i.grp = o.grp AND v8 IS NOT NULL AND person_text IS NOT NULL) AS a8,
      (SELECT CASE WHEN count(DISTINCT person_uuid) >= k THEN avg(vn) END FROM regress_k i WHERE i.grp = o.grp AND vn IS NOT NULL AND person_uuid IS NOT NULL) AS an,
      (SELECT CASE WHEN count(DISTINCT person_big) >= k THEN avg(vr) END FROM regress_k i WHERE i.grp = o.grp AND vr IS NOT NULL AND person_big IS NOT NULL) AS ar,
      (SELECT CASE WHEN count(DISTINCT person_text) >= k THEN avg(vd) END FROM regress_k i WHERE i.grp = o.grp AND vd IS NOT NULL AND person_text IS NOT NULL) AS ad
    FROM (SELECT DISTINCT grp FROM regress_k) o)
  SELECT 'counts', count(*) FILTER (WHERE (f.c_text, f.c_int, f.c_big, f.c_uuid, f.d_text, f.d_int, f.d_big, f.d_uuid)
                                 IS DISTINCT FROM (s.c_text, s.c_int, s.c_big, s.c_uuid, s.d_text, s.d_int, s.d_big, s.d_uuid))
    FROM fast f JOIN slow s USING (grp)
  UNION ALL
  -- exact types compare exactly; real and double precision within float rounding
  SELECT 'sums and averages', count(*) FILTER (WHERE (f.s2, f.s4, f.s8, f.sn, f.a2, f.a4, f.a8, f.an)
                                 IS DISTINCT FROM (v.s2, v.s4, v.s8, v.sn, v.a2, v.a4, v.a8, v.an)
         OR (f.sr IS NULL) <> (v.sr IS NULL) OR abs(f.sr - v.sr) > 1e-3
         OR (f.sd IS NULL) <> (v.sd IS NULL) OR abs(f.sd - v.sd) > 1e-9
         OR (f.ar IS NULL) <> (v.ar IS NULL) OR abs(f.ar - v.ar) > 1e-6
         OR (f.ad IS NULL) <> (v.ad IS NULL) OR abs(f.ad - v.ad) > 1e-9)
    FROM fast f JOIN slow_v v USING (grp)
  UNION ALL
  SELECT 'groups answered', count(*) FILTER (WHERE f.d_text IS NOT NULL) FROM fast f;
  RESET deident.min_group_size;
END $$;
SELECT k, m.* FROM unnest(ARRAY[2, 5, 10, 29, 30, 31]) k, regress_k_mismatches(k) m;

-- 2. the boundary, shown: groups 4, 5, 6 at k = 5 (just below, at, above)
SELECT grp, count(DISTINCT person_text) AS persons, count(person_text) AS rows,
       deident.k_count(person_text), deident.k_count_distinct(person_text),
       deident.k_sum(v4, person_text), deident.k_avg(v4, person_text),
       deident.k_sum(vn, person_text), deident.k_avg(vn, person_text)
  FROM regress_k WHERE grp IN (4, 5, 6) GROUP BY grp ORDER BY grp;

-- 3. result types are those of sum and avg
SELECT pg_typeof(deident.k_sum(v2, person_text)) AS sum2, pg_typeof(sum(v2)) AS pg_sum2,
       pg_typeof(deident.k_sum(v4, person_text)) AS sum4, pg_typeof(deident.k_sum(v8, person_text)) AS sum8,
       pg_typeof(deident.k_sum(vn, person_text)) AS sumn, pg_typeof(deident.k_sum(vr, person_text)) AS sumr,
       pg_typeof(deident.k_sum(vd, person_text)) AS sumd, pg_typeof(deident.k_avg(v4, person_text)) AS avg4,
       pg_typeof(deident.k_avg(vr, person_text)) AS avgr, pg_typeof(deident.k_avg(vn, person_text)) AS avgn,
       pg_typeof(deident.k_count(person_text)) AS cnt
  FROM regress_k;

-- 4. one person with many rows is one person; NULL persons are nobody; rows are rows
SELECT deident.k_count(p) AS k_count, deident.k_count_distinct(p) AS k_count_distinct,
       deident.k_sum(v, p) AS k_sum
  FROM (SELECT 'same@example.com' AS p, 1 AS v FROM generate_series(1, 50)) s;
SELECT deident.k_count(p), deident.k_count_distinct(p), count(p) AS plain_count
  FROM (SELECT CASE WHEN g <= 5 THEN 'p' || g END AS p FROM generate_series(1, 50) g) s;
-- empty input and all-NULL input: NULL, as sum() gives
SELECT deident.k_sum(v4, person_text), deident.k_count(person_text) FROM regress_k WHERE false;

-- 5. numeric: exact, scale as sum's, special values as sum's
SELECT deident.k_sum(v, p) AS k_sum, sum(v), deident.k_avg(v, p) AS k_avg, avg(v)
  FROM (VALUES (1.5, 'a'), (2.25, 'b'), (-0.001, 'c'), (100, 'd'), (0.0, 'e')) t(v, p);
SELECT deident.k_sum(v, p) AS k_sum, sum(v)
  FROM (VALUES (1::numeric, 'a'), ('Infinity', 'b'), (2, 'c'), (3, 'd'), (4, 'e')) t(v, p);
SELECT deident.k_sum(v, p) AS k_sum, sum(v)
  FROM (VALUES (1::numeric, 'a'), ('NaN', 'b'), (2, 'c'), (3, 'd'), (4, 'e')) t(v, p);
-- exact at any size and any scale, as sum and avg
SELECT deident.k_sum(v, p) = sum(v) AS sum_equal, deident.k_avg(v, p) = avg(v) AS avg_equal,
       deident.k_sum(v, p)::text = sum(v)::text AS same_text, deident.k_sum(v, p) AS k_sum
  FROM (VALUES (1e40::numeric, 'a'), (1e20, 'b'), (1e-19, 'c'), (-1e40, 'd'), (0::numeric(50,40), 'e')) t(v, p);
SELECT deident.k_sum(v, p)::text = sum(v)::text AS same_text, deident.k_avg(v, p) = avg(v) AS avg_equal
  FROM (SELECT (g::numeric * 1e30 + g::numeric / 1e25) * (-1) ^ g AS v, g::text AS p
          FROM generate_series(1, 500) g) s;
-- OK: sum(bigint) is numeric, exact beyond bigint's range
SELECT deident.k_sum(v, p) AS exact_bigint_sum, sum(v)
  FROM (SELECT 9223372036854775807::bigint AS v, g::text AS p FROM generate_series(1, 5) g) s;

-- numeric is read from its storage format, digit by digit: every special value as sum gives
-- it (NaN wins; both infinities make NaN), and avg alike
SELECT s AS inputs, deident.k_sum(v, p) AS k_sum, sum(v), deident.k_avg(v, p) AS k_avg, avg(v)
  FROM (VALUES ('1, NaN, Infinity', '{1,NaN,Infinity}'::numeric[]),
               ('-Infinity, 2', '{-Infinity,2}'),
               ('Infinity, -Infinity', '{Infinity,-Infinity}'),
               ('-Infinity, -Infinity', '{-Infinity,-Infinity}')) i(s, a),
       LATERAL (SELECT x AS v, chr(96 + n::int) || n AS p
                  FROM unnest(a || ARRAY[0, 0, 0, 0]::numeric[]) WITH ORDINALITY u(x, n)) t
 GROUP BY s ORDER BY s;
-- and exact against sum and avg, as text (so the display scale too), per group of a table:
-- scales from 0 to 40, weights beyond 63 and scales beyond 63 (numeric's long header),
-- tiny values (negative weights), negative values, zeros of several scales; values are read
-- as stored, with one-byte varlena headers, and in group 7 as 8,000-digit values that TOAST
-- has compressed
CREATE TABLE regress_k_numeric (grp int, p text, v numeric);
INSERT INTO regress_k_numeric
SELECT g % 7, 'p' || g % 1000, CASE (g / 7) % 7
    WHEN 0 THEN round(((g * 7919) % 100003)::numeric / 997, g % 41)
    WHEN 1 THEN -(g::numeric * 1e300 + g::numeric / 1e30)
    WHEN 2 THEN (g::numeric / 3)::numeric(90, 80)
    WHEN 3 THEN ('0.' || repeat('0', g % 90) || g)::numeric
    WHEN 4 THEN -((g % 13)::numeric)
    WHEN 5 THEN round(0::numeric, g % 20)
    ELSE ((g * 7919) % 100003)::numeric * 10000::numeric ^ (g % 12)
  END
  FROM generate_series(1, 7000) g;
INSERT INTO regress_k_numeric
SELECT 7, 'q' || g, (CASE WHEN g % 3 = 0 THEN '-' ELSE '' END || repeat('12345678', 1000) || '.' || g)::numeric
  FROM generate_series(1, 10) g;
SELECT count(*) FILTER (WHERE pg_column_compression(v) IS NOT NULL) AS compressed_values,
       max(scale(v)) AS max_scale, min(v) < -1e300 AS has_huge, max(length(v::text)) AS longest
  FROM regress_k_numeric;
SELECT grp, count(*) AS rows,
       deident.k_sum(v, p)::text = sum(v)::text AS sum_same_text,
       deident.k_avg(v, p)::text = avg(v)::text AS avg_same_text,
       scale(deident.k_sum(v, p)) AS scale, length(deident.k_sum(v, p)::text) AS length
  FROM regress_k_numeric GROUP BY grp ORDER BY grp;
-- the same through parallel workers' partial states
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT deident.k_sum(v, p) FROM regress_k_numeric;
SELECT deident.k_sum(v, p)::text = sum(v)::text AS parallel_sum_same_text,
       deident.k_avg(v, p)::text = avg(v)::text AS parallel_avg_same_text
  FROM regress_k_numeric;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
-- fail (the sum leaves numeric's range, as sum's does)
SELECT regress_error($$SELECT deident.k_sum(v, p) FROM (SELECT 9e131071 AS v, g::text AS p FROM generate_series(1, 5) g) s$$);
SELECT regress_error($$SELECT sum(v) FROM (SELECT 9e131071 AS v FROM generate_series(1, 5) g) s$$);

-- 6. floating point: overflow is an error, as for sum; real sums in single precision
-- fail (double precision overflow)
SELECT regress_error($$SELECT deident.k_sum(v, p) FROM (SELECT 1e308::float8 AS v, g::text AS p FROM generate_series(1, 5) g) s$$);
SELECT regress_error($$SELECT sum(v) FROM (SELECT 1e308::float8 AS v FROM generate_series(1, 5) g) s$$);
-- a real sum that overflows single precision fails for k_sum, as for sum; k_avg, in double,
-- answers as avg does
SELECT regress_error($$SELECT deident.k_sum(v, p) FROM (SELECT 3e38::real AS v, g::text AS p FROM generate_series(1, 5) g) s$$);
SELECT deident.k_avg(v, p) AS k_avg, avg(v)
  FROM (SELECT 3e38::real AS v, g::text AS p FROM generate_series(1, 5) g) s;
SELECT deident.k_sum(v, p) = sum(v) AS real_sum_equal, deident.k_avg(v, p) = avg(v) AS real_avg_equal,
       pg_typeof(deident.k_sum(v, p)) AS type
  FROM (SELECT (g / 10.0)::real AS v, g::text AS p FROM generate_series(1, 1000) g) s;

-- 7. never as a window function: a running k_sum would give away each person's value as the
-- difference between neighbouring rows
-- fail
SELECT person_text, deident.k_sum(v4, person_text) OVER (ORDER BY person_text) FROM regress_k LIMIT 1;
SELECT deident.k_count(person_text) OVER () FROM regress_k LIMIT 1;
SELECT deident.k_count_distinct(person_text) OVER (PARTITION BY grp) FROM regress_k LIMIT 1;

-- 8. the setting: an analyst can read it but not lower it (nor raise it); a superuser can set
-- it per role, and it must be at least 2
CREATE ROLE regress_k_analyst;
GRANT SELECT ON regress_k TO regress_k_analyst;
SET ROLE regress_k_analyst;
SHOW deident.min_group_size;
SET deident.min_group_size = 2;
SELECT set_config('deident.min_group_size', '1', false);
SELECT grp, deident.k_count_distinct(person_text) FROM regress_k WHERE grp IN (4, 5) GROUP BY grp ORDER BY grp;
RESET ROLE;
SET deident.min_group_size = 1;
ALTER ROLE regress_k_analyst SET deident.min_group_size = 10;
SELECT rolname, setconfig FROM pg_db_role_setting JOIN pg_roles r ON r.oid = setrole WHERE rolname = 'regress_k_analyst';
ALTER ROLE regress_k_analyst RESET deident.min_group_size;

-- 9. parallel: a plan with Partial Aggregate gives the serial answers
CREATE TABLE regress_k_big AS
  SELECT g % 997 AS grp, (g::bigint * 7919) % 40000 AS person, g % 1000 AS v
    FROM generate_series(1, 400000) g;
ANALYZE regress_k_big;
CREATE TABLE regress_k_serial AS
  SELECT grp, deident.k_count(person) AS c, deident.k_count_distinct(person) AS d,
         deident.k_sum(v, person) AS s, deident.k_avg(v, person) AS a
    FROM regress_k_big GROUP BY grp;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
  SELECT grp, deident.k_count(person), deident.k_count_distinct(person),
         deident.k_sum(v, person), deident.k_avg(v, person)
    FROM regress_k_big GROUP BY grp;
CREATE TABLE regress_k_parallel AS
  SELECT grp, deident.k_count(person) AS c, deident.k_count_distinct(person) AS d,
         deident.k_sum(v, person) AS s, deident.k_avg(v, person) AS a
    FROM regress_k_big GROUP BY grp;
-- and one group of all rows, where every worker's partial state holds persons of the others
EXPLAIN (COSTS OFF) SELECT deident.k_count_distinct(person) FROM regress_k_big;
SELECT deident.k_count_distinct(person) AS parallel, count(DISTINCT person) AS plain,
       deident.k_sum(v, person) AS k_sum, sum(v) AS plain_sum FROM regress_k_big;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET enable_hashagg;
SELECT count(*) AS groups, count(*) FILTER (WHERE (s.c, s.d, s.s, s.a) IS DISTINCT FROM (p.c, p.d, p.s, p.a)) AS mismatches
  FROM regress_k_serial s JOIN regress_k_parallel p USING (grp);
SELECT count(*) AS mismatches FROM regress_k_serial s
  JOIN (SELECT grp, count(*) AS c, count(DISTINCT person) AS d, sum(v) AS sv, avg(v) AS a
          FROM regress_k_big GROUP BY grp) slow USING (grp)
 WHERE (s.c, s.d, s.s, s.a) IS DISTINCT FROM (slow.c, slow.d, slow.sv, slow.a);

-- States live in the aggregate's memory context, so a hash aggregate sees them: EXPLAIN
-- ANALYZE reports at least the 8 bytes per person that 997 k_count_distinct states of about
-- 400 persons each hold (3,115 kB), where count(*) alone needs a few hundred kB
CREATE FUNCTION pg_temp.hashagg(q text, OUT batches int, OUT peak_kb int) LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO j;
  batches := (j -> 0 -> 'Plan' ->> 'HashAgg Batches')::int;
  peak_kb := (j -> 0 -> 'Plan' ->> 'Peak Memory Usage')::int;
END $$;
SET work_mem = '64MB'; SET enable_sort = off; SET max_parallel_workers_per_gather = 0;
SELECT c.batches AS count_batches, c.peak_kb < 1024 AS count_under_1mb,
       k.batches AS k_batches, k.peak_kb >= 997 * 400 * 8 / 1024 AS k_states_counted
  FROM pg_temp.hashagg('SELECT grp, count(*) FROM regress_k_big GROUP BY grp') c,
       pg_temp.hashagg('SELECT grp, deident.k_count_distinct(person) FROM regress_k_big GROUP BY grp') k;

-- A hash aggregate over many groups that spills to disk (tiny work_mem): states of groups
-- evicted and rebuilt batch by batch give the answers of the slow way. 20,000 groups of 10
-- rows, with 1 to 10 distinct persons (k = 5 is crossed), negative values, numeric values.
CREATE TABLE regress_k_many AS
  SELECT grp, (j % (1 + grp % 12))::bigint AS person, (g * 37) % 1000 - 300 AS v,
         ((g * 37) % 1000 - 300) / 7.0 AS vn
    FROM generate_series(0, 199999) g, LATERAL (SELECT g % 20000 AS grp, g / 20000 AS j) x;
ANALYZE regress_k_many;
SET work_mem = '64kB';
EXPLAIN (COSTS OFF) SELECT grp, deident.k_count_distinct(person) FROM regress_k_many GROUP BY grp;
SELECT batches > 1 AS spilled
  FROM pg_temp.hashagg('SELECT grp, deident.k_count(person), deident.k_count_distinct(person),
         deident.k_sum(v, person), deident.k_sum(vn, person), deident.k_avg(v, person)
         FROM regress_k_many GROUP BY grp');
CREATE TABLE regress_k_many_hashed AS
  SELECT grp, deident.k_count(person) AS c, deident.k_count_distinct(person) AS d,
         deident.k_sum(v, person) AS s, deident.k_sum(vn, person) AS sn, deident.k_avg(v, person) AS a
    FROM regress_k_many GROUP BY grp;
RESET work_mem;
SELECT count(*) AS groups, count(h.d) AS answered,
       count(*) FILTER (WHERE (h.c, h.d, h.s, h.sn::text, h.a) IS DISTINCT FROM (w.c, w.d, w.s, w.sn::text, w.a)) AS mismatches
  FROM regress_k_many_hashed h
  JOIN (SELECT grp,
               CASE WHEN count(DISTINCT person) >= 5 THEN count(person) END AS c,
               CASE WHEN count(DISTINCT person) >= 5 THEN count(DISTINCT person) END AS d,
               CASE WHEN count(DISTINCT person) >= 5 THEN sum(v) END AS s,
               CASE WHEN count(DISTINCT person) >= 5 THEN sum(vn) END AS sn,
               CASE WHEN count(DISTINCT person) >= 5 THEN avg(v) END AS a
          FROM regress_k_many GROUP BY grp) w USING (grp);
-- and the 997 groups of regress_k_big, spilled, as the serial plan gave them
SET work_mem = '64kB';
SELECT count(*) AS groups, count(*) FILTER (WHERE (h.c, h.d, h.s) IS DISTINCT FROM (s.c, s.d, s.s)) AS mismatches
  FROM (SELECT grp, deident.k_count(person) AS c, deident.k_count_distinct(person) AS d,
               deident.k_sum(v, person) AS s FROM regress_k_big GROUP BY grp) h
  JOIN regress_k_serial s USING (grp);
RESET work_mem; RESET enable_sort; RESET max_parallel_workers_per_gather;

-- 10. no SQL caller may read or forge a partial state. The states of the k-aggregates and of
-- dp_count are of type deident.k_state, sealed whenever they leave memory (k_state.sql tests
-- the type); no support function of theirs is declared over internal, which only a superuser's
-- aggregate could hand another extension's state, but deident._k_partial's four, which run
-- for deident._k_partial alone (k_state.sql, section 7).
SELECT count(*) FILTER (WHERE 'internal'::regtype = ANY (p.proargtypes::oid[])) AS over_internal,
       count(*) FILTER (WHERE 'internal'::regtype = ANY (p.proargtypes::oid[])
                          AND p.proname NOT IN ('_k_partial_trans', '_k_partial_final')) AS others_over_internal,
       count(*) AS support_functions,
       count(*) FILTER (WHERE has_function_privilege('regress_k_analyst', p.oid, 'EXECUTE')) AS executable_by_analyst
  FROM pg_proc p WHERE p.pronamespace = 'deident'::regnamespace AND p.proname LIKE '\_k\_%';
-- OK: any role may declare an aggregate over these functions (k_state is not a pseudo-type,
-- and Citus checks the caller's privilege on each), and sees its state sealed: the mark
-- "pgdS", format 2, kind 1 (k-aggregate), the key id k1; 9 header bytes, the batch's 16-byte
-- salt, a 12-byte nonce, the 42 bytes of the state (version, kind, cap, rows, 2 persons'
-- hashes) framed and padded to 128 (64 + 8k, rounded up to a power of two), and the 16-byte
-- tag; no person's hash shows
CREATE SCHEMA regress_k_own AUTHORIZATION regress_k_analyst;
SET ROLE regress_k_analyst;
CREATE AGGREGATE regress_k_own.peek(text) (SFUNC = deident._k_distinct_trans, STYPE = deident.k_state);
SELECT substr(s, 1, 9) AS header, length(s) AS bytes,
       position('\xe5b8490fc4c00314'::bytea IN s) AS plain_hash_at
  FROM (SELECT decode(regress_k_own.peek(p)::text, 'base64') AS s
          FROM (VALUES ('alice'), ('bob'), ('alice')) t(p)) x;
RESET ROLE;
DROP SCHEMA regress_k_own CASCADE;

DROP TABLE regress_k, regress_k_big, regress_k_serial, regress_k_parallel, regress_k_numeric,
  regress_k_many, regress_k_many_hashed;
DROP FUNCTION regress_k_mismatches(int);
DROP ROLE regress_k_analyst;
