--
-- labels: the deident security-label provider, deident.personal_data, and k_anonymity()'s
-- defaults from the labels.
--
CREATE SCHEMA regress_hr;
CREATE TABLE regress_hr.people (email text, function text, title text, org text, region text,
                                after_hours int, salary numeric);

-- 1. column labels, in any case; IS NULL removes
-- OK
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.function IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.title IS 'QUASI_IDENTIFIER';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.org IS 'Quasi_Identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.region IS 'quasi_identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.salary IS 'sensitive';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.after_hours IS 'sensitive';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.after_hours IS NULL;
SELECT * FROM deident.personal_data ORDER BY schema_name, table_name, column_name;
-- the catalog keeps the case it was given; pg_deident reads it in lower case
SELECT objsubid, label FROM pg_seclabel WHERE provider = 'deident' ORDER BY objsubid;

-- 2. refused labels, each with what is allowed
-- fail (unknown label, a near miss, the role label on a column, an empty label)
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS 'secret';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS ' identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS 'restricted';
-- fail (a long label is echoed as a short prefix only)
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS 'identifier_identifier_identifier_identifier_identifier_identifier_identifier_identifier_identifier_identifier_identifier_identifier_';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS '';
-- fail (not a column: a table, a schema, a function, a view as a whole)
SECURITY LABEL FOR deident ON TABLE regress_hr.people IS 'identifier';
SECURITY LABEL FOR deident ON SCHEMA regress_hr IS 'identifier';
SECURITY LABEL FOR deident ON FUNCTION deident.pseudonymize(text, text, integer, text) IS 'identifier';
-- OK: a role that is not a superuser can be restricted, in any case (restricted.sql tests
-- what that does)
CREATE ROLE regress_label_role;
SECURITY LABEL FOR deident ON ROLE regress_label_role IS 'Restricted';
-- fail (a superuser cannot be restricted; a role label other than restricted)
CREATE ROLE regress_label_super SUPERUSER;
SECURITY LABEL FOR deident ON ROLE regress_label_super IS 'restricted';
SECURITY LABEL FOR deident ON ROLE regress_label_role IS 'identifier';
DROP ROLE regress_label_super;
-- fail (a column of a composite type or an index is not a column of a table)
CREATE TYPE regress_hr.pair AS (a int, b text);
SECURITY LABEL FOR deident ON COLUMN regress_hr.pair.a IS 'identifier';
-- fail (another provider's name)
SECURITY LABEL FOR nosuch ON COLUMN regress_hr.people.email IS 'identifier';
-- OK: a view's columns can be labelled
CREATE VIEW regress_hr.people_v AS SELECT email AS mail, org FROM regress_hr.people;
SECURITY LABEL FOR deident ON COLUMN regress_hr.people_v.mail IS 'identifier';

-- 3. who may label: a superuser; not a table's owner alone
CREATE ROLE regress_label_owner;
CREATE TABLE regress_hr.owned (id int, name text);
ALTER TABLE regress_hr.owned OWNER TO regress_label_owner;
GRANT USAGE ON SCHEMA regress_hr TO regress_label_owner;
SET ROLE regress_label_owner;
-- fail (owner, not superuser: may neither set nor remove)
SECURITY LABEL FOR deident ON COLUMN regress_hr.owned.name IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.people.email IS NULL;
RESET ROLE;
SECURITY LABEL FOR deident ON COLUMN regress_hr.owned.name IS 'identifier';
SET ROLE regress_label_owner;
SECURITY LABEL FOR deident ON COLUMN regress_hr.owned.name IS NULL;
-- the owner sees the labels of its own table, not of tables it has no privilege on
SELECT * FROM deident.personal_data ORDER BY 1, 2, 3;
RESET ROLE;

-- 4. the view follows renames and drops
ALTER TABLE regress_hr.people RENAME COLUMN email TO e_mail;
ALTER TABLE regress_hr.people RENAME TO staff;
ALTER TABLE regress_hr.staff DROP COLUMN region;
SELECT * FROM deident.personal_data WHERE table_name = 'staff' ORDER BY column_name;
DROP TABLE regress_hr.owned;
SELECT count(*) AS labels_of_dropped_table FROM pg_seclabel s
 WHERE provider = 'deident' AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = s.objoid);

-- 5. a label set in a rolled-back transaction is not there
BEGIN;
SECURITY LABEL FOR deident ON COLUMN regress_hr.staff.after_hours IS 'sensitive';
SELECT column_name, label FROM deident.personal_data WHERE column_name = 'after_hours';
ROLLBACK;
SELECT count(*) AS after_rollback FROM deident.personal_data WHERE column_name = 'after_hours';

-- 6. partitioned tables: a label on the parent covers every partition, by lookup; a
-- partition's own label can add protection, not remove it (the strongest label wins:
-- identifier, quasi_identifier, sensitive); attaching and detaching follow at once
CREATE TABLE regress_hr.visits (email text, region text, at date) PARTITION BY RANGE (at);
CREATE TABLE regress_hr.visits_2025 PARTITION OF regress_hr.visits
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SECURITY LABEL FOR deident ON COLUMN regress_hr.visits.email IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.visits.region IS 'quasi_identifier';
CREATE TABLE regress_hr.visits_2026 (at date, email text, region text);  -- other column order
SECURITY LABEL FOR deident ON COLUMN regress_hr.visits_2026.region IS 'sensitive';
SECURITY LABEL FOR deident ON COLUMN regress_hr.visits_2026.at IS 'quasi_identifier';
SELECT * FROM deident.personal_data WHERE table_name LIKE 'visits%' ORDER BY 2, 3;
ALTER TABLE regress_hr.visits ATTACH PARTITION regress_hr.visits_2026
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT * FROM deident.personal_data WHERE table_name LIKE 'visits%' ORDER BY 2, 3;
ALTER TABLE regress_hr.visits DETACH PARTITION regress_hr.visits_2025;
SELECT * FROM deident.personal_data WHERE table_name LIKE 'visits%' ORDER BY 2, 3;

-- 7. k_anonymity() takes its defaults from the labels
INSERT INTO regress_hr.staff (e_mail, function, title, org, salary)
SELECT format('p%s@example.com', p), 'F' || (p % 2), CASE WHEN p % 7 = 0 THEN 'Director' ELSE 'IC' END,
       'O' || (p % 3), 1000 + p
  FROM generate_series(1, 60) p, generate_series(1, 2);
SELECT * FROM deident.k_anonymity('regress_hr.staff');
SELECT * FROM deident.k_anonymity('regress_hr.staff', ARRAY['function', 'title', 'org'], 'e_mail');
-- without an identifier label each row is a person
SECURITY LABEL FOR deident ON COLUMN regress_hr.staff.e_mail IS NULL;
SELECT * FROM deident.k_anonymity('regress_hr.staff');
-- fail (two identifier columns: which is the person?)
SECURITY LABEL FOR deident ON COLUMN regress_hr.staff.e_mail IS 'identifier';
SECURITY LABEL FOR deident ON COLUMN regress_hr.staff.salary IS 'identifier';
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_hr.staff')$$);
-- fail (no quasi-identifier labels)
SELECT regress_error($$SELECT * FROM deident.k_anonymity('regress_hr.visits_2025')$$);

-- what remains labelled (kept for the dump-and-restore check in scripts/regress.sh)
SELECT provider, objtype, objname, label FROM pg_seclabels WHERE provider = 'deident' ORDER BY objname;
DROP ROLE regress_label_role;
REVOKE USAGE ON SCHEMA regress_hr FROM regress_label_owner;
DROP ROLE regress_label_owner;
