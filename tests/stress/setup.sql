-- The stress test's database (scripts/stress.sh, docs/stress.md): data, labels, the answers
-- every query must give, the query catalogue that pgbench draws from, and the functions that
-- run a query and record its outcome. Run by psql as a superuser in a fresh database of a
-- server that preloads pg_deident with a key ring holding the keys a, b and c.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION pg_deident;
CREATE SCHEMA stress;
SELECT setseed(0.2026) \g /dev/null

-- 30,000 rows, 6,000 persons (5 rows each, spread over the groups), 12 orgs x 5 titles with
-- skewed weights, so that some groups hold fewer than min_group_size persons. About 1% of the
-- persons and 1% of the values are NULL (they must contribute nothing).
CREATE TABLE stress.people AS
SELECT g AS id,
       CASE WHEN g % 97 = 0 THEN NULL ELSE format('person%s@example.com', g % 6000) END AS email,
       (ARRAY['Sales', 'Sales', 'Sales', 'Engineering', 'Engineering', 'Engineering', 'Engineering',
              'Finance', 'HR', 'Marketing', 'Operations', 'Legal'])[1 + (random() ^ 2 * 12)::int % 12] AS org,
       (ARRAY['IC', 'IC', 'IC', 'IC', 'Manager', 'Manager', 'Director', 'VP'])[1 + (random() ^ 3 * 8)::int % 8]
         || CASE WHEN random() < 0.002 THEN ' (acting)' ELSE '' END AS title,
       (ARRAY['North', 'South', 'East', 'West'])[1 + (random() * 4)::int % 4] AS region,
       CASE WHEN g % 101 = 0 THEN NULL ELSE round((30000 + random() * 90000)::numeric, 2) END AS salary,
       (random() * 60)::int AS hours,
       (random() * 1000)::smallint AS small,
       (random() * 1e15)::bigint AS big,
       (random() * 100)::real AS r,
       random() * 1e6 AS d
  FROM generate_series(1, 30000) g;
ALTER TABLE stress.people ADD PRIMARY KEY (id);

-- The atomicity probe: many rows, one value. One statement, one key: the number of distinct
-- pseudonyms is 1 however many processes compute them.
CREATE TABLE stress.same_value AS
SELECT 'same.person@example.com'::text AS v FROM generate_series(1, 40000);

SECURITY LABEL FOR deident ON COLUMN stress.people.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN stress.people.org IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN stress.people.title IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN stress.people.region IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN stress.people.salary IS 'sensitive';
ANALYZE stress.people, stress.same_value;

-- Expected answers, computed before the load starts. The k-aggregates against plain SQL: a
-- row whose person is NULL contributes nothing; for k_sum / k_avg neither does a row whose
-- value is NULL, not even its person.
CREATE TABLE stress.expected_groups AS
SELECT org, title,
       CASE WHEN count(DISTINCT email) >= k THEN count(email) END AS k_count,
       CASE WHEN count(DISTINCT email) >= k THEN count(DISTINCT email) END AS k_count_distinct,
       CASE WHEN count(DISTINCT email) FILTER (WHERE salary IS NOT NULL) >= k
            THEN sum(salary) FILTER (WHERE email IS NOT NULL) END AS sum_numeric,
       CASE WHEN count(DISTINCT email) FILTER (WHERE salary IS NOT NULL) >= k
            THEN avg(salary) FILTER (WHERE email IS NOT NULL) END AS avg_numeric,
       CASE WHEN count(DISTINCT email) >= k THEN sum(hours) FILTER (WHERE email IS NOT NULL) END AS sum_int,
       CASE WHEN count(DISTINCT email) >= k THEN avg(hours) FILTER (WHERE email IS NOT NULL) END AS avg_int,
       CASE WHEN count(DISTINCT email) >= k THEN sum(small) FILTER (WHERE email IS NOT NULL) END AS sum_small,
       CASE WHEN count(DISTINCT email) >= k THEN avg(big) FILTER (WHERE email IS NOT NULL) END AS avg_big,
       CASE WHEN count(DISTINCT email) >= k THEN sum(r) FILTER (WHERE email IS NOT NULL) END AS sum_real,
       CASE WHEN count(DISTINCT email) >= k THEN avg(d) FILTER (WHERE email IS NOT NULL) END AS avg_double
  FROM stress.people, (SELECT current_setting('deident.min_group_size')::int AS k) s
 GROUP BY org, title, k;
CREATE TABLE stress.expected_regions AS
SELECT region, CASE WHEN count(DISTINCT email) >= current_setting('deident.min_group_size')::int
                    THEN count(DISTINCT email) END AS k_count_distinct
  FROM stress.people GROUP BY region;
CREATE TABLE stress.expected_k AS
SELECT * FROM deident.k_anonymity('stress.people');

-- Pseudonyms under explicit key ids. The rotation reorders the ring and moves the active
-- key, but never changes a key's bytes: these answers hold for the whole run.
CREATE TABLE stress.expected_pseudonyms AS
SELECT e.email, k.id AS key_id,
       deident.pseudonymize(e.email, 'stress', 22, k.id) AS p_text,
       deident.pseudonymize(convert_to(e.email, 'UTF8'), 'bytes', 43, k.id) AS p_bytea,
       deident.pseudonymize_uuid(e.email, 'stress', k.id) AS p_uuid,
       deident.pseudonymize_bigint(e.email, 'stress', k.id) AS p_bigint,
       deident.key_fingerprint(k.id) AS fingerprint
  FROM (SELECT DISTINCT email FROM stress.people WHERE email IS NOT NULL ORDER BY email LIMIT 1000) e,
       (VALUES ('a'), ('b'), ('c')) k(id);

-- The query catalogue. Each query takes $1, a random id, and returns one bigint. A query
-- marked must_be_zero counts wrong answers: anything but 0 is recorded as "wrong".
-- parallel: run with max_parallel_workers_per_gather = 2 (the database forces parallel plans
-- by zero setup and tuple costs), otherwise serially.
CREATE TABLE stress.queries (id int PRIMARY KEY, name text NOT NULL, must_be_zero bool NOT NULL,
                             parallel bool NOT NULL, sql text NOT NULL);
INSERT INTO stress.queries VALUES
(1, 'pseudonymize, every variant, active key', false, true, $q$
SELECT count(DISTINCT deident.pseudonymize(email)) + count(DISTINCT deident.pseudonymize(email, 'hr', 15))
     + count(DISTINCT deident.pseudonymize(convert_to(email, 'UTF8'), 'bytes', 8))
     + count(DISTINCT deident.pseudonymize_uuid(email, 'u')) + count(DISTINCT deident.pseudonymize_bigint(email))
  FROM stress.people WHERE id BETWEEN $1 AND $1 + 3000$q$),
(2, 'pseudonymize, explicit key ids: known answers', true, true, $q$
SELECT count(*) FILTER (WHERE deident.pseudonymize(email, 'stress', 22, key_id) IS DISTINCT FROM p_text
                           OR deident.pseudonymize(convert_to(email, 'UTF8'), 'bytes', 43, key_id) IS DISTINCT FROM p_bytea
                           OR deident.pseudonymize_uuid(email, 'stress', key_id) IS DISTINCT FROM p_uuid
                           OR deident.pseudonymize_bigint(email, 'stress', key_id) IS DISTINCT FROM p_bigint
                           OR deident.key_fingerprint(key_id) IS DISTINCT FROM fingerprint)
  FROM stress.expected_pseudonyms WHERE $1 > 0$q$),
(3, 'pseudonymize, explicit key ids, serial: known answers', true, false, $q$
SELECT count(*) FILTER (WHERE deident.pseudonymize(email, 'stress', 22, key_id) IS DISTINCT FROM p_text)
  FROM stress.expected_pseudonyms WHERE email > format('person%s', $1 % 6000)$q$),
(4, 'k-aggregates by org and title, every type: answers', true, true, $q$
SELECT count(*) FROM (
  SELECT org, title, deident.k_count(email) AS k_count, deident.k_count_distinct(email) AS k_count_distinct,
         deident.k_sum(salary, email) AS sum_numeric, deident.k_avg(salary, email) AS avg_numeric,
         deident.k_sum(hours, email) AS sum_int, deident.k_avg(hours, email) AS avg_int,
         deident.k_sum(small, email) AS sum_small, deident.k_avg(big, email) AS avg_big,
         deident.k_sum(r, email) AS sum_real, deident.k_avg(d, email) AS avg_double
    FROM stress.people WHERE $1 > 0 GROUP BY org, title) k
  FULL JOIN stress.expected_groups e USING (org, title)
 WHERE k.k_count IS DISTINCT FROM e.k_count OR k.k_count_distinct IS DISTINCT FROM e.k_count_distinct
    OR k.sum_numeric IS DISTINCT FROM e.sum_numeric OR k.avg_numeric IS DISTINCT FROM e.avg_numeric
    OR k.sum_int IS DISTINCT FROM e.sum_int OR k.avg_int IS DISTINCT FROM e.avg_int
    OR k.sum_small IS DISTINCT FROM e.sum_small OR k.avg_big IS DISTINCT FROM e.avg_big
    OR (k.sum_real IS NULL) <> (e.sum_real IS NULL) OR abs(k.sum_real - e.sum_real) > 1e-4 * abs(e.sum_real)
    OR (k.avg_double IS NULL) <> (e.avg_double IS NULL) OR abs(k.avg_double - e.avg_double) > 1e-9 * abs(e.avg_double)$q$),
(5, 'k_count_distinct by region, persons as pseudonyms (active key)', false, true, $q$
SELECT sum(n) FROM (SELECT region, deident.k_count_distinct(deident.pseudonymize(email)) AS n
                      FROM stress.people WHERE id > $1 % 1000 GROUP BY region) s$q$),
(6, 'k_count_distinct by region: answers', true, true, $q$
SELECT count(*) FROM (SELECT region, deident.k_count_distinct(email) AS n FROM stress.people
                       WHERE $1 > 0 GROUP BY region) k
  FULL JOIN stress.expected_regions e USING (region) WHERE k.n IS DISTINCT FROM e.k_count_distinct$q$),
(7, 'k-aggregates over uuid and bigint persons (pseudonyms, explicit key)', false, true, $q$
SELECT count(a) + count(b) + count(c) FROM (
  SELECT deident.k_avg(hours, deident.pseudonymize_uuid(email, '', 'b')) AS a,
         deident.k_sum(big, deident.pseudonymize_bigint(email, '', 'c')) AS b,
         deident.k_count(id) AS c
    FROM stress.people WHERE id > $1 % 5000 GROUP BY org) s$q$),
(8, 'k_anonymity from the labels: answer', true, false, $q$
SELECT count(*) FROM deident.k_anonymity('stress.people') k, stress.expected_k e
 WHERE $1 > 0 AND (k.k, k.classes, k.classes_below_min, k.persons_below_min)
       IS DISTINCT FROM (e.k, e.classes, e.classes_below_min, e.persons_below_min)$q$),
(9, 'k_anonymity with explicit columns', false, false, $q$
SELECT k FROM deident.k_anonymity('stress.people', ARRAY['org', 'region'], 'email') WHERE $1 > 0$q$);

-- One outcome per call; a plain table, so that a crash restart does not empty it.
CREATE TABLE stress.outcomes (at timestamptz NOT NULL DEFAULT clock_timestamp(), name text NOT NULL,
                              outcome text NOT NULL, detail text);

-- An error's kind: its SQLSTATE and its message with quoted names and numbers blanked.
CREATE FUNCTION stress.error_kind(state text, message text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'error ' || state || ': ' || regexp_replace(regexp_replace(message, '"[^"]*"', '"…"', 'g'), '[0-9]+', 'N', 'g')
$$;

-- An error's outcome: the refusal of a statement during which the key ring changed (a correct
-- answer to a rotation, counted apart), or any other error by its kind.
CREATE FUNCTION stress.outcome_of(state text, message text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN message ~* current_setting('stress.key_change_pattern')
              THEN 'refused: key ring changed during the statement'
              ELSE stress.error_kind(state, message) END
$$;

-- Runs catalogue query q with $1 = lo, records ok / wrong / the error's kind. An error is
-- caught (pgbench 15 would abort the client), so one failure does not end a client's run.
CREATE FUNCTION stress.run(q int, lo int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  query stress.queries;
  result bigint;
BEGIN
  SELECT * INTO STRICT query FROM stress.queries WHERE id = q;
  PERFORM set_config('max_parallel_workers_per_gather', CASE WHEN query.parallel THEN '2' ELSE '0' END, true);
  BEGIN
    EXECUTE query.sql INTO result USING lo;
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO stress.outcomes (name, outcome, detail) VALUES (query.name, stress.outcome_of(SQLSTATE, SQLERRM), SQLERRM);
    RETURN;
  END;
  INSERT INTO stress.outcomes (name, outcome, detail)
  VALUES (query.name, CASE WHEN query.must_be_zero AND result IS DISTINCT FROM 0 THEN 'wrong' ELSE 'ok' END,
          result::text);
END $$;

-- The atomicity probe, under a forced parallel plan (two workers and the leader): 1 is right;
-- anything else means processes of one statement used different keys ("mixed"). An error
-- saying that the key ring changed during the statement is a correct refusal, counted apart.
-- The pseudonyms are grouped, not counted with count(DISTINCT ...): an aggregate's argument
-- is computed by the process that aggregates, which for count(DISTINCT) is the leader alone,
-- whereas GROUP BY puts the call into the Parallel Seq Scan of every worker (see
-- stress.probe_plan(), EXPLAIN VERBOSE).
CREATE VIEW stress.probe_query (sql) AS
VALUES ('SELECT count(*) FROM (SELECT deident.pseudonymize(v) FROM stress.same_value GROUP BY 1) pseudonyms');
CREATE FUNCTION stress.probe() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  PERFORM set_config('max_parallel_workers_per_gather', '2', true);
  BEGIN
    EXECUTE (SELECT sql FROM stress.probe_query) INTO n;
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO stress.outcomes (name, outcome, detail)
    VALUES ('atomicity probe', stress.outcome_of(SQLSTATE, SQLERRM), SQLERRM);
    RETURN;
  END;
  INSERT INTO stress.outcomes (name, outcome, detail)
  VALUES ('atomicity probe', CASE WHEN n = 1 THEN 'ok' ELSE 'mixed' END, n::text);
END $$;

-- The plan the probe gets, as run by the same EXECUTE path (for the report).
CREATE FUNCTION stress.probe_plan() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('max_parallel_workers_per_gather', '2', true);
  RETURN QUERY EXECUTE 'EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
                       || (SELECT sql FROM stress.probe_query);
END $$;

-- sqlsmith's role: an analyst, not a superuser (a superuser's random queries could signal
-- other sessions or write files); it reads the tables and views (granted below).
CREATE ROLE stress_smith LOGIN;
GRANT USAGE ON SCHEMA stress TO stress_smith;

-- What sqlsmith sees (it runs with --exclude-catalog, so these relations are nearly all it
-- can draw on): views that compute pseudonyms and k-aggregates, under whatever it wraps around
-- them (joins, filters pushed down, sublinks, window functions, forced parallel plans).
CREATE VIEW stress.pseudonymized_people AS
SELECT id, deident.pseudonymize(email) AS person, deident.pseudonymize(email, 'hr', 15) AS person_hr,
       deident.pseudonymize(convert_to(email, 'UTF8'), 'bytes', 43, 'c') AS person_bytes,
       deident.pseudonymize_uuid(email, 'u', 'a') AS person_uuid,
       deident.pseudonymize_bigint(email, '', 'b') AS person_bigint,
       org, title, region, hours, salary
  FROM stress.people;
CREATE VIEW stress.report_org_title AS
SELECT org, title, deident.k_count_distinct(email) AS people, deident.k_count(email) AS rows,
       deident.k_sum(salary, email) AS salary_sum, deident.k_avg(salary, email) AS salary_avg,
       deident.k_avg(hours, email) AS hours_avg, deident.k_sum(small, email) AS small_sum,
       deident.k_avg(big, email) AS big_avg, deident.k_sum(r, email) AS r_sum, deident.k_avg(d, email) AS d_avg
  FROM stress.people GROUP BY org, title;
CREATE VIEW stress.report_rollup AS
SELECT org, title, deident.k_count_distinct(deident.pseudonymize(email)) AS people,
       deident.k_avg(hours, deident.pseudonymize_uuid(email)) AS hours_avg,
       deident.k_sum(salary, deident.pseudonymize_bigint(email)) AS salary_sum
  FROM stress.people GROUP BY ROLLUP (org, title);
CREATE VIEW stress.report_region AS
SELECT region, deident.k_count(id) AS rows, deident.k_sum(hours, id) AS hours_sum,
       deident.k_avg(d, email) AS d_avg
  FROM stress.people GROUP BY region;
CREATE VIEW stress.k_anonymity_by_labels AS SELECT * FROM deident.k_anonymity('stress.people');
GRANT SELECT ON ALL TABLES IN SCHEMA stress TO stress_smith;
