-- The demo's synthetic "people" data, modelled on the seed's Workplace Analytics report: one
-- row per person with e-mail, organisational attributes and two weekly collaboration metrics.
-- Skewed on purpose: most people sit in a few large orgs and in junior titles, so that some
-- org x title combinations hold only a handful of people (the groups a report must not show).
-- Deterministic: setseed() fixes random() for this session.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_deident;
DROP TABLE IF EXISTS people;

-- pick(weights, r): the index of the weight bucket that r (in [0,1)) falls into.
CREATE FUNCTION pg_temp.pick(w float8[], r float8) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(min(i), array_length(w, 1))
    FROM (SELECT i, sum(w[i]) OVER (ORDER BY i) AS upto FROM generate_subscripts(w, 1) i) s
   WHERE upto > r
$$;

SELECT setseed(0.2026) \g /dev/null
CREATE TABLE people AS
WITH dims AS (
  SELECT ARRAY['HR', 'HR', 'Finance', 'Finance', 'Engineering', 'Engineering', 'Engineering',
               'Sales', 'Sales', 'Marketing', 'Legal', 'Operations'] AS functions,
         ARRAY['HR – Corp', 'HR – Talent', 'Finance – Treasury', 'Finance – Audit',
               'Engineering – Platform', 'Engineering – Devices', 'Engineering – Research',
               'Sales – Enterprise', 'Sales – SMB', 'Marketing – Brand', 'Legal – Privacy',
               'Operations – Facilities'] AS orgs,
         ARRAY[0.04, 0.02, 0.05, 0.015, 0.25, 0.15, 0.03, 0.20, 0.12, 0.08, 0.008, 0.037]::float8[] AS org_w,
         ARRAY['Individual Contributor', 'Manager', 'Senior Manager', 'Director', 'VP'] AS titles,
         ARRAY[0.70, 0.18, 0.08, 0.035, 0.005]::float8[] AS title_w,
         ARRAY['Central', 'East', 'West', 'North', 'South'] AS regions,
         ARRAY[0.30, 0.25, 0.25, 0.12, 0.08]::float8[] AS region_w,
         ARRAY['alex', 'maria', 'wei', 'fatima', 'john', 'olga', 'kenji', 'amara', 'lucas', 'priya',
               'sofia', 'omar', 'emma', 'diego', 'hana', 'noah', 'chloe', 'ivan', 'leila', 'sam'] AS firsts,
         ARRAY['smith', 'garcia', 'chen', 'khan', 'müller', 'rossi', 'tanaka', 'okafor', 'silva',
               'patel', 'novak', 'haddad', 'jensen', 'lopez', 'kim', 'brown', 'dubois', 'petrov',
               'nasser', 'cohen'] AS lasts
), draws AS (
  SELECT g AS n, random() AS r_org, random() AS r_title, random() AS r_region,
         random() AS r_name, random() AS m1, random() AS m2, random() AS m3
    FROM generate_series(1, 12000) g
)
SELECT format('%s.%s%s@contoso.com', d.firsts[1 + (r_name * 20)::int % 20],
              d.lasts[1 + (r_name * 400)::int % 20], n) AS email,
       d.functions[o] AS function,
       d.titles[t] AS title,
       d.orgs[o] AS org,
       d.regions[pg_temp.pick(d.region_w, r_region)] AS region,
       -- weekly hours; seniority works later and writes more e-mail
       round((m1 + m2) * (1 + t))::int AS after_hours,
       round(2 + (m2 + m3) * (2 + t))::int AS email_hours
  FROM draws, dims d,
       LATERAL (SELECT pg_temp.pick(d.org_w, r_org) AS o, pg_temp.pick(d.title_w, r_title) AS t) p;
ALTER TABLE people ADD PRIMARY KEY (email);
ANALYZE people;

-- The DBA records in the catalog what is personal data, as the seed describes it: the e-mail
-- is the direct identifier; function, title, org and region identify in combination; the
-- metrics are what must be protected.
SECURITY LABEL FOR deident ON COLUMN people.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN people.function IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN people.title IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN people.org IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN people.region IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN people.after_hours IS 'sensitive';
SECURITY LABEL FOR deident ON COLUMN people.email_hours IS 'sensitive';

-- The analyst: a restricted role (SECURITY LABEL ... ON ROLE ... IS 'restricted') that reads
-- the same table with plain SQL and sees only pseudonyms of the identifier column.
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_analyst') THEN
    CREATE ROLE demo_analyst LOGIN;
  END IF;
END $$;
GRANT SELECT ON people TO demo_analyst;
SECURITY LABEL FOR deident ON ROLE demo_analyst IS 'restricted';
