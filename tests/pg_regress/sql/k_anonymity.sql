--
-- k_anonymity: equivalence classes over the quasi-identifiers, counted in distinct persons.
--
CREATE TABLE regress_staff ("E-mail" text, org text, "Job Title" text, region text, hours int);
INSERT INTO regress_staff
SELECT format('p%s@example.com', p), 'org' || (p % 3), CASE WHEN p % 10 = 0 THEN 'Director' ELSE 'IC' END,
       CASE WHEN p <= 3 THEN NULL ELSE 'R' || (p % 2) END, p
  FROM generate_series(1, 60) p, generate_series(1, 1 + p % 3);    -- 1 to 3 rows per person
INSERT INTO regress_staff VALUES (NULL, 'org0', 'IC', 'R0', 1);     -- no person
SELECT count(*) AS rows, count(DISTINCT "E-mail") AS persons FROM regress_staff;

-- OK: persons per class
SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'Job Title'], 'E-mail');
SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'Job Title', 'region'], 'E-mail');
-- the same the slow way
WITH c AS (SELECT org, "Job Title", region, count(DISTINCT "E-mail") AS n FROM regress_staff
            WHERE "E-mail" IS NOT NULL GROUP BY 1, 2, 3)
SELECT min(n) AS k, count(*) AS classes, count(*) FILTER (WHERE n < 5) AS classes_below_min,
       (SELECT count(DISTINCT s."E-mail") FROM regress_staff s JOIN c
           ON s.org = c.org AND s."Job Title" = c."Job Title"
          AND s.region IS NOT DISTINCT FROM c.region WHERE c.n < 5) AS persons_below_min
  FROM c;
-- OK: no person column: each row is a person
SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'Job Title']);
-- the threshold follows deident.min_group_size
SET deident.min_group_size = 2;
SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'Job Title', 'region'], 'E-mail');
RESET deident.min_group_size;
-- an empty table
CREATE TABLE regress_empty (a int, p text);
SELECT * FROM deident.k_anonymity('regress_empty', ARRAY['a'], 'p');

-- fail (no quasi-identifiers, a missing column, a NULL, a repeated column, a missing table)
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff')$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', '{}')$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'title'])$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org'], 'email')$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', NULL])$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org', 'org'])$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity(NULL)$$);
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_nosuch', ARRAY['a'])$$);
-- fail (names are identifiers, not SQL: a name that would inject is just a missing column)
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org) FROM pg_authid --'])$$);
-- a quasi-identifier may have any name, the person's alias included... but one
CREATE TABLE regress_names (p int, n int, "first" int, id text);
INSERT INTO regress_names SELECT g % 2, g % 3, 1, 'x' || g FROM generate_series(1, 30) g;
SELECT * FROM deident.k_anonymity('regress_names', ARRAY['p', 'n', 'first'], 'id');
ALTER TABLE regress_names RENAME COLUMN p TO "deident person";
-- fail
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_names', ARRAY['deident person'], 'id')$$);
DROP TABLE regress_names;
-- fail (the caller needs SELECT on the table)
CREATE ROLE regress_ka_analyst;
SET ROLE regress_ka_analyst;
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_staff', ARRAY['org'])$$);
RESET ROLE;
DROP ROLE regress_ka_analyst;
DROP TABLE regress_staff, regress_empty;
