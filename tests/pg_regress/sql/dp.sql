--
-- dp: dp_count, dp_sum and dp_avg (SPEC "Differentially private aggregates") and the privacy
-- budget. The answers are random, so each statistical check prints whether it passed and the
-- figure it tested, rounded far enough to be stable; the tolerances are fixed, about four to
-- five standard errors, and each is one that a broken mechanism fails (named beside it).
--
SHOW deident.dp_epsilon;
SHOW deident.dp_delta;

-- Data: person i (1..200) has one row of value 1 in group 'all'; person 'heavy' has 40 rows
-- of 1; person 'outlier' one row of 1,000,000.
CREATE TABLE regress_dp AS
  SELECT 'p' || i AS person, i AS person_int, 1 AS v, 1::numeric AS vn, 1::real AS vr,
         1::double precision AS vd
    FROM generate_series(1, 200) i;
INSERT INTO regress_dp SELECT 'heavy', 1001, 1, 1, 1, 1 FROM generate_series(1, 40);
INSERT INTO regress_dp VALUES ('outlier', 1002, 1000000, 1000000, 1000000, 1000000);
ALTER TABLE regress_dp ADD COLUMN person_uuid uuid, ADD COLUMN person_big bigint,
  ADD COLUMN half int, ADD COLUMN v2 smallint, ADD COLUMN vd10 double precision;
UPDATE regress_dp SET person_uuid = md5(person)::uuid, person_big = person_int,
  half = person_int % 2, v2 = least(v, 9), vd10 = vd * 0.1;
-- a table without personal data, to repeat groups and rows
CREATE TABLE regress_dp_r AS SELECT r FROM generate_series(1, 3000) r;
-- the person must be a column labelled identifier (section 2b)
SECURITY LABEL FOR deident ON COLUMN regress_dp.person IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp.person_int IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp.person_uuid IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp.person_big IS 'identifier';
SELECT count(*) AS rows, count(DISTINCT person) AS persons, sum(v) AS plain_sum FROM regress_dp;

-- 1. Result types: as SPEC says, for each value type (a superuser is not limited)
SELECT pg_typeof(deident.dp_count(person)) AS count_text,
       pg_typeof(deident.dp_count(person_int)) AS count_int,
       pg_typeof(deident.dp_sum(v2, person, 0::smallint, 2::smallint)) AS sum_int2,
       pg_typeof(deident.dp_sum(v, person, 0, 2)) AS sum_int4,
       pg_typeof(deident.dp_sum(v::bigint, person, 0, 2)) AS sum_int8,
       pg_typeof(deident.dp_sum(vn, person, 0, 2)) AS sum_numeric,
       pg_typeof(deident.dp_sum(vr, person, 0, 2)) AS sum_real,
       pg_typeof(deident.dp_sum(vd, person, 0, 2)) AS sum_double
  FROM regress_dp;
SELECT pg_typeof(deident.dp_avg(v, person, 0, 2)) AS avg_int4,
       pg_typeof(deident.dp_avg(vn, person, 0, 2)) AS avg_numeric,
       pg_typeof(deident.dp_avg(vd, person, 0, 2)) AS avg_double,
       pg_typeof(deident.dp_sum(v, person_uuid, 0, 2)) AS uuid_person,
       pg_typeof(deident.dp_sum(v, person_big, 0, 2)) AS bigint_person
  FROM regress_dp;

-- 2. Bad bounds and settings: clear errors, raised when the query is planned, so they do not
-- depend on the data (the WHERE false queries have no rows at all)
-- fail (lower > upper)
SELECT deident.dp_sum(v, person, 10, 0) FROM regress_dp WHERE false;
-- fail (not finite)
SELECT deident.dp_sum(vd, person, 0, 'infinity') FROM regress_dp WHERE false;
SELECT deident.dp_avg(vn, person, 'NaN', 1) FROM regress_dp WHERE false;
-- fail (NULL)
SELECT deident.dp_sum(v, person, NULL, 1) FROM regress_dp WHERE false;
-- fail (a bound that could change from row to row)
SELECT deident.dp_sum(v, person, 0, v) FROM regress_dp WHERE false;
SELECT deident.dp_sum(v, person, 0, (random() * 10)::int) FROM regress_dp WHERE false;
-- fail (beyond ±2^52)
SELECT deident.dp_sum(v::bigint, person, 0, 4503599627370497) FROM regress_dp WHERE false;
-- fail (also inside a subquery, a CTE and a sublink)
SELECT * FROM (SELECT deident.dp_sum(v, person, 5, 1) FROM regress_dp WHERE false) s;
WITH c AS (SELECT deident.dp_sum(v, person, 5, 1) FROM regress_dp WHERE false) SELECT * FROM c;
SELECT 1 WHERE 0 < (SELECT deident.dp_sum(v, person, 5, 1) FROM regress_dp WHERE false);
-- OK: constant expressions are folded first; the bounds may be equal; 2^52 is allowed
SELECT deident.dp_sum(v, person, 1 - 1, 2 * 5) IS NULL AS empty_is_null,
       deident.dp_sum(v, person, 3, 3) IS NULL AS equal_bounds,
       deident.dp_sum(v::bigint, person, 0, 4503599627370496) IS NULL AS widest
  FROM regress_dp WHERE false;
-- fail (parameters are refused whatever their value: a generic plan has none to check, and a
-- check on the first row would fail only when there are rows): a prepared statement, a
-- PL/pgSQL variable, a SQL function's argument
PREPARE regress_dp_q(int, int) AS SELECT deident.dp_sum(v, person, $1, $2) FROM regress_dp WHERE false;
EXECUTE regress_dp_q(0, 10);
DEALLOCATE regress_dp_q;
DO $$ DECLARE lo int := 10; hi int := 0; r bigint;
BEGIN SELECT deident.dp_sum(v, person, lo, hi) INTO r FROM regress_dp WHERE false; END $$;
CREATE FUNCTION regress_dp_f(lo int, hi int) RETURNS bigint LANGUAGE sql
  AS $$ SELECT deident.dp_sum(v, person, lo, hi) FROM regress_dp WHERE false $$;
SELECT regress_dp_f(0, 10);
DROP FUNCTION regress_dp_f(int, int);
-- fail (ORDER BY inside the call adds arguments; the bounds are still found and checked)
SELECT deident.dp_sum(v, person, 10, 0 ORDER BY person_int) FROM regress_dp WHERE false;
-- fail, with good bounds too: ORDER BY or DISTINCT inside any aggregate call of the level,
-- and grouping sets, rule out the hash aggregate in which each person's groups are chosen
-- (section 4b)
SELECT deident.dp_sum(v, person, 0, 10 ORDER BY person_int) FROM regress_dp WHERE false;
SELECT deident.dp_count(DISTINCT person) FROM regress_dp WHERE false;
SELECT half, deident.dp_count(person), count(DISTINCT v) FROM regress_dp GROUP BY half;
SELECT half, deident.dp_count(person) FROM regress_dp GROUP BY ROLLUP (half);
SELECT deident.dp_count(person) FROM regress_dp GROUP BY GROUPING SETS ((half), ());
-- fail (real bounds so small that the noise grid would underflow)
SELECT deident.dp_sum(vd, person, 0, 5e-324::float8) FROM regress_dp WHERE false;

-- 2b. The person must be the rows' own person, and each value that person's: the person is
-- columns labelled identifier of one table in FROM (or a deterministic function of them),
-- and the value reads that table's row alone. Checked when the query is planned.
CREATE TABLE regress_dp_plain AS SELECT * FROM regress_dp;
-- fail (a column that is not labelled identifier)
SELECT deident.dp_count(person) FROM regress_dp_plain WHERE false;
SELECT deident.dp_count(v) FROM regress_dp WHERE false;
-- fail (one row made many persons: another table's column, alone or mixed in; any function
-- of the person, even a cast, even a setting that set_config() changes row by row)
SELECT deident.dp_avg(v, g.i, 0, 10) FROM regress_dp, generate_series(1, 1000) g(i) WHERE person = 'p1';
SELECT deident.dp_count(person || g.i) FROM regress_dp, generate_series(1, 1000) g(i) WHERE false;
SELECT deident.dp_count(person || random()::text) FROM regress_dp WHERE false;
SELECT deident.dp_count(lower(person)) FROM regress_dp WHERE false;
SELECT deident.dp_count(person_int::bigint) FROM regress_dp WHERE false;
SELECT deident.dp_sum(p.v, p.person || current_setting('regress.c', true), 0, 10)
  FROM regress_dp p JOIN generate_series(1, 1000) g(i) ON set_config('regress.c', g.i::text, false) <> ''
 WHERE p.person = 'p1';
-- fail (a subquery or a view in FROM hides where the person comes from)
SELECT deident.dp_count(x.person) FROM (SELECT person FROM regress_dp) x WHERE false;
-- fail (one person's value given to every person: a self-join, a scalar subquery, a setting
-- set from another row, a function that reads another row)
SELECT deident.dp_sum(w.v, p.person, 0, 10) FROM regress_dp p, regress_dp w WHERE w.person = 'outlier';
SELECT deident.dp_sum((SELECT max(v) FROM regress_dp), person, 0, 10) FROM regress_dp WHERE false;
SELECT deident.dp_sum(current_setting('regress.v')::int, p.person, 0, 10)
  FROM regress_dp w JOIN regress_dp p ON set_config('regress.v', w.v::text, false) <> '' WHERE w.person = 'outlier';
CREATE FUNCTION regress_dp_vmax() RETURNS int LANGUAGE sql STABLE AS $$ SELECT max(v) FROM regress_dp $$;
SELECT deident.dp_sum(regress_dp_vmax(), person, 0, 10) FROM regress_dp WHERE false;
-- fail (a user-defined function anywhere in the statement: it may lie about its volatility)
SELECT deident.dp_count(person) FROM regress_dp WHERE v < regress_dp_vmax() AND false;
-- fail (a bound from a user-defined function, which could fold to another value later)
CREATE FUNCTION regress_dp_ten() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 10 $$;
SELECT deident.dp_sum(v, person, 0, regress_dp_ten()) FROM regress_dp WHERE false;
-- fail (a set-returning SQL function is not inlined into the caller, where the check has
-- run: its body is planned, and checked, on its own)
CREATE FUNCTION regress_dp_srf() RETURNS SETOF bigint LANGUAGE sql STABLE
  AS $$ SELECT deident.dp_count(p.person || g::text) FROM regress_dp p, generate_series(1, 100) g WHERE false $$;
SELECT * FROM regress_dp_srf();
-- fail, also when the function was of another language the first time this session called
-- it (the needs_fmgr hook keeps what it read of a function until pg_proc changes)
CREATE FUNCTION regress_dp_srf2() RETURNS SETOF bigint LANGUAGE plpgsql STABLE
  AS $$ BEGIN RETURN NEXT 1; END $$;
SELECT * FROM regress_dp_srf2();
CREATE OR REPLACE FUNCTION regress_dp_srf2() RETURNS SETOF bigint LANGUAGE sql STABLE
  AS $$ SELECT deident.dp_count(p.person || g::text) FROM regress_dp p, generate_series(1, 100) g WHERE false $$;
SELECT * FROM regress_dp_srf2();
-- fail (0A000 when the executor starts, nothing charged: a body that names no dp aggregate
-- (nor "dp_") but reads a view that has one, which PostgreSQL inlines with the body after the
-- checks; also as a BEGIN ATOMIC body. Every dp call the checks pass carries their mark into the
-- plan, and the executor refuses a dp call without it; a review counted 493 "persons" of one
-- row this way)
CREATE VIEW regress_counts_v AS
  SELECT deident.dp_count(p.person || g::text) AS c FROM regress_dp p, generate_series(1, 100) g WHERE false;
SELECT * FROM regress_counts_v;
CREATE FUNCTION regress_dp_srf3() RETURNS SETOF bigint LANGUAGE sql STABLE
  AS $$ SELECT c FROM regress_counts_v $$;
SELECT * FROM regress_dp_srf3();
CREATE FUNCTION regress_dp_srf4() RETURNS SETOF bigint LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT c FROM regress_counts_v; END;
SELECT * FROM regress_dp_srf4();
DROP FUNCTION regress_dp_srf(), regress_dp_srf2(), regress_dp_srf3(), regress_dp_srf4(),
  regress_dp_ten(), regress_dp_vmax();
DROP VIEW regress_counts_v;
-- OK: pg_deident's own functions and aggregates are known, as are built-in non-volatile ones
SELECT deident.k_count_distinct(person) AS k_persons, deident.dp_count(person) IS NOT NULL AS answered
  FROM regress_dp WHERE person <> '';
-- fail (a value computed: any function could fail on one person's value)
SELECT deident.dp_sum(least(v * 2, 3) - 1, person, 0, 10) FROM regress_dp WHERE false;
-- fail (another person's row decides which rows count: a join, EXISTS, a subquery over a
-- table with identifier columns, other than the aggregates' own)
SELECT deident.dp_count(p.person) FROM regress_dp p
 WHERE EXISTS (SELECT 1 FROM regress_dp v WHERE v.person = 'outlier' AND v.v > 5) AND false;
SELECT deident.dp_count(p.person) FROM regress_dp p JOIN regress_dp v ON v.person = 'outlier' WHERE false;
SELECT deident.dp_count(person) FROM regress_dp WHERE v IN (SELECT v FROM regress_dp WHERE person = 'outlier') AND false;
-- fail (a function that can raise an error on the rows: WHERE 1 / (v - 1000000) fails
-- exactly when someone's value is 1,000,000)
SELECT deident.dp_count(person) FROM regress_dp WHERE 1 / (v - 1000000) > 0 AND person = 'nobody';
-- fail too: a query over the answers is checked as the rows are. PostgreSQL moves a WHERE on
-- the grouping columns into the aggregates' query (qual pushdown), where it runs on every row:
-- this one would fail whenever a row of half = 1 exists, whether or not its group is answered;
-- and an aggregate over the answers (sum is not leakproof) is refused alike, with a hint to
-- compute it in a later statement
SELECT * FROM (SELECT half, deident.dp_count(person) AS c FROM regress_dp GROUP BY half) s
 WHERE 1 / (half - 1) > 0;
SELECT sum(c) FROM (SELECT half, deident.dp_count(person) AS c FROM regress_dp GROUP BY half) s;
-- OK: a table without identifier columns may be joined; leakproof comparisons; rows repeated
-- by a join stay their person's: each total grows threefold and is clamped once (at ε = 100:
-- 200 persons × 3, and 10 each for 'heavy' and 'outlier')
SET deident.dp_epsilon = 100;
SELECT abs(deident.dp_sum(p.v, p.person, 0, 10) - 620) <= 2 AS repeated_rows_clamped
  FROM regress_dp p, regress_dp_r g WHERE g.r <= 3;
RESET deident.dp_epsilon;
DROP TABLE regress_dp_plain;

-- fail (ε ≤ 0, or beyond the range; δ: superuser only, see section 6)
SET deident.dp_epsilon = 0;
SET deident.dp_epsilon = -1;
SET deident.dp_epsilon = 1000;

-- 3. Noise and clamping, against what the mechanism must give (ε = 0.5, so dp_count has
-- discrete Laplace noise of scale 2 and dp_sum of scale Δ/(ε/2) = 4Δ)
-- dp_count over 3,000 evaluations of the 202-person group: mean within 5 standard errors of
-- 202; variance 2q/(1-q)^2 = 7.835 (q = e^-0.5) within 15% (3 standard errors; noise of
-- scale 1/ε·2 would give 4 times it, no noise 0)
-- (each person is in all 3,000 groups: deident.dp_max_groups_per_person lets them count in all)
SET deident.dp_max_groups_per_person = 3000;
CREATE TABLE regress_dp_runs AS
  SELECT r, deident.dp_count(person) AS c, deident.dp_sum(v, person, 0, 10) AS s,
         deident.dp_avg(vd, person, 0, 10) AS a
    FROM regress_dp, regress_dp_r GROUP BY r;
RESET deident.dp_max_groups_per_person;
SELECT count(*) AS runs, count(c) AS released,
       abs(avg(c) - 202) < 5 * sqrt(7.835 / 3000) AS count_mean_ok,
       var_pop(c) BETWEEN 7.835 * 0.85 AND 7.835 * 1.15 AS count_spread_ok,
       count(DISTINCT c) > 5 AS count_varies
  FROM regress_dp_runs;
-- dp_sum with bounds [0, 10]: each person's total clamped once: 200 persons give 1 each,
-- 'heavy' 40 rows of 1 -> 10, 'outlier' 1,000,000 -> 10, so 220 (clamping each row instead
-- would give 250; no clamping 1,000,240). Noise scale 40: variance 3,200.
SELECT abs(avg(s) - 220) < 5 * sqrt(3200.0 / 3000) AS sum_mean_ok,
       var_pop(s) BETWEEN 3200 * 0.85 AND 3200 * 1.15 AS sum_spread_ok,
       abs(avg(a) - 220.0 / 202) < 0.05 AS avg_mean_ok
  FROM regress_dp_runs;
-- the same in a parallel plan, where one person's rows are split between workers: the
-- totals are added across partial states before clamping ('heavy' still counts 10)
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
CREATE TABLE regress_dp_big AS
  SELECT 'p' || (i % 300) AS person, 1 AS v FROM generate_series(1, 60000) i;
SECURITY LABEL FOR deident ON COLUMN regress_dp_big.person IS 'identifier';
ANALYZE regress_dp_big;
EXPLAIN (COSTS OFF) SELECT deident.dp_sum(v, person, 0, 10) FROM regress_dp_big;
-- 300 persons of 200 rows each: every total clamps to 10, so 3,000 (clamping the partial
-- totals of two workers would give about 6,000). At ε = 100 the noise has scale 0.2, and is
-- beyond ±2 with probability 6e-7, so the exact figure shows.
SET deident.dp_epsilon = 100;
SELECT abs(deident.dp_sum(v, person, 0, 10) - 3000) <= 2 AS parallel_sum_exact,
       abs(deident.dp_avg(v, person, 0, 10) - 10) < 0.1 AS parallel_avg_exact,
       abs(deident.dp_count(person) - 300) <= 2 AS parallel_count_exact
  FROM regress_dp_big;
RESET deident.dp_epsilon;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
-- real sums land on the published grid: Δ = 10, step 2^(3-20) = 2^-17
SET deident.dp_max_groups_per_person = 50;
CREATE TEMP TABLE regress_dp_grid AS SELECT deident.dp_sum(vd10, person, 0.0, 10.0) AS x
  FROM regress_dp, regress_dp_r WHERE r <= 50 GROUP BY r;
RESET deident.dp_max_groups_per_person;
SELECT count(*) AS sums, bool_and(x * 131072 = round(x * 131072)) AS on_grid FROM regress_dp_grid;
DROP TABLE regress_dp_grid;

-- 4. Release: a group of one person is answered with probability at most δ (threshold 28 for
-- dp_count at ε = 0.5, δ = 1e-6: 10,000 tries expect 0.009 releases)
CREATE TABLE regress_dp_single AS SELECT g, 'solo' || g AS person, 1 AS v FROM generate_series(1, 10000) g;
SECURITY LABEL FOR deident ON COLUMN regress_dp_single.person IS 'identifier';
SELECT count(*) AS groups, count(c) <= 1 AS one_person_hidden
  FROM (SELECT g, deident.dp_count(person) AS c FROM regress_dp_single GROUP BY g) s;
-- with δ raised to 1e-2 the threshold is 10: a one-person group passes with probability
-- 0.0069 (69 of 10,000 expected; ignoring the threshold for k = 5 alone would give 850)
SET deident.dp_delta = 0.01;
SELECT count(c) BETWEEN 35 AND 110 AS released_at_delta
  FROM (SELECT g, deident.dp_count(person) AS c FROM regress_dp_single GROUP BY g) s;
RESET deident.dp_delta;
-- never below min_group_size: at ε = 100 the noise is tiny, but 10 persons stay hidden when
-- k = 11
SET deident.dp_epsilon = 100;
SET deident.min_group_size = 11;
SELECT deident.dp_count(person) AS ten_persons FROM regress_dp WHERE person_int <= 10;
SET deident.min_group_size = 10;
SELECT deident.dp_count(person) AS ten_persons FROM regress_dp WHERE person_int <= 10;
RESET deident.min_group_size;
RESET deident.dp_epsilon;
-- groups near the thresholds (28 for dp_count, 54 for dp_sum and dp_avg): some answered, some
-- not. 30 persons: dp_count hides a group when its noise is -3 or less (probability 0.14, so
-- about 280 of 2,000). 54 persons: dp_sum and dp_avg each answer with probability 0.56, and
-- each decides for itself, so they disagree in about half the groups (a decision shared by the
-- aggregates of a row would tell whether they saw the same persons, and would never disagree)
CREATE TABLE regress_dp_edge AS SELECT g, p, 'e' || g || '-' || p AS person, 1 AS v
  FROM generate_series(1, 2000) g, generate_series(1, 54) p;
SECURITY LABEL FOR deident ON COLUMN regress_dp_edge.person IS 'identifier';
SELECT count(*) FILTER (WHERE c IS NULL) BETWEEN 100 AND 500 AS some_hidden
  FROM (SELECT g, deident.dp_count(person) AS c FROM regress_dp_edge WHERE p <= 30 GROUP BY g) x;
SELECT count(*) FILTER (WHERE s IS NULL) BETWEEN 700 AND 1050 AS some_sums_hidden,
       count(*) FILTER (WHERE (s IS NULL) <> (a IS NULL)) BETWEEN 800 AND 1170 AS decided_apart
  FROM (SELECT g, deident.dp_sum(v, person, 0, 1) AS s, deident.dp_avg(v, person, 0, 1) AS a
          FROM regress_dp_edge GROUP BY g) x;
DROP TABLE regress_dp_edge, regress_dp_single, regress_dp_big, regress_dp_runs;

-- 4b. A person counts in at most L groups of a dp aggregate call, chosen from the person's
-- own groups alone (admission.rs): 30 persons with rows in two groups, at ε = 100 (exact
-- answers); with L = 1 each counts in one of the two (about half in each), with L = 2 in both
CREATE TABLE regress_dp_two AS SELECT grp, 'q' || p AS person FROM unnest(ARRAY['a', 'b']) grp, generate_series(1, 30) p;
SECURITY LABEL FOR deident ON COLUMN regress_dp_two.person IS 'identifier';
SET deident.dp_epsilon = 100;
CREATE TEMP TABLE regress_dp_l1 AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_two GROUP BY grp;
SELECT count(c) AS groups_answered, sum(c) AS persons_counted, min(c) BETWEEN 5 AND 25 AS spread FROM regress_dp_l1;
SET deident.dp_max_groups_per_person = 2;
CREATE TEMP TABLE regress_dp_l2 AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_two GROUP BY grp;
SELECT count(c) AS groups_answered, sum(c) AS persons_counted FROM regress_dp_l2;
RESET deident.dp_max_groups_per_person;
-- fail: a dp aggregate that runs again for each row of something else (a correlated or a
-- LATERAL subquery) would count a person in the runs that come first, in an order that other
-- persons' data can decide (the rows of another dp aggregate's answer)
CREATE TABLE regress_dp_runs3 (k text);
INSERT INTO regress_dp_runs3 VALUES ('x'), ('y'), ('z');
SELECT r.k, s.grp, s.c FROM regress_dp_runs3 r,
  LATERAL (SELECT grp, deident.dp_count(person) AS c FROM regress_dp_two WHERE grp <> r.k GROUP BY grp) s;
SELECT r.k, (SELECT deident.dp_count(person) FROM regress_dp_two t WHERE t.grp <> r.k) FROM regress_dp_runs3 r;
SELECT a.grp, (SELECT deident.dp_count(person) FROM regress_dp_two t WHERE t.grp = a.grp)
  FROM (SELECT grp FROM regress_dp_two GROUP BY grp HAVING deident.dp_count(person) IS NOT NULL) a;
-- OK: an uncorrelated subquery runs once (an initPlan)
SELECT grp, deident.dp_count(person) AS c FROM regress_dp_two
 WHERE grp <> (SELECT k FROM regress_dp_runs3 WHERE k = 'x') GROUP BY grp ORDER BY grp;
DROP TABLE regress_dp_runs3;
-- The choice does not depend on the hash table's layout, which other persons' groups and the
-- memory shape: 2,000 groups, 20,000 persons in three each, L = 1; work_mem = 64kB gives the
-- hash table an eighth of the buckets of the default, so it finalizes the groups in another
-- order, yet every group's count is the same (when the first groups finalized were the ones
-- counted, most groups changed)
CREATE TABLE regress_dp_many AS SELECT (p * 7 + j * 661) % 2000 AS grp, 'm' || p AS person
  FROM generate_series(1, 20000) p, generate_series(0, 2) j;
SECURITY LABEL FOR deident ON COLUMN regress_dp_many.person IS 'identifier';
ANALYZE regress_dp_many;
CREATE TEMP TABLE regress_dp_big_mem AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_many GROUP BY grp;
SET work_mem = '64kB';
CREATE TEMP TABLE regress_dp_small_mem AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_many GROUP BY grp;
RESET work_mem;
SELECT count(*) AS groups, sum(a.c) AS persons_counted,
       count(*) FILTER (WHERE a.c IS DISTINCT FROM b.c) AS groups_changed
  FROM regress_dp_big_mem a FULL JOIN regress_dp_small_mem b USING (grp);
-- the same choice in a parallel plan (grouped dp aggregates finalize in a hash aggregate
-- over the workers' partial states, grouping.rs): the leader combines every group's partial
-- states in one hash table and chooses there, so every group's count is the same again
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
CREATE FUNCTION pg_temp.parallel_plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE p json; g json; w json; between text := '';
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) ' || q INTO p;
  p := p->0->'Plan';
  g := p->'Plans'->0;
  w := g->'Plans'->0;
  -- any node between the Gather and the partial aggregates is named (a Sort under a Gather
  -- Merge, which the hash aggregate above does not need: grouping.rs, `gathered`)
  WHILE w->>'Node Type' <> 'Aggregate' LOOP
    between := between || (w->>'Node Type') || ' of ';
    w := w->'Plans'->0;
  END LOOP;
  RETURN format('%s %s %s over %s, %s workers launched, each: %s%s %s %s', p->>'Partial Mode',
                p->>'Strategy', p->>'Node Type', g->>'Node Type', g->>'Workers Launched',
                between, w->>'Partial Mode', w->>'Strategy', w->>'Node Type');
END $$;
SELECT pg_temp.parallel_plan('CREATE TEMP TABLE regress_dp_parallel AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_many GROUP BY grp');
SELECT count(*) AS groups, sum(b.c) AS persons_counted,
       count(*) FILTER (WHERE a.c IS DISTINCT FROM b.c) AS groups_changed
  FROM regress_dp_big_mem a FULL JOIN regress_dp_parallel b USING (grp);
-- and dp_sum: each person's 200 rows (all in one of 3 groups) are split between the two
-- workers, whose partial totals are added in the leader before clamping: 100 persons a group,
-- each clamped to 10, so 1,000 (clamping each worker's partial total would give about 2,000).
-- Its plan was a Sort of each worker's partial states under a Gather Merge until the tenth
-- session of issue 11: PostgreSQL keeps that path over the plain Gather for its order, which
-- the leader's hash aggregate does not use
CREATE TABLE regress_dp_split AS
  SELECT i % 3 AS grp, 'p' || (i % 300) AS person, 1 AS v FROM generate_series(1, 60000) i;
SECURITY LABEL FOR deident ON COLUMN regress_dp_split.person IS 'identifier';
ANALYZE regress_dp_split;
SELECT pg_temp.parallel_plan('CREATE TEMP TABLE regress_dp_split_sums AS SELECT grp, deident.dp_sum(v, person, 0, 10) AS s, deident.dp_avg(v, person, 0, 10) AS a FROM regress_dp_split GROUP BY grp');
SELECT grp, abs(s - 1000) <= 2 AS sum_exact, abs(a - 10) < 0.1 AS avg_exact
  FROM regress_dp_split_sums ORDER BY grp;
DROP TABLE regress_dp_split;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
-- with partitionwise aggregation, PostgreSQL's cheapest finalization can read an Append of
-- each partition's partial aggregates in one process, where a Gather of the same partial
-- aggregates in parallel workers costs more (at the default parallel_setup_cost, with tables
-- big enough for parallel scans, as min_parallel_table_scan_size = 0 makes these): the hook
-- keeps it beside its own over a Gather (until the eleventh session of issue 11 it kept only
-- the Gather, costed about a third more: 1,742 against 1,264)
CREATE TABLE regress_dp_parts (part int, grp int, person text, v int) PARTITION BY LIST (part);
CREATE TABLE regress_dp_parts0 PARTITION OF regress_dp_parts FOR VALUES IN (0);
CREATE TABLE regress_dp_parts1 PARTITION OF regress_dp_parts FOR VALUES IN (1);
CREATE TABLE regress_dp_parts2 PARTITION OF regress_dp_parts FOR VALUES IN (2);
INSERT INTO regress_dp_parts
  SELECT (i / 300) % 3, i % 5, 'p' || (i % 300), 1 FROM generate_series(1, 60000) i;
SECURITY LABEL FOR deident ON COLUMN regress_dp_parts.person IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp_parts0.person IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp_parts1.person IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_dp_parts2.person IS 'identifier';
ANALYZE regress_dp_parts;
SET enable_partitionwise_aggregate = on;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT grp, deident.dp_sum(v, person, 0, 10) FROM regress_dp_parts GROUP BY grp;
-- each person's 200 rows are in all three partitions, and their partial totals are added
-- before clamping: 60 persons a group, 10 each, so 600 (clamping each partition's partial
-- total would give 1,800); at this section's ε = 100 the exact figure shows, as above
SELECT grp, abs(deident.dp_sum(v, person, 0, 10) - 600) <= 2 AS sum_exact
  FROM regress_dp_parts GROUP BY grp ORDER BY grp;
RESET min_parallel_table_scan_size;
RESET enable_partitionwise_aggregate;
DROP TABLE regress_dp_parts;
-- and one person's rows (in 40 groups of their own and 20 of the others') change at most the
-- one group they count in
INSERT INTO regress_dp_many SELECT g, 'victim' FROM generate_series(0, 19) g UNION ALL SELECT g, 'victim' FROM generate_series(5000, 5039) g;
CREATE TEMP TABLE regress_dp_with AS SELECT grp, deident.dp_count(person) AS c FROM regress_dp_many GROUP BY grp;
SELECT sum(abs(coalesce(a.c, 0) - coalesce(b.c, 0))) <= 1 AS one_group_moved_by_one
  FROM regress_dp_big_mem a FULL JOIN regress_dp_with b USING (grp);
-- always a hash aggregate, whatever the planner would prefer; never spilled
SET enable_hashagg = off;
SET work_mem = '64kB';
EXPLAIN (COSTS OFF) SELECT grp, deident.dp_count(person) FROM regress_dp_many GROUP BY grp ORDER BY grp;
CREATE INDEX regress_dp_many_grp ON regress_dp_many (grp);
EXPLAIN (COSTS OFF) SELECT grp, deident.dp_count(person) FROM regress_dp_many WHERE grp < 10 GROUP BY grp;
RESET enable_hashagg;
-- at work_mem = 64kB the 2,000 groups are one batch in memory, where the same grouping with
-- k_count_distinct spills to disk in several
CREATE FUNCTION pg_temp.hash_batches(q text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) ' || q INTO j;
  RETURN (j->0->'Plan'->>'HashAgg Batches')::int;
END $$;
SET enable_sort = off;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT pg_temp.hash_batches('SELECT grp, deident.dp_count(person) FROM regress_dp_many GROUP BY grp') AS dp_batches,
       pg_temp.hash_batches('SELECT grp, deident.k_count_distinct(person) FROM regress_dp_many GROUP BY grp') > 1 AS k_spills;
RESET enable_sort;
RESET enable_indexscan;
RESET enable_bitmapscan;
RESET work_mem;
-- never finalized in a parallel worker, not even in a subquery that a worker could run: a
-- worker finds no charge and fails, and whether one runs the subquery could depend on one
-- person's row; both persons, there or not, get the same answer (before, 'm17' gave an ERROR)
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
SELECT deident.dp_count(person) IS NULL AS hidden_m17 FROM regress_dp_many
 WHERE CASE WHEN person = 'm17' THEN grp NOT IN (SELECT deident.dp_count(person) FROM regress_dp_two) ELSE false END;
SELECT deident.dp_count(person) IS NULL AS hidden_nobody FROM regress_dp_many
 WHERE CASE WHEN person = 'nobody' THEN grp NOT IN (SELECT deident.dp_count(person) FROM regress_dp_two) ELSE false END;
EXPLAIN (COSTS OFF) SELECT deident.dp_count(person) FROM regress_dp_many
 WHERE CASE WHEN person = 'm17' THEN grp NOT IN (SELECT deident.dp_count(person) FROM regress_dp_two) ELSE false END;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
RESET deident.dp_epsilon;
DROP TABLE regress_dp_two, regress_dp_l1, regress_dp_l2, regress_dp_many, regress_dp_big_mem,
  regress_dp_small_mem, regress_dp_with;

-- 5. Not a window function (a running sum would give each row's value away)
-- fail
SELECT deident.dp_count(person) OVER () FROM regress_dp LIMIT 1;

-- 6. The privacy budget
CREATE ROLE regress_dp_analyst;
CREATE ROLE regress_dp_other;
GRANT regress_dp_other TO regress_dp_analyst;
GRANT SELECT ON regress_dp TO regress_dp_analyst, regress_dp_other;
GRANT USAGE ON SCHEMA deident TO regress_dp_analyst, regress_dp_other;
-- fail (no budget yet)
SET ROLE regress_dp_analyst;
SELECT deident.dp_count(person) FROM regress_dp;
-- fail (only a superuser sets budgets; δ is a superuser's setting)
SELECT deident.set_privacy_budget('regress_dp_analyst', 100);
SET deident.dp_delta = 0.01;
RESET ROLE;
-- fail (NULL, negative, infinite, a superuser)
SELECT deident.set_privacy_budget(NULL, 1);
SELECT deident.set_privacy_budget('regress_dp_analyst', NULL);
SELECT deident.set_privacy_budget('regress_dp_analyst', -1);
SELECT deident.set_privacy_budget('regress_dp_analyst', 'infinity');
SELECT deident.set_privacy_budget(CURRENT_USER::regrole, 1);
-- OK: 2.0, i.e. four groups at ε = 0.5
SELECT deident.set_privacy_budget('regress_dp_analyst', 2.0);
SELECT * FROM deident.privacy_budget WHERE role::text LIKE 'regress_dp%';
SET ROLE regress_dp_analyst;
-- OK: one group, 0.5
SELECT deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp;
SELECT "limit", spent, remaining FROM deident.privacy_budget;
-- ROLLBACK refunds nothing, nor does an ERROR later in the same statement
BEGIN;
SELECT deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp;
ROLLBACK;
-- fail (division by zero after the group was answered)
SELECT deident.dp_count(person) / 0 FROM regress_dp;
SELECT "limit", spent, remaining FROM deident.privacy_budget;
-- a smaller ε fits what remains: 1.5 + 0.25 + 0.25 = 2
SET deident.dp_epsilon = 0.25;
SELECT deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp;
SELECT deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp;
-- fail (the first query past the budget is refused)
SELECT deident.dp_count(person) FROM regress_dp;
RESET deident.dp_epsilon;
SELECT spent, remaining FROM deident.privacy_budget;
-- a statement is charged before it runs, ε × L per dp aggregate call (L =
-- deident.dp_max_groups_per_person, default 1), whatever the number of groups: a GROUP BY of
-- two groups costs 0.5; with L = 2 it would cost 1.0, more than remains
RESET ROLE;
SELECT deident.set_privacy_budget('regress_dp_analyst', 2.75);
SET ROLE regress_dp_analyst;
SELECT half, deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp GROUP BY half ORDER BY half;
SELECT spent, remaining FROM deident.privacy_budget;
SET deident.dp_max_groups_per_person = 2;
-- fail (needs 1.0, 0.25 remains)
SELECT half, deident.dp_count(person) FROM regress_dp GROUP BY half ORDER BY half;
RESET deident.dp_max_groups_per_person;
-- what a statement costs does not depend on the data: a question about one person costs
-- the same whether the answer is yes or no (nothing is released either way)
RESET ROLE;
SELECT deident.set_privacy_budget('regress_dp_analyst', 5);
SET ROLE regress_dp_analyst;
SELECT spent AS before FROM deident.privacy_budget \gset
SELECT 1 FROM regress_dp WHERE person = 'outlier' AND v >= 1000 GROUP BY person HAVING deident.dp_count(person) IS NOT NULL;
SELECT spent - :before AS cost_if_yes FROM deident.privacy_budget;
SELECT spent AS before FROM deident.privacy_budget \gset
SELECT 1 FROM regress_dp WHERE person = 'outlier' AND v >= 2000000 GROUP BY person HAVING deident.dp_count(person) IS NOT NULL;
SELECT spent - :before AS cost_if_no FROM deident.privacy_budget;
RESET ROLE;
-- nothing left for what follows
SELECT deident.set_privacy_budget('regress_dp_analyst', 3.5);
-- a role sees its own account only; a superuser sees all
SELECT deident.set_privacy_budget('regress_dp_other', 1);
SET ROLE regress_dp_other;
SELECT role, "limit" FROM deident.privacy_budget;
RESET ROLE;
SELECT role, "limit" FROM deident.privacy_budget WHERE role::text LIKE 'regress_dp%' ORDER BY 1;
-- fail (SET ROLE to another role charges the session's role too: here the superuser's
-- session is not limited, so an analyst's login is simulated with SET SESSION AUTHORIZATION)
SET SESSION AUTHORIZATION regress_dp_analyst;
SET ROLE regress_dp_other;
SELECT deident.dp_count(person) FROM regress_dp;
RESET ROLE;
RESET SESSION AUTHORIZATION;
-- a superuser's SECURITY DEFINER function does not lift the caller's limit
CREATE FUNCTION regress_dp_definer() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT deident.dp_count(person) FROM regress_dp $$;
GRANT EXECUTE ON FUNCTION regress_dp_definer() TO regress_dp_analyst;
SET SESSION AUTHORIZATION regress_dp_analyst;
-- fail (the analyst's budget is spent)
SELECT regress_dp_definer();
RESET SESSION AUTHORIZATION;
-- fail, whatever the data: a dp statement that a parallel worker plans and runs itself (in a
-- PARALLEL SAFE function the worker calls) is one that nothing charged; it is refused from
-- its plan when it starts, for a person with rows and for one without (a review probed
-- persons for free this way: the final function's refusal came only where a group had rows)
CREATE FUNCTION regress_dp_probe(p text) RETURNS bigint LANGUAGE sql PARALLEL SAFE
  AS $$ SELECT deident.dp_count(person) FROM regress_dp WHERE person = p $$;
GRANT EXECUTE ON FUNCTION regress_dp_probe(text) TO regress_dp_analyst;
SET SESSION AUTHORIZATION regress_dp_analyst;
SET force_parallel_mode = on;
SELECT regress_dp_probe('outlier');
SELECT regress_dp_probe('nobody');
RESET force_parallel_mode;
RESET SESSION AUTHORIZATION;
-- fail: EXPLAIN ANALYZE of a statement with dp aggregates, for a role the budget charges,
-- also through a view, of a prepared statement, of CREATE TABLE AS (its row counts are exact:
-- the scan's rows under the view's WHERE, the groups filtered out; refused when the executor
-- starts an instrumented run); EXPLAIN without ANALYZE shows the plan
CREATE VIEW regress_dp_report AS
  SELECT half, deident.dp_count(person) AS persons FROM regress_dp GROUP BY half;
GRANT SELECT ON regress_dp_report TO regress_dp_analyst;
SET SESSION AUTHORIZATION regress_dp_analyst;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM regress_dp_report WHERE half = 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT deident.dp_count(person) FROM regress_dp;
PREPARE regress_dp_q AS SELECT * FROM regress_dp_report WHERE half = 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE regress_dp_q;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
  CREATE TEMP TABLE regress_dp_copy AS SELECT * FROM regress_dp_report;
DEALLOCATE regress_dp_q;
EXPLAIN (COSTS OFF) SELECT * FROM regress_dp_report WHERE half = 1;
-- (an error under EXPLAIN is an error like any other, and the session goes on)
EXPLAIN SELECT 1 / 0;
SELECT 1 AS still_here;
RESET SESSION AUTHORIZATION;
-- OK: a superuser's (no budget charges it)
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT deident.dp_count(person) FROM regress_dp;
DROP VIEW regress_dp_report;
DROP FUNCTION regress_dp_probe(text);
-- a lowered limit leaves nothing remaining, never a negative figure; spent stays
SELECT deident.set_privacy_budget('regress_dp_analyst', 0.1);
SELECT role, "limit", spent, remaining FROM deident.privacy_budget WHERE role = 'regress_dp_analyst'::regrole;
-- OK: superusers are not limited
SELECT deident.dp_count(person) IS NOT NULL AS answered FROM regress_dp;
-- the helpers are not for PUBLIC
SELECT p.oid::regprocedure AS helper, has_function_privilege('regress_dp_analyst', p.oid, 'EXECUTE') AS analyst_may_call
  FROM pg_proc p WHERE p.pronamespace = 'deident'::regnamespace AND p.proname IN ('_dp_trans', '_dp_count_final', 'set_privacy_budget')
 ORDER BY 1;

-- fail (0A000): a dp aggregate's final function answers only for a call the planning checks
-- marked. An aggregate of the analyst's own over the combination's support functions (which
-- PUBLIC may execute, as Citus needs) reaches dp_sum's final function over states it made
-- itself with _k_partial (invented persons, any values); a review had it answered, uncharged,
-- with the terms a dp statement left behind when an exception aborted it inside a PL/pgSQL
-- FOR loop (its portal dropped without the executor's end): the terms of an aborted
-- subtransaction's statements now go with it, and the mark is required. 20 aborted dp
-- statements (charged: 20 at epsilon 1), then 50 tries, none answered
SELECT deident.set_privacy_budget('regress_dp_analyst', 1000);
CREATE SCHEMA regress_dp_own AUTHORIZATION regress_dp_analyst;
SET ROLE regress_dp_analyst;
CREATE AGGREGATE regress_dp_own.mycomb(oid, cstring, anyelement) (
  SFUNC = deident._k_combine_partials_trans, STYPE = deident.k_state,
  FINALFUNC = deident._k_combine_partials_final, FINALFUNC_EXTRA);
CREATE TABLE regress_dp_own.crafted AS
  SELECT deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure, v, p, 0, 100)::text AS s
    FROM (SELECT 7 AS v, 'victim' AS p UNION ALL SELECT 0, 'fake' || g FROM generate_series(1, 200) g) x;
CREATE FUNCTION regress_dp_own.stale(n int, m int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE x record; y record; answered int := 0; refusals text[] := '{}';
BEGIN
  SET LOCAL deident.dp_epsilon = 1;
  FOR i IN 1..n LOOP
    BEGIN
      FOR x IN SELECT deident.dp_count(person) FROM regress_dp LOOP RAISE EXCEPTION 'abort'; END LOOP;
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
  END LOOP;
  FOR i IN 1..m LOOP
    BEGIN
      FOR y IN SELECT regress_dp_own.mycomb('deident.dp_sum(integer,text,integer,integer)'::regprocedure, s::cstring, NULL::bigint) AS a
                 FROM regress_dp_own.crafted LOOP
        answered := answered + 1;
      END LOOP;
    EXCEPTION WHEN others THEN
      IF NOT SQLSTATE = ANY (refusals) THEN refusals := refusals || SQLSTATE::text; END IF;
    END;
  END LOOP;
  RETURN format('%s of %s answered; refused with %s', answered, m, refusals);
END $f$;
SELECT spent AS spent_before FROM deident.privacy_budget WHERE role = 'regress_dp_analyst'::regrole \gset
SELECT regress_dp_own.stale(20, 50);
SELECT spent - :spent_before AS charged FROM deident.privacy_budget WHERE role = 'regress_dp_analyst'::regrole;
SELECT regress_error($$SELECT regress_dp_own.mycomb('deident.dp_sum(integer,text,integer,integer)'::regprocedure, s::cstring, NULL::bigint) FROM regress_dp_own.crafted$$);
-- fail (22023, when planned, also over no rows): the bounds of dp_sum's partial states are
-- checked as dp_sum's are, not on a group's first row, where the error would tell that a row
-- exists
SELECT regress_error($$SELECT deident._k_partial('deident.dp_sum(integer,text,integer,integer)'::regprocedure, v, person, 10, 0) FROM regress_dp WHERE false$$);
SELECT regress_error($$SELECT deident._k_partial('deident.dp_avg(integer,text,integer,integer)'::regprocedure, v, person, 0, v) FROM regress_dp WHERE false$$);
-- fail (0A000): a dp statement never needs partial states of its own (its plan combines
-- them), so it may not make any: an error of theirs could depend on the rows
SELECT regress_error($$SELECT deident.dp_count(person), deident._k_partial('deident.k_count_distinct(text)'::regprocedure, person) FROM regress_dp WHERE false$$);
RESET ROLE;
DROP SCHEMA regress_dp_own CASCADE;

DROP FUNCTION regress_dp_definer();
REVOKE ALL ON regress_dp FROM regress_dp_analyst, regress_dp_other;
REVOKE USAGE ON SCHEMA deident FROM regress_dp_analyst, regress_dp_other;
DROP ROLE regress_dp_analyst, regress_dp_other;
DROP TABLE regress_dp, regress_dp_r;
