--
-- restricted: SPEC "Restricted roles", tried as an attacker with a SQL prompt would. A role
-- labelled restricted (or one that inherits its privileges) reads every identifier column as
-- its pseudonym in the column's own type, by every path, or gets an error; no raw value, and
-- no answer to a guess about one, reaches it: not in rows, not in notices, not in errors.
-- The raw values are alice/bob/carol@contoso.com, their uuids a0eebc99-.., b0eebc99-..,
-- c0eebc99-.. and their employee numbers 100001..100003; regress_raw() below looks for them.
--
CREATE SCHEMA regress_r;
CREATE TABLE regress_r.people (id int PRIMARY KEY, email text, name varchar(40), uid uuid,
                               emp bigint, badge smallint, org text, salary numeric);
INSERT INTO regress_r.people VALUES
  (1, 'alice@contoso.com', 'Alice Adams', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 100001, 11, 'Sales', 1000),
  (2, 'bob@contoso.com',   'Bob Brown',   'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 100002, 12, 'Sales', 2000),
  (3, 'carol@contoso.com', 'Carol Clark', 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', 100003, 13, 'R&D',   3000);
SECURITY LABEL FOR deident ON COLUMN regress_r.people.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.name IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.uid IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.emp IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.badge IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.org IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.people.salary IS 'sensitive';
-- a second labelled table: one row per visit, eight persons (alice has three visits)
CREATE TABLE regress_r.visits (email text, minutes int);
INSERT INTO regress_r.visits
SELECT CASE WHEN p <= 3 THEN (ARRAY['alice', 'bob', 'carol'])[p] ELSE 'p' || p END || '@contoso.com',
       10 * p + v
  FROM generate_series(1, 8) p, generate_series(1, CASE WHEN p = 1 THEN 3 ELSE 1 END) v;
SECURITY LABEL FOR deident ON COLUMN regress_r.visits.email IS 'identifier';
-- identifier columns of other types: a domain whose CHECK a pseudonym fails, an array
CREATE DOMAIN regress_r.email_d AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE regress_r.odd (id int, e regress_r.email_d, tags text[]);
INSERT INTO regress_r.odd VALUES (1, 'alice@contoso.com', ARRAY['alice@contoso.com']);
SECURITY LABEL FOR deident ON COLUMN regress_r.odd.e IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.odd.tags IS 'identifier';
-- an unlabelled table
CREATE TABLE regress_r.orgs (org text, floor int);
INSERT INTO regress_r.orgs VALUES ('Sales', 1), ('R&D', 2);

CREATE ROLE regress_masked LOGIN;             -- the analyst
CREATE ROLE regress_masked_member LOGIN;      -- a member of it, inheriting
CREATE ROLE regress_plain;                    -- a group the analyst is in, not restricted
GRANT regress_masked TO regress_masked_member;
GRANT regress_plain TO regress_masked;
GRANT USAGE ON SCHEMA regress_r TO regress_masked, regress_plain;
GRANT SELECT ON ALL TABLES IN SCHEMA regress_r TO regress_masked, regress_plain;
CREATE SCHEMA regress_mine AUTHORIZATION regress_masked;
GRANT USAGE ON SCHEMA regress_mine TO regress_masked_member;

-- regress_raw(sql): runs the query sql as the current role and says what reached it: its
-- rows or its error, and whether any raw value of the fixture is in them.
CREATE FUNCTION regress_raw(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  out text; msg text; det text; hnt text; ctx text;
  raw text[] := ARRAY['alice', 'bob', 'carol', 'a0eebc99', 'b0eebc99', 'c0eebc99',
                      '100001', '100002', '100003', 'Adams', 'Brown', 'Clark'];
BEGIN
  BEGIN
    EXECUTE format('SELECT count(*) || '' rows: '' || coalesce(string_agg(q::text, '' '' ORDER BY q::text), '''') FROM (%s) q', sql)
      INTO out;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT,
                            ctx = PG_EXCEPTION_CONTEXT;
    out := 'error ' || SQLSTATE || ': ' || msg || ' ' || coalesce(det, '') || ' ' || coalesce(hnt, '')
        || ' ' || coalesce(ctx, '');
    out := 'error ' || SQLSTATE || ': ' || msg
        || CASE WHEN EXISTS (SELECT FROM unnest(raw) r WHERE position(lower(r) IN lower(out)) > 0)
                THEN ' -- RAW VALUE IN ERROR' ELSE '' END;
    RETURN out;
  END;
  IF EXISTS (SELECT FROM unnest(raw) r WHERE position(lower(r) IN lower(out)) > 0) THEN
    RETURN 'RAW VALUE: ' || out;
  END IF;
  RETURN out;
END $$;

-- 1. the role label: on a role that is not a superuser
-- OK
SECURITY LABEL FOR deident ON ROLE regress_masked IS 'restricted';
SELECT objtype, objname, label FROM pg_seclabels WHERE provider = 'deident' AND objtype = 'role';
-- as a superuser: raw values, and the pseudonyms a restricted role will see
SELECT id, email, deident.pseudonymize(email) AS email_p, deident.pseudonymize(name) AS name_p,
       deident.pseudonymize_uuid(uid::text) AS uid_p, deident.pseudonymize_bigint(emp::text) AS emp_p
  FROM regress_r.people ORDER BY id;

-- 2. select lists: every identifier column in its own type (smallint has no pseudonym: NULL)
SET ROLE regress_masked;
-- OK
SELECT * FROM regress_r.people ORDER BY id;
SELECT id, pg_typeof(email) AS t_email, pg_typeof(name) AS t_name, pg_typeof(uid) AS t_uid,
       pg_typeof(emp) AS t_emp, pg_typeof(badge) AS t_badge, length(email), length(name),
       pg_column_size(email) AS size, md5(email) = md5('alice@contoso.com') AS md5_guess
  FROM regress_r.people ORDER BY id;
TABLE regress_r.people ORDER BY id;
SELECT p.email, upper(p.email), p.email || '!' AS appended, substr(p.email, 1, 5),
       regexp_replace(p.email, '@.*', '') AS local_part, split_part(p.email, '@', 2) AS domain
  FROM regress_r.people p ORDER BY id;
SELECT regress_raw('SELECT * FROM regress_r.people');
-- an array has no pseudonym: NULL. A domain over text keeps its CHECK, and a pseudonym that
-- fails it fails the read, with the domain's error (no raw value: docs/restricted-roles.md)
SELECT id, tags FROM regress_r.odd;
SELECT regress_raw('SELECT e FROM regress_r.odd');

-- 3. WHERE and predicate oracles: a guess confirms nothing
-- OK (no rows: the pseudonym is not the guess)
SELECT id FROM regress_r.people WHERE email = 'alice@contoso.com';
SELECT id FROM regress_r.people WHERE email LIKE 'alice%';
SELECT id FROM regress_r.people WHERE email IN (VALUES ('alice@contoso.com'), ('bob@contoso.com'));
SELECT id FROM regress_r.people WHERE uid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
SELECT id FROM regress_r.people WHERE emp = 100001 OR emp BETWEEN 100000 AND 100010;
SELECT EXISTS (SELECT FROM regress_r.people WHERE email = 'alice@contoso.com') AS alice_exists;
SELECT id FROM regress_r.people WHERE email ~ '^alice' OR email ILIKE '%contoso%' OR position('@' IN email) > 0;
SELECT id FROM regress_r.people WHERE md5(email) = md5('alice@contoso.com');
-- OK (no division by zero: the CASE never sees the raw value; the divisor is not a constant,
-- which the planner would fold and fail on whatever the data)
SELECT id, CASE WHEN email = 'alice@contoso.com' THEN 1 / (id - id) END AS oracle FROM regress_r.people ORDER BY id;
SELECT id, CASE WHEN emp = 100001 THEN 1 / (id - id) END AS oracle FROM regress_r.people ORDER BY id;
-- ordering tricks: comparisons order pseudonyms, not the raw values
SELECT id, email > 'a' AS gt_a, email < 'c' AS lt_c, email > 'alice@contoso.coz' AS gt_guess
  FROM regress_r.people ORDER BY id;
SELECT count(*) FILTER (WHERE email BETWEEN 'alice' AND 'alicf') AS near_alice FROM regress_r.people;

-- 4. joins, grouping, ordering, subqueries, CTEs, set operations, LATERAL, windows
-- OK: the same value gives the same pseudonym in both tables, so the join works
SELECT p.id, p.email, count(*) AS visits, sum(v.minutes) AS minutes
  FROM regress_r.people p JOIN regress_r.visits v ON v.email = p.email
 GROUP BY p.id, p.email ORDER BY p.id;
SELECT p.id, o.floor FROM regress_r.people p JOIN regress_r.orgs o USING (org) ORDER BY p.id;
SELECT email, count(*) FROM regress_r.visits GROUP BY email ORDER BY count(*) DESC, email LIMIT 3;
SELECT email FROM regress_r.people ORDER BY email;
SELECT DISTINCT email FROM regress_r.visits ORDER BY 1 LIMIT 3;
SELECT DISTINCT ON (org) org, email FROM regress_r.people ORDER BY org, email;
SELECT (SELECT email FROM regress_r.people WHERE id = 1) AS scalar_sub,
       (SELECT max(email) FROM regress_r.visits) AS max_visit,
       (SELECT array_agg(email ORDER BY id) FROM regress_r.people) AS arr;
SELECT id FROM regress_r.people WHERE email IN (SELECT email FROM regress_r.visits WHERE minutes > 70);
SELECT id FROM regress_r.people p WHERE EXISTS (SELECT FROM regress_r.visits v WHERE v.email = p.email AND v.minutes = 13);
WITH c AS (SELECT id, email FROM regress_r.people) SELECT * FROM c ORDER BY id;
WITH c AS MATERIALIZED (SELECT id, email FROM regress_r.people) SELECT * FROM c WHERE email <> 'alice@contoso.com' ORDER BY id;
WITH RECURSIVE r(n, e) AS (SELECT 1, (SELECT email FROM regress_r.people WHERE id = 1)
                           UNION ALL SELECT n + 1, e || '.' FROM r WHERE n < 2)
SELECT * FROM r;
SELECT email FROM regress_r.people UNION SELECT email FROM regress_r.visits ORDER BY 1 LIMIT 4;
SELECT email FROM regress_r.people INTERSECT SELECT email FROM regress_r.visits ORDER BY 1;
SELECT email FROM regress_r.people EXCEPT SELECT 'alice@contoso.com' ORDER BY 1;
SELECT o.org, l.email FROM regress_r.orgs o,
       LATERAL (SELECT email FROM regress_r.people p WHERE p.org = o.org ORDER BY id LIMIT 1) l ORDER BY 1;
SELECT id, email, first_value(email) OVER w, lag(email) OVER w, rank() OVER (ORDER BY email)
  FROM regress_r.people WINDOW w AS (ORDER BY id) ORDER BY id;
SELECT org, email, count(*) FROM regress_r.people GROUP BY GROUPING SETS ((org), (email), ()) ORDER BY 1, 2;
SELECT string_agg(email, ',' ORDER BY id) AS s, array_agg(uid ORDER BY id) AS a, max(emp) AS m
  FROM regress_r.people;
SELECT g, p.email FROM generate_series(1, 3) g JOIN regress_r.people p ON p.id = g ORDER BY g;
SELECT id, (regexp_matches(email, '^(.)'))[1] AS first_char, email::bytea AS bytes
  FROM regress_r.people WHERE id = 1;
SELECT regress_raw($$SELECT email FROM regress_r.people UNION ALL SELECT email FROM regress_r.visits$$);

-- 5. whole rows, JSON, XML, format
-- OK
SELECT p FROM regress_r.people p WHERE id = 1;
SELECT p::text AS row_text, row_to_json(p) AS json FROM regress_r.people p WHERE id = 1;
SELECT to_jsonb(p) AS jsonb, format('%s', p) AS formatted, format('%s', p.*) AS star
  FROM regress_r.people p WHERE id = 2;
SELECT json_agg(p ORDER BY id) AS agg FROM regress_r.people p WHERE id <= 2;
SELECT (p).email, (p).uid FROM (SELECT p FROM regress_r.people p WHERE id = 3) s;
SELECT xmlforest(email, uid, emp) FROM regress_r.people WHERE id = 1;
SELECT query_to_xml('SELECT email, uid FROM regress_r.people WHERE id = 1', false, false, '');
SELECT table_to_xml('regress_r.people', false, false, '') IS NOT NULL AS table_xml,
       position('alice' IN table_to_xml('regress_r.people', false, false, '')::text) AS alice_at;
SELECT regress_raw($$SELECT row_to_json(p)::text || to_jsonb(p)::text || format('%s', p) FROM regress_r.people p$$);
SELECT regress_raw($$SELECT query_to_xml('SELECT * FROM regress_r.people', true, false, '')::text$$);

-- 6. system columns beside masked columns
-- OK: system columns of a masked relation read as they are (junk outputs of its subquery)
SELECT ctid, tableoid::regclass, email FROM regress_r.people WHERE id = 1;
SELECT id FROM regress_r.people WHERE ctid = '(0,1)';
RESET ROLE;

-- 7. views: a DBA's view (owner postgres), a security_invoker view, the analyst's own view
CREATE VIEW regress_r.people_v AS SELECT id, email, uid, org FROM regress_r.people;
CREATE VIEW regress_r.people_inv WITH (security_invoker) AS SELECT id, email FROM regress_r.people;
CREATE VIEW regress_r.people_labelled AS SELECT id, email AS mail FROM regress_r.people;
SECURITY LABEL FOR deident ON COLUMN regress_r.people_labelled.mail IS 'identifier';
-- a view that computes raw values itself: its labelled column is what protects them
CREATE VIEW regress_r.computed AS SELECT 'alice@contoso.com'::text AS mail, 1 AS n;
SECURITY LABEL FOR deident ON COLUMN regress_r.computed.mail IS 'identifier';
CREATE VIEW regress_r.unioned AS
  SELECT 'alice@contoso.com'::text AS mail UNION ALL SELECT 'bob@contoso.com';
SECURITY LABEL FOR deident ON COLUMN regress_r.unioned.mail IS 'identifier';
GRANT SELECT ON regress_r.people_v, regress_r.people_inv, regress_r.people_labelled,
                regress_r.computed, regress_r.unioned TO regress_masked;
SET ROLE regress_masked;
-- OK
SELECT * FROM regress_r.people_v ORDER BY id;
SELECT * FROM regress_r.people_inv WHERE email = 'alice@contoso.com';
SELECT id, email FROM regress_r.people_inv ORDER BY id;
SELECT id FROM regress_r.people_labelled ORDER BY id;
-- OK: a view column labelled identifier reads as the pseudonym of what the view computes
SELECT mail FROM regress_r.people_labelled;
SELECT p FROM regress_r.people_labelled p;
SELECT mail, n FROM regress_r.computed;
SELECT count(*) FROM regress_r.computed WHERE mail = 'alice@contoso.com';
-- fail (the tripwire: the outputs of a UNION cannot be wrapped, so the labelled column of a view
-- over a set operation is refused rather than returned raw)
SELECT mail FROM regress_r.unioned;
SELECT count(*) FROM regress_r.unioned WHERE mail LIKE 'alice%';
-- OK: its other columns, none here: a count reads no column
SELECT count(*) FROM regress_r.unioned;
-- OK: the analyst's own view, and a view on a view
CREATE VIEW regress_mine.v AS SELECT id, email, name FROM regress_r.people;
CREATE VIEW regress_mine.vv AS SELECT * FROM regress_mine.v WHERE email <> 'alice@contoso.com';
SELECT * FROM regress_mine.v ORDER BY id;
SELECT * FROM regress_mine.vv ORDER BY id;
-- OK: materialized views, CREATE TABLE AS, SELECT INTO store pseudonyms
CREATE MATERIALIZED VIEW regress_mine.mv AS SELECT id, email, uid FROM regress_r.people;
SELECT * FROM regress_mine.mv ORDER BY id;
REFRESH MATERIALIZED VIEW regress_mine.mv;
SELECT * FROM regress_mine.mv ORDER BY id;
CREATE TABLE regress_mine.ctas AS SELECT id, email, emp FROM regress_r.people;
SELECT * FROM regress_mine.ctas ORDER BY id;
SELECT id, email INTO regress_mine.sel_into FROM regress_r.people;
SELECT * FROM regress_mine.sel_into ORDER BY id;
-- OK: reading into the analyst's own table: INSERT ... SELECT, a writable CTE, MERGE, UPDATE
CREATE TABLE regress_mine.copy (id int, email text);
INSERT INTO regress_mine.copy SELECT id, email FROM regress_r.people WHERE id = 1 RETURNING *;
WITH w AS (INSERT INTO regress_mine.copy SELECT id, email FROM regress_r.people WHERE id = 2 RETURNING *)
SELECT * FROM w;
MERGE INTO regress_mine.copy c USING regress_r.people p ON c.id = p.id
  WHEN NOT MATCHED THEN INSERT VALUES (p.id, p.email);
UPDATE regress_mine.copy c SET email = email || '/' || (SELECT p.name FROM regress_r.people p WHERE p.id = c.id)
 WHERE id = 1;
SELECT * FROM regress_mine.copy ORDER BY id;
RESET ROLE;
-- a superuser refreshing the analyst's materialized view: it runs as the owner, restricted
REFRESH MATERIALIZED VIEW regress_mine.mv;
SELECT id, email FROM regress_mine.mv ORDER BY id;

-- 7b. row security, security-barrier views and column privileges still hold around the rewrite
CREATE TABLE regress_r.staff (id int, email text, org text);
INSERT INTO regress_r.staff VALUES (1, 'alice@contoso.com', 'Sales'), (3, 'carol@contoso.com', 'R&D');
SECURITY LABEL FOR deident ON COLUMN regress_r.staff.email IS 'identifier';
ALTER TABLE regress_r.staff ENABLE ROW LEVEL SECURITY;
CREATE POLICY sales ON regress_r.staff USING (org = 'Sales');
CREATE VIEW regress_r.sales_v WITH (security_barrier) AS
  SELECT id, email FROM regress_r.people WHERE org = 'Sales';
CREATE TABLE regress_r.colpriv (id int, email text, org text);
INSERT INTO regress_r.colpriv VALUES (1, 'alice@contoso.com', 'Sales');
SECURITY LABEL FOR deident ON COLUMN regress_r.colpriv.email IS 'identifier';
GRANT SELECT ON regress_r.staff, regress_r.sales_v TO regress_masked;
GRANT SELECT (id, org) ON regress_r.colpriv TO regress_masked;
SET ROLE regress_masked;
CREATE FUNCTION regress_mine.peek(e text) RETURNS bool LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'peek: %', e; RETURN true; END $$;
-- OK: the policy still filters (R&D's row stays hidden, also from a cheap leaky function)
SELECT id, email FROM regress_r.staff WHERE regress_mine.peek(email);
SELECT id, email FROM regress_r.sales_v WHERE regress_mine.peek(email) ORDER BY id;
SELECT id, org FROM regress_r.colpriv;
-- fail (no privilege on the identifier column: not even its pseudonym)
SELECT email FROM regress_r.colpriv;
SELECT c FROM regress_r.colpriv c;
COPY regress_r.colpriv TO STDOUT;
RESET ROLE;
-- A DBA's conditions on identifier columns see raw values, so they hide the same rows from a
-- restricted role as from anyone: a policy with a subquery over a labelled table, a security
-- barrier view's WHERE, a JOIN ... ON, a HAVING. What passes is returned masked.
CREATE TABLE regress_r.acc (id int, email text, org text);
INSERT INTO regress_r.acc VALUES (1, 'alice@contoso.com', 'Sales'), (2, 'bob@secret.com', 'R&D'),
  (3, 'carol@contoso.com', 'R&D');
CREATE TABLE regress_r.blocked (email text);
INSERT INTO regress_r.blocked VALUES ('carol@contoso.com');
SECURITY LABEL FOR deident ON COLUMN regress_r.acc.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_r.blocked.email IS 'identifier';
ALTER TABLE regress_r.acc ENABLE ROW LEVEL SECURITY;
CREATE POLICY not_blocked ON regress_r.acc
  USING (email NOT IN (SELECT b.email FROM regress_r.blocked b));
CREATE VIEW regress_r.public_acc WITH (security_barrier) AS
  SELECT id, email, org FROM regress_r.acc WHERE email NOT LIKE '%@secret.com';
CREATE VIEW regress_r.joined AS
  SELECT a.id, a.email FROM regress_r.acc a JOIN regress_r.people p
    ON p.id = a.id AND a.email <> 'bob@secret.com';
CREATE VIEW regress_r.by_org AS
  SELECT org, count(*) AS n FROM regress_r.acc GROUP BY org HAVING max(email) <> 'bob@secret.com';
GRANT SELECT ON regress_r.acc, regress_r.blocked, regress_r.public_acc, regress_r.joined,
  regress_r.by_org TO regress_masked, regress_plain;
-- as a role that is not restricted: the rows to hide
SET ROLE regress_plain;
SELECT id, email FROM regress_r.acc ORDER BY id;
SELECT id, email FROM regress_r.public_acc ORDER BY id;
RESET ROLE;
SET ROLE regress_masked;
-- OK: the same rows, masked
SELECT id, email FROM regress_r.acc ORDER BY id;
SELECT id, email, org FROM regress_r.public_acc ORDER BY id;
SELECT id, email FROM regress_r.joined ORDER BY id;
SELECT org, n FROM regress_r.by_org ORDER BY org;
-- OK: the analyst's own outer conditions still see only pseudonyms
SELECT count(*) FROM regress_r.public_acc WHERE email = 'alice@contoso.com';
RESET ROLE;
-- A DBA's condition on the whole row sees the raw row; one that reads the identifier through
-- a subquery's or a WITH query's outputs (pseudonyms for a restricted role) is refused: it
-- would test pseudonyms and let bob through (a review found both letting him through)
CREATE VIEW regress_r.row_acc AS
  SELECT id, email FROM regress_r.acc a WHERE a::text NOT LIKE '%@secret.com%';
CREATE VIEW regress_r.sub_acc AS
  SELECT id, email FROM (SELECT * FROM regress_r.acc) s WHERE s.email NOT LIKE '%@secret.com';
CREATE VIEW regress_r.cte_acc AS
  WITH c AS (SELECT * FROM regress_r.acc) SELECT id, email FROM c WHERE email NOT LIKE '%@secret.com';
CREATE VIEW regress_r.sub_org AS
  SELECT id, email FROM (SELECT * FROM regress_r.acc) s WHERE s.org = 'Sales';
GRANT SELECT ON regress_r.row_acc, regress_r.sub_acc, regress_r.cte_acc, regress_r.sub_org
  TO regress_masked, regress_plain;
SET ROLE regress_plain;
SELECT id FROM regress_r.row_acc ORDER BY id;
SELECT id FROM regress_r.sub_acc ORDER BY id;
SET ROLE regress_masked;
-- OK: the same row, masked
SELECT id, email FROM regress_r.row_acc ORDER BY id;
-- fail (0A000)
SELECT id FROM regress_r.sub_acc ORDER BY id;
SELECT id FROM regress_r.cte_acc ORDER BY id;
-- OK: a condition on a column that is not an identifier, through a subquery
SELECT id, email FROM regress_r.sub_org ORDER BY id;
RESET ROLE;
-- More shapes a second review found letting bob through: a condition through a LATERAL
-- subquery's, a function's or a VALUES list's outputs; conditions inside a FROM subquery, a
-- WITH query or a UNION branch of the view (rewritten as the role's own, they see
-- pseudonyms); a HAVING under ROLLUP (its raw value is no grouping column: the total row
-- kept bob's count). All refused (0A000); one on another column answers.
CREATE VIEW regress_r.lat_acc AS SELECT a.id FROM regress_r.acc a,
  LATERAL (SELECT a.email AS e) s WHERE s.e NOT LIKE '%@secret.com';
CREATE VIEW regress_r.fn_acc AS SELECT a.id FROM regress_r.acc a,
  LATERAL unnest(ARRAY[a.email]) e WHERE e NOT LIKE '%@secret.com';
CREATE VIEW regress_r.vals_acc AS SELECT a.id FROM regress_r.acc a,
  LATERAL (VALUES (a.email)) x(e) WHERE x.e NOT LIKE '%@secret.com';
CREATE VIEW regress_r.in_sub_acc AS
  SELECT * FROM (SELECT id, email FROM regress_r.acc WHERE email NOT LIKE '%@secret.com') s;
CREATE VIEW regress_r.in_cte_acc AS
  WITH c AS (SELECT id, email FROM regress_r.acc WHERE email NOT LIKE '%@secret.com') SELECT * FROM c;
CREATE VIEW regress_r.in_union_acc AS
  SELECT id FROM regress_r.acc WHERE email NOT LIKE '%@secret.com' UNION ALL SELECT id FROM regress_r.acc WHERE false;
CREATE VIEW regress_r.rollup_acc AS SELECT email, count(*) AS n FROM regress_r.acc
  GROUP BY ROLLUP (email) HAVING email IS NOT NULL AND email NOT LIKE '%@secret.com';
CREATE VIEW regress_r.in_sub_org AS
  SELECT * FROM (SELECT id, email FROM regress_r.acc WHERE org = 'Sales') s;
GRANT SELECT ON regress_r.lat_acc, regress_r.fn_acc, regress_r.vals_acc, regress_r.in_sub_acc,
  regress_r.in_cte_acc, regress_r.in_union_acc, regress_r.rollup_acc, regress_r.in_sub_org
  TO regress_masked, regress_plain;
SET ROLE regress_plain;
SELECT (SELECT array_agg(id ORDER BY id) FROM regress_r.lat_acc) AS lat,
       (SELECT array_agg(id ORDER BY id) FROM regress_r.in_sub_acc) AS in_sub,
       (SELECT count(*) FROM regress_r.rollup_acc) AS rollup_rows;
SET ROLE regress_masked;
\set VERBOSITY sqlstate
SELECT id FROM regress_r.lat_acc;
SELECT id FROM regress_r.fn_acc;
SELECT id FROM regress_r.vals_acc;
SELECT id FROM regress_r.in_sub_acc;
SELECT id FROM regress_r.in_cte_acc;
SELECT id FROM regress_r.in_union_acc;
SELECT n FROM regress_r.rollup_acc;
\set VERBOSITY default
SELECT id, email FROM regress_r.in_sub_org ORDER BY id;
RESET ROLE;
-- A view or a policy owned by a role the restricted login is a member of (regress_plain
-- here) is not surely the DBA's: the login can hand its own view to that role (ALTER VIEW
-- ... OWNER TO), or write a policy as it. A review read raw values so, a prefix at a time.
-- Its conditions on identifier columns, or with a subquery, are refused (42501); others
-- answer, rewritten as the role's own.
GRANT CREATE ON SCHEMA regress_mine TO regress_plain;
CREATE TABLE regress_r.probe2 (n int);
INSERT INTO regress_r.probe2 VALUES (1);
ALTER TABLE regress_r.probe2 OWNER TO regress_plain;
ALTER TABLE regress_r.probe2 ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY probe2 ON regress_r.probe2
  USING (EXISTS (SELECT FROM regress_r.acc WHERE email = 'alice@contoso.com'));
GRANT SELECT ON regress_r.probe2 TO regress_masked;
SET ROLE regress_masked;
CREATE VIEW regress_mine.handed AS SELECT id FROM regress_r.acc WHERE email LIKE 'bob@s%';
CREATE VIEW regress_mine.handed_org AS SELECT id FROM regress_r.acc WHERE org = 'Sales';
ALTER VIEW regress_mine.handed OWNER TO regress_plain;
ALTER VIEW regress_mine.handed_org OWNER TO regress_plain;
SELECT id FROM regress_mine.handed;
SELECT count(*) FROM regress_r.probe2;
SELECT id FROM regress_mine.handed_org;
RESET ROLE;
DROP VIEW regress_mine.handed, regress_mine.handed_org;
DROP TABLE regress_r.probe2;
REVOKE CREATE ON SCHEMA regress_mine FROM regress_plain;
-- A third review: what a DBA's condition reads or calls must be the DBA's too. The analyst's
-- own view (or policy, or function) inside it would see raw values: a guess oracle (42501).
-- A function that may read tables (STABLE SQL) runs its query as the analyst, over
-- pseudonyms, as does a set-returning one in FROM: the condition would let bob through
-- (refused); so would a LATERAL subquery's condition on the view's table, and an aggregate's
-- FILTER (0A000). FOR UPDATE on a DBA's view keeps its conditions.
SET ROLE regress_masked;
CREATE VIEW regress_mine.excl AS SELECT 0 AS id;
CREATE FUNCTION regress_mine.grab(e text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
RESET ROLE;
CREATE VIEW regress_r.excl_acc AS
  SELECT id FROM regress_r.acc WHERE id NOT IN (SELECT id FROM regress_mine.excl);
CREATE VIEW regress_r.grab_acc AS SELECT id FROM regress_r.acc WHERE regress_mine.grab(email);
CREATE FUNCTION regress_r.is_secret(i int) RETURNS boolean LANGUAGE sql STABLE
  AS $$SELECT email LIKE '%@secret.com' FROM regress_r.acc WHERE id = i$$;
CREATE VIEW regress_r.callfn_acc AS SELECT id FROM regress_r.acc WHERE NOT regress_r.is_secret(id);
CREATE FUNCTION regress_r.acc_rows() RETURNS SETOF regress_r.acc LANGUAGE sql STABLE
  AS 'SELECT * FROM regress_r.acc';
CREATE VIEW regress_r.fnrows_acc AS
  SELECT id FROM regress_r.acc_rows() p WHERE p.email NOT LIKE '%@secret.com';
CREATE VIEW regress_r.latq_acc AS SELECT t.id FROM regress_r.acc t,
  LATERAL (SELECT 1 WHERE t.email NOT LIKE '%@secret.com') x;
CREATE VIEW regress_r.filter_acc AS
  SELECT count(*) FILTER (WHERE email NOT LIKE '%@secret.com') AS n FROM regress_r.acc;
CREATE TABLE regress_r.orders (oid int, cust int);
INSERT INTO regress_r.orders VALUES (10, 1), (20, 2), (30, 3);
CREATE VIEW regress_r.v_orders AS SELECT * FROM regress_r.orders o
  WHERE o.cust NOT IN (SELECT id FROM regress_r.acc WHERE email LIKE '%@secret.com');
GRANT SELECT ON regress_r.excl_acc, regress_r.grab_acc, regress_r.callfn_acc,
  regress_r.fnrows_acc, regress_r.latq_acc, regress_r.filter_acc TO regress_masked, regress_plain;
GRANT SELECT, UPDATE ON regress_r.v_orders TO regress_masked, regress_plain;
SET ROLE regress_plain;
SELECT (SELECT count(*) FROM regress_r.callfn_acc) AS callfn, (SELECT count(*) FROM regress_r.fnrows_acc) AS fnrows,
       (SELECT count(*) FROM regress_r.latq_acc) AS latq, (SELECT n FROM regress_r.filter_acc) AS filter;
SET ROLE regress_masked;
CREATE OR REPLACE VIEW regress_mine.excl AS SELECT id FROM regress_r.acc WHERE email LIKE 'bob@s%';
\set VERBOSITY sqlstate
SELECT count(*) FROM regress_r.excl_acc;
SELECT count(*) FROM regress_r.grab_acc;
SELECT count(*) FROM regress_r.callfn_acc;
SELECT count(*) FROM regress_r.fnrows_acc;
SELECT count(*) FROM regress_r.latq_acc;
SELECT n FROM regress_r.filter_acc;
\set VERBOSITY default
SELECT oid FROM regress_r.v_orders ORDER BY oid;
SELECT oid FROM regress_r.v_orders ORDER BY oid FOR UPDATE;
RESET ROLE;
DROP VIEW regress_r.excl_acc, regress_r.grab_acc;
DROP VIEW regress_mine.excl;
DROP FUNCTION regress_mine.grab(text);
-- A fourth review: a window's or aggregate's value in a FROM subquery depends on an
-- arrangement by identifier values (0A000); current_setting() hands the condition a value the
-- role chose (a guess oracle); a function in SQL, even IMMUTABLE, may call the role's code or
-- read tables as the role; so may a domain's CHECK and an aggregate's support functions; a
-- table a member-owner holds is one the role can write (all 42501)
CREATE VIEW regress_r.rank_acc AS SELECT id FROM (SELECT id,
  rank() OVER (ORDER BY email LIKE '%@secret.com') r FROM regress_r.acc) s WHERE r = 1;
CREATE VIEW regress_r.setting_acc AS
  SELECT id FROM regress_r.acc WHERE email = current_setting('regress.me', true);
CREATE FUNCTION regress_r.norm(e text) RETURNS text LANGUAGE sql IMMUTABLE
  BEGIN ATOMIC SELECT lower(e); END;
CREATE VIEW regress_r.norm_acc AS SELECT id FROM regress_r.acc WHERE regress_r.norm(email) NOT LIKE '%@secret.com';
CREATE DOMAIN regress_r.mail AS text CHECK (VALUE <> '');
CREATE VIEW regress_r.domain_acc AS SELECT id FROM regress_r.acc WHERE email::regress_r.mail <> 'x';
CREATE FUNCTION regress_r.keep(s text, e text) RETURNS text LANGUAGE plpgsql IMMUTABLE
  AS 'BEGIN RETURN e; END';
CREATE AGGREGATE regress_r.last_mail(text) (SFUNC = regress_r.keep, STYPE = text);
CREATE VIEW regress_r.agg_acc AS SELECT org FROM regress_r.acc GROUP BY org
  HAVING regress_r.last_mail(email) IS NOT NULL;
CREATE TABLE regress_r.suppress (e text);
ALTER TABLE regress_r.suppress OWNER TO regress_plain;
CREATE VIEW regress_r.supp_acc AS
  SELECT id FROM regress_r.acc WHERE email NOT IN (SELECT e FROM regress_r.suppress);
GRANT SELECT ON regress_r.rank_acc, regress_r.setting_acc, regress_r.norm_acc, regress_r.domain_acc,
  regress_r.agg_acc, regress_r.supp_acc TO regress_masked, regress_plain;
SET ROLE regress_masked;
SET regress.me = 'bob@secret.com';
\set VERBOSITY sqlstate
SELECT count(*) FROM regress_r.rank_acc;
SELECT count(*) FROM regress_r.setting_acc;
SELECT count(*) FROM regress_r.norm_acc;
SELECT count(*) FROM regress_r.domain_acc;
SELECT count(*) FROM regress_r.agg_acc;
SELECT count(*) FROM regress_r.supp_acc;
\set VERBOSITY default
RESET regress.me;
RESET ROLE;
DROP VIEW regress_r.supp_acc;
DROP TABLE regress_r.suppress;
-- A fifth review: a DBA's condition that fails on a raw value quoted it in the error
-- (`invalid input syntax for type integer: "x9"`): a restricted role's data exceptions now
-- read the same for every value (hooks.rs), and since the sixth review such a cast in a DBA's
-- condition is refused before it runs (below); a table the role may write, read by a DBA's condition, is
-- a guess oracle (42501); so are pg_settings (application_name) and the one-argument text
-- search functions (default_text_search_config may name the role's own configuration).
CREATE TABLE regress_r.codes (id int, code text);
INSERT INTO regress_r.codes VALUES (1, '12'), (2, 'x9');
SECURITY LABEL FOR deident ON COLUMN regress_r.codes.code IS 'identifier';
CREATE VIEW regress_r.cast_codes AS SELECT id FROM regress_r.codes WHERE code::int > 0;
-- a data exception that no refusal prevents (division by zero on x9's length): its message
-- reads the same for every value (the hook), so the scrub itself is tested here
CREATE VIEW regress_r.div_codes AS SELECT id FROM regress_r.codes WHERE 1 / (length(code) - 2) > 0;
CREATE TABLE regress_r.writable (email text);
GRANT SELECT, INSERT ON regress_r.writable TO regress_masked;
CREATE VIEW regress_r.writable_acc AS
  SELECT id FROM regress_r.acc WHERE email NOT IN (SELECT email FROM regress_r.writable);
CREATE VIEW regress_r.settings_acc AS SELECT id FROM regress_r.acc
  WHERE email = (SELECT setting FROM pg_settings WHERE name = 'application_name');
CREATE VIEW regress_r.ts_acc AS SELECT id FROM regress_r.acc
  WHERE NOT (to_tsvector(email) @@ to_tsquery('bob'));
GRANT SELECT ON regress_r.codes, regress_r.cast_codes, regress_r.div_codes, regress_r.writable_acc,
  regress_r.settings_acc, regress_r.ts_acc TO regress_masked;
-- (this suite's server sets log_min_messages = log, under which PostgreSQL logs no ERROR
-- and the hook that hides the value is not called: the default, warning, is needed)
SET log_min_messages = warning;
SET ROLE regress_masked;
SELECT id FROM regress_r.cast_codes WHERE id = 2;
SELECT id FROM regress_r.div_codes WHERE id = 2;
\set VERBOSITY sqlstate
SELECT count(*) FROM regress_r.writable_acc;
SELECT count(*) FROM regress_r.settings_acc;
SELECT count(*) FROM regress_r.ts_acc;
\set VERBOSITY default
RESET ROLE;
-- the same errors, for a role that is not restricted, say what failed
SELECT id FROM regress_r.cast_codes WHERE id = 2;
SELECT id FROM regress_r.div_codes WHERE id = 2;
RESET log_min_messages;
-- A sixth review: the role's own PL/pgSQL caught that error and read its text (the scrub sees
-- only reported errors). So a DBA's condition may not cast through an input function that
-- can fail (casts to text types only), nor look names up (pg_has_role, regclass, ...), nor
-- parse a tsquery (42501); a column privilege to write is a write (42501).
CREATE TABLE regress_r.colwrite (email text);
GRANT INSERT (email) ON regress_r.colwrite TO regress_masked;
CREATE VIEW regress_r.colwrite_acc AS
  SELECT id FROM regress_r.acc WHERE email NOT IN (SELECT email FROM regress_r.colwrite);
CREATE VIEW regress_r.role_acc AS SELECT id FROM regress_r.acc
  WHERE NOT pg_has_role(email, 'pg_monitor', 'member');
GRANT SELECT ON regress_r.codes, regress_r.cast_codes, regress_r.colwrite_acc, regress_r.role_acc TO regress_masked;
SET ROLE regress_masked;
DO $$ BEGIN
  PERFORM id FROM regress_r.cast_codes WHERE id = 2;
EXCEPTION WHEN others THEN RAISE NOTICE 'caught: %', SQLERRM;
END $$;
\set VERBOSITY sqlstate
SELECT count(*) FROM regress_r.colwrite_acc;
SELECT count(*) FROM regress_r.role_acc;
\set VERBOSITY default
RESET ROLE;
DROP VIEW regress_r.colwrite_acc, regress_r.role_acc;
DROP TABLE regress_r.colwrite;
DROP VIEW regress_r.cast_codes, regress_r.div_codes, regress_r.writable_acc, regress_r.settings_acc, regress_r.ts_acc;
DROP TABLE regress_r.codes, regress_r.writable;
SET ROLE regress_masked;
-- OK: the analyst's own view's conditions, and own policies, see only pseudonyms (they could test guesses)
CREATE VIEW regress_mine.guess AS SELECT id FROM regress_r.acc WHERE email = 'alice@contoso.com';
SELECT count(*) FROM regress_mine.guess;
CREATE TABLE regress_mine.probe (n int);
INSERT INTO regress_mine.probe VALUES (1);
ALTER TABLE regress_mine.probe ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY probe ON regress_mine.probe
  USING (EXISTS (SELECT FROM regress_r.acc WHERE email = 'alice@contoso.com'));
SELECT count(*) FROM regress_mine.probe;
-- fail (role management could lift the restriction)
CREATE ROLE regress_made_by_analyst;
GRANT regress_masked TO regress_plain;
ALTER ROLE regress_masked NOINHERIT;
RESET ROLE;

-- 8. functions and DO blocks running as the analyst
CREATE FUNCTION regress_r.email_of(i int) RETURNS text LANGUAGE sql STABLE
  AS 'SELECT email FROM regress_r.people WHERE id = i';
CREATE FUNCTION regress_r.email_atomic(i int) RETURNS text LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT email FROM regress_r.people WHERE id = i; END;
CREATE FUNCTION regress_r.emails() RETURNS SETOF regress_r.people LANGUAGE sql STABLE
  AS 'SELECT * FROM regress_r.people';
CREATE FUNCTION regress_r.emails_atomic() RETURNS TABLE (id int, email text) LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT id, email FROM regress_r.people; END;
CREATE FUNCTION regress_r.first_email() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  SELECT email INTO r FROM regress_r.people ORDER BY id LIMIT 1;
  RETURN r;
END $$;
-- as postgres first: raw, and the plans of the PL/pgSQL function are now cached
SELECT regress_r.email_of(1), regress_r.email_atomic(1), regress_r.first_email();
SET ROLE regress_masked;
-- OK: pseudonyms from every kind of function, with the cached plan analysed again
SELECT regress_r.email_of(1), regress_r.email_atomic(1), regress_r.first_email();
SELECT * FROM regress_r.emails() ORDER BY id;
SELECT * FROM regress_r.emails_atomic() ORDER BY id;
SELECT id FROM regress_r.emails() WHERE email = 'alice@contoso.com';
CREATE FUNCTION regress_mine.mine_of(i int) RETURNS text LANGUAGE sql
  AS 'SELECT email FROM regress_r.people WHERE id = i';
CREATE FUNCTION regress_mine.is_alice(e text) RETURNS bool LANGUAGE sql IMMUTABLE
  AS $$SELECT e = 'alice@contoso.com'$$;
SELECT regress_mine.mine_of(2), count(*) FILTER (WHERE regress_mine.is_alice(email)) AS alices
  FROM regress_r.people;
-- OK: a leaky function sees pseudonyms only, in WHERE and in the select list
CREATE FUNCTION regress_mine.leak(e text) RETURNS bool LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'leak: %', e; RETURN true; END $$;
SELECT id FROM regress_r.people WHERE regress_mine.leak(email) AND id = 1;
SELECT regress_mine.leak(name) FROM regress_r.people WHERE id = 2;
-- OK: DO blocks: static SQL, EXECUTE, a FOR loop, RAISE of a value and in an error message
DO $$
DECLARE r record; e text;
BEGIN
  SELECT email INTO e FROM regress_r.people WHERE id = 1;
  RAISE NOTICE 'static: %', e;
  EXECUTE 'SELECT email FROM regress_r.people WHERE id = $1' INTO e USING 2;
  RAISE NOTICE 'execute: %', e;
  FOR r IN SELECT * FROM regress_r.people ORDER BY id LOOP
    RAISE NOTICE 'loop: % % %', r.id, r.email, r;
  END LOOP;
  FOR r IN EXECUTE 'SELECT uid, emp FROM regress_r.people WHERE id = 3' LOOP
    RAISE NOTICE 'execute loop: %', r;
  END LOOP;
END $$;
-- fail (the error message carries the pseudonym)
DO $$
DECLARE e text;
BEGIN
  SELECT email INTO e FROM regress_r.people WHERE id = 3;
  RAISE EXCEPTION 'found %', e;
END $$;
-- OK: a RETURN QUERY function and a trigger of the analyst's own
CREATE FUNCTION regress_mine.rq() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN RETURN QUERY SELECT email FROM regress_r.people ORDER BY id; END $$;
SELECT * FROM regress_mine.rq();
CREATE TABLE regress_mine.trig (id int, seen text);
CREATE FUNCTION regress_mine.trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.seen := (SELECT email FROM regress_r.people WHERE id = NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER t BEFORE INSERT ON regress_mine.trig FOR EACH ROW EXECUTE FUNCTION regress_mine.trig_fn();
INSERT INTO regress_mine.trig VALUES (1) RETURNING *;
-- OK: a rule and a row-security policy of the analyst's own that read the labelled table
CREATE TABLE regress_mine.guesses (guess text);
INSERT INTO regress_mine.guesses VALUES ('alice@contoso.com'), ('v93e04Lf13mhIkvv9IgWVb'), ('nobody');
ALTER TABLE regress_mine.guesses ENABLE ROW LEVEL SECURITY;
ALTER TABLE regress_mine.guesses FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON regress_mine.guesses
  USING (EXISTS (SELECT FROM regress_r.people p WHERE p.email = guesses.guess));
SELECT * FROM regress_mine.guesses;
CREATE TABLE regress_mine.log (guess text);
CREATE TABLE regress_mine.hits (guess text, email text);
CREATE RULE r AS ON INSERT TO regress_mine.log DO ALSO
  INSERT INTO regress_mine.hits SELECT NEW.guess, email FROM regress_r.people WHERE email = NEW.guess;
INSERT INTO regress_mine.log VALUES ('alice@contoso.com'), ('v93e04Lf13mhIkvv9IgWVb');
SELECT * FROM regress_mine.hits ORDER BY 1;
-- OK: UPDATE ... FROM the labelled table and ON CONFLICT into the analyst's own table
UPDATE regress_mine.copy c SET email = p.uid::text FROM regress_r.people p WHERE p.id = c.id AND c.id = 3;
CREATE TABLE regress_mine.uniq (email text PRIMARY KEY);
INSERT INTO regress_mine.uniq SELECT email FROM regress_r.visits ON CONFLICT (email) DO NOTHING;
SELECT count(*) AS persons FROM regress_mine.uniq;
-- OK: parallel workers read pseudonyms too
SET force_parallel_mode = on;
SELECT email FROM regress_r.people WHERE id = 1;
SELECT count(DISTINCT email) FROM regress_r.visits WHERE email <> 'alice@contoso.com';
RESET force_parallel_mode;
RESET ROLE;

-- 9. COPY ... TO
SET ROLE regress_masked;
-- OK
COPY regress_r.people TO STDOUT;
COPY regress_r.people (id, email, uid) TO STDOUT WITH (FORMAT csv, HEADER);
COPY (SELECT email FROM regress_r.visits WHERE minutes < 20 ORDER BY minutes) TO STDOUT;
COPY (SELECT p FROM regress_r.people p WHERE id = 1) TO STDOUT;
-- OK (a view column labelled identifier: pseudonyms)
COPY (SELECT mail FROM regress_r.people_labelled) TO STDOUT;
RESET ROLE;

-- 10. cursors
SET ROLE regress_masked;
-- OK: the analyst's own cursors, plain, SCROLL, WITH HOLD
BEGIN;
DECLARE c1 CURSOR FOR SELECT id, email FROM regress_r.people ORDER BY id;
FETCH 2 FROM c1;
DECLARE c2 SCROLL CURSOR FOR SELECT id, email FROM regress_r.people ORDER BY id;
FETCH LAST FROM c2;
FETCH BACKWARD 2 FROM c2;
DECLARE c3 CURSOR WITH HOLD FOR SELECT id, uid FROM regress_r.people ORDER BY id;
COMMIT;
FETCH ALL FROM c3;
CLOSE c3;
RESET ROLE;
-- fail: cursors opened by postgres, fetched after SET ROLE: held and not held
BEGIN;
DECLARE pc1 CURSOR FOR SELECT id, email FROM regress_r.people ORDER BY id;
SET LOCAL ROLE regress_masked;
FETCH 1 FROM pc1;
ROLLBACK;
BEGIN;
DECLARE pc2 CURSOR WITH HOLD FOR SELECT id, email FROM regress_r.people ORDER BY id;
COMMIT;
CREATE FUNCTION regress_fetch(c refcursor) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FETCH c INTO r;
  RETURN r::text;
END $$;
SET ROLE regress_masked;
FETCH 1 FROM pc2;
MOVE 1 IN pc2;
-- fail (PL/pgSQL's FETCH and cursor_to_xml() would read the held cursor's stored rows through
-- SPI, without ProcessUtility or the executor: while it is open, no query of the restricted
-- role starts, so even the error-catching wrapper fails)
SELECT regress_raw($$SELECT regress_fetch('pc2')$$);
SELECT regress_raw($$SELECT cursor_to_xml('pc2', 1, false, false, '')$$);
RESET ROLE;
CLOSE pc2;
-- an unheld cursor of postgres fetched through PL/pgSQL: the executor runs, the tripwire stops it
BEGIN;
DECLARE pc3 CURSOR FOR SELECT id, email FROM regress_r.people ORDER BY id;
DECLARE pc4 CURSOR FOR SELECT id, email FROM regress_r.people ORDER BY id;
SET LOCAL ROLE regress_masked;
SELECT regress_raw($$SELECT regress_fetch('pc3')$$);
SELECT regress_raw($$SELECT cursor_to_xml('pc4', 1, false, false, '')$$);
ROLLBACK;
-- fail (a cursor of postgres over no labelled column: its plan was made for postgres, and a
-- restricted role runs only queries it started itself)
BEGIN;
DECLARE pc5 CURSOR FOR SELECT id, org FROM regress_r.people ORDER BY id;
SET LOCAL ROLE regress_masked;
FETCH 1 FROM pc5;
ROLLBACK;

-- 11. prepared statements: prepared by postgres before SET ROLE, and by the analyst
PREPARE pp(int) AS SELECT id, email, uid FROM regress_r.people WHERE id = $1;
EXECUTE pp(1);
SET ROLE regress_masked;
-- OK: pseudonyms after SET ROLE, raw again after RESET ROLE
EXECUTE pp(1);
EXPLAIN (COSTS OFF) EXECUTE pp(1);
RESET ROLE;
EXECUTE pp(1);
-- after a generic plan was cached (six runs), still analysed again per role
EXECUTE pp(1); EXECUTE pp(1); EXECUTE pp(1); EXECUTE pp(1); EXECUTE pp(1);
SET ROLE regress_masked;
EXECUTE pp(1);
PREPARE mp AS SELECT id, email FROM regress_r.people WHERE id = 2;
EXECUTE mp;
RESET ROLE;
EXECUTE mp;
-- a label change takes effect for a prepared statement: label a role, run, unlabel, run
CREATE ROLE regress_later;
GRANT USAGE ON SCHEMA regress_r TO regress_later;
GRANT SELECT ON regress_r.people TO regress_later;
SET ROLE regress_later;
EXECUTE pp(1);
RESET ROLE;
SECURITY LABEL FOR deident ON ROLE regress_later IS 'restricted';
SET ROLE regress_later;
EXECUTE pp(1);
RESET ROLE;
SECURITY LABEL FOR deident ON ROLE regress_later IS NULL;
SET ROLE regress_later;
EXECUTE pp(1);
RESET ROLE;
-- an inlinable set-returning SQL function, planned (inlined) for postgres first
PREPARE ps AS SELECT id, email FROM regress_r.emails() WHERE id = 3;
EXECUTE ps;
SET ROLE regress_masked;
EXECUTE ps;
RESET ROLE;
DEALLOCATE pp;
DEALLOCATE mp;
DEALLOCATE ps;

-- 12. TABLESAMPLE
SET ROLE regress_masked;
-- OK
SELECT id, email FROM regress_r.people TABLESAMPLE SYSTEM (100) REPEATABLE (1) ORDER BY id;
SELECT count(*) FROM regress_r.visits TABLESAMPLE BERNOULLI (100) WHERE email = 'alice@contoso.com';
RESET ROLE;

-- 13. partitions and inheritance: the label on the parent covers the children read directly
CREATE TABLE regress_r.parted (email text, at date) PARTITION BY RANGE (at);
CREATE TABLE regress_r.parted_25 PARTITION OF regress_r.parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SECURITY LABEL FOR deident ON COLUMN regress_r.parted.email IS 'identifier';
CREATE TABLE regress_r.inh_parent (email text);
CREATE TABLE regress_r.inh_child (extra int) INHERITS (regress_r.inh_parent);
SECURITY LABEL FOR deident ON COLUMN regress_r.inh_parent.email IS 'identifier';
-- an unlabelled partitioned parent with a labelled partition, and the same for inheritance
CREATE TABLE regress_r.open_parted (email text, at date) PARTITION BY RANGE (at);
CREATE TABLE regress_r.open_25 PARTITION OF regress_r.open_parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SECURITY LABEL FOR deident ON COLUMN regress_r.open_25.email IS 'identifier';
CREATE TABLE regress_r.open_parent (email text);
CREATE TABLE regress_r.open_child () INHERITS (regress_r.open_parent);
SECURITY LABEL FOR deident ON COLUMN regress_r.open_child.email IS 'identifier';
INSERT INTO regress_r.parted VALUES ('alice@contoso.com', '2025-05-01');
INSERT INTO regress_r.inh_child VALUES ('alice@contoso.com', 1);
INSERT INTO regress_r.open_parted VALUES ('alice@contoso.com', '2025-05-01');
INSERT INTO regress_r.open_child VALUES ('alice@contoso.com');
GRANT SELECT ON ALL TABLES IN SCHEMA regress_r TO regress_masked;
SET ROLE regress_masked;
-- OK
SELECT 'parted' AS r, email FROM regress_r.parted UNION ALL
SELECT 'parted_25', email FROM regress_r.parted_25 UNION ALL
SELECT 'inh_parent', email FROM regress_r.inh_parent UNION ALL
SELECT 'inh_parent only', email FROM ONLY regress_r.inh_parent UNION ALL
SELECT 'inh_child', email FROM regress_r.inh_child UNION ALL
SELECT 'open_parted', email FROM regress_r.open_parted UNION ALL
SELECT 'open_25', email FROM regress_r.open_25 UNION ALL
SELECT 'open_parent', email FROM regress_r.open_parent UNION ALL
SELECT 'open_child', email FROM regress_r.open_child;
COPY regress_r.parted_25 TO STDOUT;
COPY regress_r.inh_child TO STDOUT;
COPY regress_r.open_child TO STDOUT;
COPY regress_r.open_parent TO STDOUT;
RESET ROLE;

-- 14. statistics views: with a table-level GRANT, pg_stats shows the analyst nothing of the
-- table; pg_stats_ext shows the owner only (the analyst owns a labelled table in section 22)
CREATE STATISTICS regress_r.people_st (mcv) ON email, org FROM regress_r.people;
ANALYZE regress_r.people, regress_r.visits;
SELECT attname, most_common_vals IS NOT NULL OR histogram_bounds IS NOT NULL AS has_values
  FROM pg_stats WHERE schemaname = 'regress_r' AND tablename = 'people' AND attname = 'email';
SELECT count(*) AS ext_rows FROM pg_stats_ext WHERE schemaname = 'regress_r';
SET ROLE regress_masked;
-- OK (nothing)
SELECT tablename, attname, most_common_vals, histogram_bounds FROM pg_stats WHERE schemaname = 'regress_r';
SELECT count(*) AS ext_rows FROM pg_stats_ext WHERE schemaname = 'regress_r';
SELECT regress_raw($$SELECT s.*::text FROM pg_stats s$$);
SELECT regress_raw($$SELECT s.*::text FROM pg_stats_ext s$$);
-- OK (pg_statistic itself reads as empty: it is replaced before its privilege is checked)
SELECT count(*) FROM pg_statistic;
RESET ROLE;

-- 15. EXPLAIN: pseudonymizing plans, no raw constant from the data
SET ROLE regress_masked;
-- OK
EXPLAIN (COSTS OFF) SELECT email FROM regress_r.people WHERE email = 'alice@contoso.com';
EXPLAIN (COSTS OFF, VERBOSE) SELECT p.email, v.minutes FROM regress_r.people p JOIN regress_r.visits v USING (email);
EXPLAIN (COSTS OFF, ANALYZE, TIMING OFF, SUMMARY OFF) SELECT * FROM regress_r.people WHERE email = 'alice@contoso.com';
EXPLAIN (COSTS OFF, VERBOSE) SELECT * FROM regress_r.people_v;
RESET ROLE;

-- 16. error messages echo the pseudonym, never the raw value
SET ROLE regress_masked;
-- fail (invalid input for integer, shown with the pseudonym)
SELECT email::int FROM regress_r.people WHERE id = 1;
SELECT name::date FROM regress_r.people WHERE id = 1;
SELECT uid::text::int FROM regress_r.people WHERE id = 1;
SELECT (email || '{')::json FROM regress_r.people WHERE id = 1;
SELECT regress_raw($$SELECT email::numeric FROM regress_r.people$$);
SELECT regress_raw($$SELECT to_date(email, 'YYYY') FROM regress_r.people$$);
SELECT regress_raw($$SELECT jsonb_path_query(to_jsonb(email), 'strict $.a') FROM regress_r.people$$);
RESET ROLE;

-- 17. the keyed functions: a restricted role cannot test guesses
SET ROLE regress_masked;
-- fail
SELECT id FROM regress_r.people WHERE email = deident.pseudonymize('alice@contoso.com');
SELECT deident.pseudonymize_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
SELECT deident.pseudonymize_bigint('100001');
SELECT deident.pseudonymize('alice@contoso.com'::bytea);
-- fail (through the analyst's own domain CHECK, column DEFAULT, and a SQL function)
CREATE DOMAIN regress_mine.is_alice AS text CHECK (VALUE = deident.pseudonymize('alice@contoso.com'));
SELECT email::regress_mine.is_alice FROM regress_r.people WHERE id = 1;
CREATE TABLE regress_mine.dflt (id int, p text DEFAULT deident.pseudonymize('alice@contoso.com'));
INSERT INTO regress_mine.dflt (id) VALUES (1);
CREATE FUNCTION regress_mine.p(t text) RETURNS text LANGUAGE sql AS 'SELECT deident.pseudonymize(t)';
SELECT regress_mine.p('alice@contoso.com');
-- OK: k_anonymity and the k-aggregates are not keyed
SELECT * FROM deident.k_anonymity('regress_r.people', ARRAY['org'], 'email');
RESET ROLE;

-- 18. who is restricted: SET SESSION AUTHORIZATION, a member, a group the analyst is in
SET SESSION AUTHORIZATION regress_masked;
-- OK
SELECT session_user, current_user, email FROM regress_r.people WHERE id = 1;
RESET SESSION AUTHORIZATION;
SET ROLE regress_masked_member;
-- OK (a member that inherits is restricted too)
SELECT current_user, email FROM regress_r.people WHERE id = 1;
SELECT deident.pseudonymize('x');
RESET ROLE;
SET SESSION AUTHORIZATION regress_masked;
-- OK: the analyst is a member of regress_plain, which is not restricted; after SET ROLE to it
-- the restricted login still reads pseudonyms
SET ROLE regress_plain;
SELECT current_user, email FROM regress_r.people WHERE id = 1;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- documented, not protected (SPEC): a SECURITY DEFINER function runs as its owner, unmasked
CREATE FUNCTION regress_r.definer_email(i int) RETURNS text LANGUAGE sql SECURITY DEFINER
  AS 'SELECT email FROM regress_r.people WHERE id = i';
SET ROLE regress_masked;
SELECT regress_r.definer_email(1);
RESET ROLE;

-- 19. writes to labelled tables are refused, with the error text
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON regress_r.people, regress_r.visits TO regress_masked;
SET ROLE regress_masked;
-- fail
INSERT INTO regress_r.people (id, email) VALUES (9, 'dave@contoso.com');
UPDATE regress_r.people SET org = 'X' WHERE email = 'alice@contoso.com';
UPDATE regress_r.people SET salary = salary + 1;
DELETE FROM regress_r.people WHERE id = 1;
MERGE INTO regress_r.people p USING (VALUES (1)) v(id) ON p.id = v.id WHEN MATCHED THEN DELETE;
COPY regress_r.visits FROM STDIN;
dave@contoso.com	1
\.
TRUNCATE regress_r.visits;
SELECT id FROM regress_r.people WHERE id = 1 FOR UPDATE;
SELECT id FROM regress_r.people WHERE id = 1 FOR SHARE;
SELECT id FROM regress_r.people WHERE id = 1 FOR KEY SHARE;
INSERT INTO regress_r.people (id) VALUES (1) ON CONFLICT (id) DO NOTHING;
RESET ROLE;
GRANT ALL ON regress_r.people_v TO regress_masked;
SET ROLE regress_masked;
-- fail (a write through the DBA's auto-updatable view)
UPDATE regress_r.people_v SET org = 'Y' WHERE id = 1;
RESET ROLE;
SELECT id, email, org, salary FROM regress_r.people ORDER BY id;
SELECT count(*) AS visits FROM regress_r.visits;

-- 20. labels: a restricted role may set or remove none; only superusers label roles
SET ROLE regress_masked;
-- fail
SECURITY LABEL FOR deident ON COLUMN regress_r.people.email IS NULL;
SECURITY LABEL FOR deident ON COLUMN regress_mine.copy.email IS 'identifier';
SECURITY LABEL FOR deident ON ROLE regress_masked IS NULL;
SECURITY LABEL FOR deident ON ROLE regress_masked_member IS 'restricted';
RESET ROLE;
CREATE ROLE regress_label_admin CREATEROLE;
SET ROLE regress_label_admin;
-- fail (CREATEROLE is not enough)
SECURITY LABEL FOR deident ON ROLE regress_masked IS NULL;
RESET ROLE;
-- fail (a superuser cannot be restricted; an unknown role label)
CREATE ROLE regress_super SUPERUSER;
SECURITY LABEL FOR deident ON ROLE regress_super IS 'restricted';
SECURITY LABEL FOR deident ON ROLE regress_masked IS 'identifier';
DROP ROLE regress_super, regress_label_admin;
-- fail (a restricted role must own no labelled relation: labelling a column of its table, or
-- restricting the owner of a labelled table, is refused)
CREATE TABLE regress_mine.its_own (email text);
ALTER TABLE regress_mine.its_own OWNER TO regress_masked;
SECURITY LABEL FOR deident ON COLUMN regress_mine.its_own.email IS 'identifier';
CREATE ROLE regress_owner;
CREATE TABLE regress_r.owners (email text);
SECURITY LABEL FOR deident ON COLUMN regress_r.owners.email IS 'identifier';
ALTER TABLE regress_r.owners OWNER TO regress_owner;
SECURITY LABEL FOR deident ON ROLE regress_owner IS 'restricted';
-- OK once the table has another owner
ALTER TABLE regress_r.owners OWNER TO postgres;
SECURITY LABEL FOR deident ON ROLE regress_owner IS 'restricted';
DROP TABLE regress_r.owners, regress_mine.its_own;
DROP ROLE regress_owner;

-- 21. foreign keys to identifier tables; DETACH PARTITION and NO INHERIT of labelled parents
SET ROLE regress_masked;
-- fail (a foreign key would test guesses against raw values)
CREATE TABLE regress_mine.fk (email text REFERENCES regress_r.people (email));
CREATE TABLE regress_mine.fk2 (id int, FOREIGN KEY (id) REFERENCES regress_r.people (id));
CREATE TABLE regress_mine.fk3 (id int);
ALTER TABLE regress_mine.fk3 ADD FOREIGN KEY (id) REFERENCES regress_r.people (id);
DROP TABLE regress_mine.fk3;
RESET ROLE;
-- a non-superuser owner of a labelled partitioned table and inheritance parent
CREATE ROLE regress_tab_owner;
GRANT USAGE, CREATE ON SCHEMA regress_r TO regress_tab_owner;
ALTER TABLE regress_r.parted OWNER TO regress_tab_owner;
ALTER TABLE regress_r.parted_25 OWNER TO regress_tab_owner;
ALTER TABLE regress_r.inh_parent OWNER TO regress_tab_owner;
ALTER TABLE regress_r.inh_child OWNER TO regress_tab_owner;
SET ROLE regress_tab_owner;
-- fail (the children would lose the parent's labels)
ALTER TABLE regress_r.parted DETACH PARTITION regress_r.parted_25;
ALTER TABLE regress_r.inh_child NO INHERIT regress_r.inh_parent;
RESET ROLE;

-- 22. a restricted role that owns a labelled table (in its own schema): ownership given after
-- the label, which the label checks of section 20 cannot see
CREATE TABLE regress_mine.owned (id int, email text);
INSERT INTO regress_mine.owned VALUES (1, 'alice@contoso.com'), (2, 'bob@contoso.com');
SECURITY LABEL FOR deident ON COLUMN regress_mine.owned.email IS 'identifier';
ALTER TABLE regress_mine.owned OWNER TO regress_masked;
SET ROLE regress_masked;
-- OK: reads are masked; its statistics show nothing (and it may not create extended ones)
SELECT * FROM regress_mine.owned ORDER BY id;
CREATE STATISTICS regress_mine.owned_st (mcv) ON id, email FROM regress_mine.owned;
ANALYZE regress_mine.owned;
SELECT regress_raw($$SELECT s.*::text FROM pg_stats_ext s WHERE tablename = 'owned'$$);
SELECT regress_raw($$SELECT s.*::text FROM pg_stats s WHERE tablename = 'owned'$$);
-- fail (writes, as to any labelled table)
UPDATE regress_mine.owned SET id = id;
-- fail (DDL the owner may run would evaluate its expressions over the raw values, outside any
-- query the planner rewrites: a stored generated column would copy them into a column with no
-- label, an index expression and a row-security policy would hand them to the owner's
-- function, a CHECK constraint and ALTER COLUMN ... TYPE ... USING would answer a guess: each
-- is refused)
ALTER TABLE regress_mine.owned ADD COLUMN copied text GENERATED ALWAYS AS (email) STORED;
SELECT regress_raw($$SELECT * FROM regress_mine.owned$$);
ALTER TABLE regress_mine.owned DROP COLUMN IF EXISTS copied;
CREATE FUNCTION regress_mine.ileak(e text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RAISE NOTICE 'ileak: %', e; RETURN e; END $$;
CREATE INDEX owned_leak ON regress_mine.owned (regress_mine.ileak(email));
ALTER TABLE regress_mine.owned ADD CONSTRAINT guess1 CHECK (email <> 'alice@contoso.com');
ALTER TABLE regress_mine.owned ADD CONSTRAINT guess2 CHECK (email <> 'zoe@contoso.com');
ALTER TABLE regress_mine.owned ALTER COLUMN id TYPE bigint
  USING CASE WHEN email = 'alice@contoso.com' THEN 1 / (id - id) ELSE id END;
-- the mask itself as a dictionary: overwrite the raw values with a guess, read its pseudonym
ALTER TABLE regress_mine.owned ALTER COLUMN email TYPE text USING 'alice@contoso.com';
SELECT id, email, email = 'v93e04Lf13mhIkvv9IgWVb' AS guess_confirmed FROM regress_mine.owned ORDER BY id;
CREATE POLICY owned_leak ON regress_mine.owned USING (regress_mine.leak(email));
ALTER TABLE regress_mine.owned ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
SELECT id FROM regress_mine.owned ORDER BY id;
-- fail (rebuilding the table or its indexes evaluates index expressions over raw values; a
-- domain constraint checks every stored value)
REINDEX TABLE regress_mine.owned;
REINDEX SCHEMA regress_mine;
CLUSTER regress_mine.owned;
CLUSTER;
VACUUM FULL regress_mine.owned;
VACUUM (FULL) ;
CREATE DOMAIN regress_mine.em AS text;
ALTER DOMAIN regress_mine.em ADD CONSTRAINT guess CHECK (VALUE <> 'alice@contoso.com');
DROP DOMAIN regress_mine.em;
-- OK (plain VACUUM and ANALYZE evaluate nothing of the owner's)
VACUUM regress_mine.owned;
RESET ROLE;

-- 23. the useful side: k-aggregates over pseudonyms give the answers they give over raw values
SELECT deident.k_count_distinct(email) AS persons, deident.k_sum(minutes, email) AS minutes,
       deident.k_count(email) AS visits
  FROM regress_r.visits;
SET ROLE regress_masked;
SELECT deident.k_count_distinct(email) AS persons, deident.k_sum(minutes, email) AS minutes,
       deident.k_count(email) AS visits
  FROM regress_r.visits;
-- and the pseudonyms are those a superuser gets from deident.pseudonymize
CREATE TABLE regress_mine.seen AS SELECT id, email, name, uid, emp FROM regress_r.people;
RESET ROLE;
SELECT s.id, s.email = deident.pseudonymize(p.email) AS email_ok, s.name = deident.pseudonymize(p.name) AS name_ok,
       s.uid = deident.pseudonymize_uuid(p.uid::text) AS uid_ok, s.emp = deident.pseudonymize_bigint(p.emp::text) AS emp_ok
  FROM regress_mine.seen s JOIN regress_r.people p USING (id) ORDER BY id;

-- 24. writes that answer a guess without writing a labelled relation's own rows: an INSERT
-- into an unlabelled partitioned parent is routed to a labelled partition, and a guess written
-- to an unlabelled partition reads back as its pseudonym through the parent (whose scan is
-- masked by the labelled sibling); a foreign key to an identifier column is checked against
-- the raw values, as the referenced table's owner, whoever wrote the key
CREATE TABLE regress_r.log (yr int, email text) PARTITION BY LIST (yr);
CREATE TABLE regress_r.log_24 PARTITION OF regress_r.log FOR VALUES IN (2024);
CREATE TABLE regress_r.log_25 PARTITION OF regress_r.log FOR VALUES IN (2025);
SECURITY LABEL FOR deident ON COLUMN regress_r.log_24.email IS 'identifier';
CREATE TABLE regress_r.known (email text PRIMARY KEY);
INSERT INTO regress_r.known SELECT email FROM regress_r.people;
SECURITY LABEL FOR deident ON COLUMN regress_r.known.email IS 'identifier';
CREATE TABLE regress_r.notes (email text REFERENCES regress_r.known, note text);
INSERT INTO regress_r.notes VALUES ('bob@contoso.com', 'n');
GRANT SELECT, INSERT, UPDATE ON regress_r.log, regress_r.log_25, regress_r.notes TO regress_masked;
SET ROLE regress_masked;
-- fail
INSERT INTO regress_r.log VALUES (2024, 'zoe@contoso.com');
INSERT INTO regress_r.log_25 VALUES (2025, 'alice@contoso.com');
COPY regress_r.log_25 FROM stdin;
2025	alice@contoso.com
\.
SELECT count(*) AS guesses_read_back FROM regress_r.log
 WHERE email IN (SELECT email FROM regress_r.people);
INSERT INTO regress_r.notes VALUES ('alice@contoso.com', 'n');
INSERT INTO regress_r.notes VALUES ('zoe@contoso.com', 'n');
UPDATE regress_r.notes SET email = 'alice@contoso.com';
-- OK: an update that leaves the key alone checks nothing
UPDATE regress_r.notes SET note = 'm';
RESET ROLE;
-- a label set on a parent reaches plans made for its children: a prepared statement on the
-- partition is planned again (masked), not stopped by the tripwire
INSERT INTO regress_r.log VALUES (2025, 'dave@contoso.com');
SET ROLE regress_masked;
PREPARE regress_child AS SELECT yr, email FROM regress_r.log_25;
EXECUTE regress_child; EXECUTE regress_child; EXECUTE regress_child;
EXECUTE regress_child; EXECUTE regress_child; EXECUTE regress_child;
RESET ROLE;
SECURITY LABEL FOR deident ON COLUMN regress_r.log.email IS 'identifier';
SET ROLE regress_masked;
-- OK (the pseudonym; before the label, the partition's column was not personal data)
EXECUTE regress_child;
DEALLOCATE regress_child;
-- OK: COPY TO leaves generated columns out, as it does for any role
RESET ROLE;
CREATE TABLE regress_r.gen (id int, email text, twice int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO regress_r.gen (id, email) VALUES (1, 'alice@contoso.com');
SECURITY LABEL FOR deident ON COLUMN regress_r.gen.email IS 'identifier';
GRANT SELECT ON regress_r.gen TO regress_masked;
SET ROLE regress_masked;
COPY regress_r.gen TO stdout;
RESET ROLE;

-- cleanup
DROP SCHEMA regress_mine CASCADE;
DROP SCHEMA regress_r CASCADE;
DROP FUNCTION regress_raw(text), regress_fetch(refcursor);
DROP OWNED BY regress_masked;
DROP ROLE regress_masked_member, regress_masked, regress_plain, regress_later, regress_tab_owner;
SELECT provider, objtype, objname, label FROM pg_seclabels
 WHERE provider = 'deident' AND objname NOT LIKE 'regress\_hr.%' ORDER BY objname;
